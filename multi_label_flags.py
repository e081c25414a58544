"""Flags of run_classifier.py's multi-label classification (--task_name=tsv), and the
label separator and thresholds they make."""

import os

from absl import flags
from absl import logging

from modeling.data import files
from modeling.tasks import classifier

AUTO_THRESHOLDS = {"auto": False, "auto_per_label": True}  # name: per_label
flags.DEFINE_bool("multi_label", False,
                  "Each example carries a set of labels (the tsv task's label column, "
                  "split at --multi_label_separator; an empty cell is the empty set): a "
                  "sigmoid per label and binary cross-entropy instead of the softmax; "
                  "--optimizer defaults to adamw_corrected and training to "
                  "--nogroup_by_length.")
flags.DEFINE_bool("multi_label_prior_bias", True,
                  "With --multi_label and --do_train: a fresh head's output_bias starts at "
                  "each label's log prior odds in the training data (add-one smoothed), "
                  "not at 0 (every label at probability 0.5); a head read from "
                  "--init_checkpoint or a resumed run keeps its own. "
                  "--nomulti_label_prior_bias starts at 0, as Hugging Face.")
flags.DEFINE_string("multi_label_separator", ",",
                    "With --multi_label: what separates the labels of a set.")
flags.DEFINE_string("multi_label_threshold", "0.5",
                    "With --multi_label: a label is predicted where its probability is "
                    "above this: a number in [0, 1], auto (the one value that maximises "
                    "dev micro F1, chosen by --do_eval) or auto_per_label (one a label); "
                    "the chosen values are written to --output_dir/"
                    f"{classifier.THRESHOLDS_FILE} and read by later runs with auto.")

FLAGS = flags.FLAGS


def check_flags(task_name):
  """Refuses multi-label flags that cannot take effect, or a bad separator or threshold."""
  if not FLAGS.multi_label:
    given = [f"--{name}" for name in ("multi_label_separator", "multi_label_threshold",
                                      "multi_label_prior_bias") if FLAGS[name].present]
    if given:
      raise ValueError(f"{', '.join(given)}: only with --multi_label")
    return
  if task_name.lower() != "tsv":
    raise ValueError(f"--multi_label: --task_name={task_name} has one label per example; "
                     "multi-label data is read by --task_name=tsv (a label column of sets)")
  if FLAGS["multi_label_prior_bias"].present and not FLAGS.do_train:
    raise ValueError("--multi_label_prior_bias: only a training run (--do_train) starts a "
                     "fresh head")
  if not FLAGS["optimizer"].present:
    # The original AdamWeightDecay's uncorrected first steps (4.5x Adam's at step 50)
    # collapse a multi-label head onto the labels' prior at the rates it needs.
    FLAGS.optimizer = "adamw_corrected"
    logging.info("--multi_label: --optimizer=adamw_corrected (Adam with bias correction); "
                 "--optimizer=adamw trains with the original's instead")
  if not FLAGS["group_by_length"].present:
    # Batches of one length bucket are biased label sets (short texts mention fewer).
    FLAGS.group_by_length = False
    logging.info("--multi_label: --nogroup_by_length (batches in random order, each at "
                 "the bucket of its longest example); --group_by_length groups them")
  separator = FLAGS.multi_label_separator
  if not separator or any(c in separator for c in "\t\r\n") or separator != separator.strip():
    raise ValueError(f"--multi_label_separator={separator!r}: the separator must be a "
                     "non-empty string without tabs, line breaks or surrounding spaces")
  if FLAGS.multi_label_threshold not in AUTO_THRESHOLDS:
    try:
      value = float(FLAGS.multi_label_threshold)
    except ValueError:
      value = None
    if value is None or not 0.0 <= value <= 1.0:
      raise ValueError(f"--multi_label_threshold={FLAGS.multi_label_threshold}: a number in "
                       f"[0, 1], or one of {', '.join(AUTO_THRESHOLDS)}")
  elif not FLAGS.do_eval and (FLAGS.do_predict or FLAGS.export_dir) and not files.exists(
      thresholds_path()):
    raise ValueError(f"--multi_label_threshold={FLAGS.multi_label_threshold} without "
                     f"--do_eval reads the thresholds chosen by an earlier --do_eval, but "
                     f"{thresholds_path()} does not exist: add --do_eval")


def initial_bias(train_label_ids):
  """Where a fresh head's output_bias starts (`ClassifierModel`'s initial_bias): the
  labels' `prior_log_odds` in train_label_ids (float [N, C]) with --multi_label and
  --multi_label_prior_bias, else None (zeros)."""
  if FLAGS.multi_label and FLAGS.multi_label_prior_bias and train_label_ids is not None:
    return classifier.prior_log_odds(train_label_ids)
  return None


def label_separator():
  """The separator of the label sets, or None without --multi_label."""
  return FLAGS.multi_label_separator if FLAGS.multi_label else None


def thresholds_path():
  return os.path.join(FLAGS.output_dir, classifier.THRESHOLDS_FILE)


def choosing_thresholds():
  """Whether this run chooses the thresholds on the dev set (auto with --do_eval)."""
  return FLAGS.multi_label_threshold in AUTO_THRESHOLDS and FLAGS.do_eval


def thresholds_from_flags(labels, global_step, dev_outputs=None, dev_labels=None):
  """The thresholds of --multi_label_threshold: np.ndarray [C] (or a float).

  Args:
    labels: the label names.
    global_step: the model's step.
    dev_outputs, dev_labels: the dev set's `predict` outputs and labels [N, C],
      when this run evaluated; auto chooses on them (`choose_thresholds`),
      else reads what an earlier run chose for this model.

  Raises:
    ValueError: the thresholds read were chosen for another label list or step.
  """
  if FLAGS.multi_label_threshold not in AUTO_THRESHOLDS:
    return float(FLAGS.multi_label_threshold)
  if dev_outputs is None:
    thresholds, chosen_at = classifier.read_thresholds(thresholds_path(), labels)
    if chosen_at != global_step:
      raise ValueError(f"{thresholds_path()}: thresholds chosen at step {chosen_at}, but the "
                       f"model is at step {global_step}: add --do_eval to choose them again")
    return thresholds
  return classifier.choose_thresholds(dev_outputs["predictions"], dev_labels,
                                      AUTO_THRESHOLDS[FLAGS.multi_label_threshold])
