"""Fine-tunes BERT for sentence (pair) classification, as the original run_classifier.py.

Same flags and defaults as the original, plus --export_dir (a SavedModel taking raw
text) and ours of shared_flags.py; each flag is defined once, in the *_flags.py module
of its concern. Tasks: cola, mnli, mrpc, xnli (the original's), sst-2, qqp, qnli,
rte, wnli, sts-b (regression), and tsv (your own labelled TSV files; with
--multi_label, each row's label column a set of labels).

  python run_classifier.py --task_name=tsv --do_train --do_eval --do_predict \
    --data_dir=../shared/data/topics --vocab_file=$BERT_DIR/vocab.txt \
    --bert_config_file=$BERT_DIR/bert_config.json \
    --init_checkpoint=$BERT_DIR/bert_model.ckpt --max_seq_length=128 \
    --train_batch_size=32 --learning_rate=5e-5 --num_train_epochs=3.0 \
    --output_dir=/tmp/topics_output --export_dir=/tmp/topics_model
"""

import os

import numpy as np
from absl import app, flags, logging

import bucket_flags
import classifier_task_flags  # noqa: F401  (defines the flags)
import export_flags
import fine_tuning_flags
import finite_flags
import labels_flags  # noqa: F401  (defines the flags)
import model_flags  # noqa: F401  (defines the flags)
import multi_label_flags
import predict_flags  # noqa: F401  (defines the flags)
import shared_flags
import tokenizer_flags
import tpu_flags
from modeling.data import classifier_data, files
from modeling.data.ner_data import read_labels
from modeling.data.tokenization import validate_case_matches_checkpoint
from modeling.model.config import BertConfig
from modeling.tasks import classifier, serving, tflite_export
from modeling.training import array_predictor

FLAGS = flags.FLAGS
finite_flags.require_finite_floats()


def check_flags(config):
  """The original's flag checks, with the value at fault named."""
  if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict or export_flags.requested()):
    raise ValueError("At least one of `do_train`, `do_eval`, `do_predict` or `export_dir` "
                     "(or `export_tflite`, `export_onnx`) must be set.")
  config.check_sequence_length(FLAGS.max_seq_length, name="--max_seq_length")
  if FLAGS.max_seq_length < 3:
    raise ValueError(f"--max_seq_length={FLAGS.max_seq_length} leaves no room for text")
  validate_case_matches_checkpoint(FLAGS.do_lower_case, FLAGS.init_checkpoint)
  if FLAGS.preserve_unused_tokens and FLAGS.export_dir:
    raise ValueError("--preserve_unused_tokens is not supported with --export_dir: the "
                     "exported in-graph tokenizer would split [unusedN] words")
  if FLAGS.labels_file and FLAGS.task_name.lower() != "tsv":
    raise ValueError(f"--labels_file: --task_name={FLAGS.task_name} has its own labels; a "
                     "label list is read only by --task_name=tsv")
  multi_label_flags.check_flags(FLAGS.task_name)


def labels_from_flags():
  """The labels of --labels_file (checked against the label separator), or None."""
  if not FLAGS.labels_file:
    return None
  labels = read_labels(FLAGS.labels_file)
  separator = multi_label_flags.label_separator()
  if separator is not None:
    classifier_data.check_label_names(labels, separator, f"--labels_file={FLAGS.labels_file}")
  return labels


def write_test_results(path, predictions, label_sets=None):
  """One row per test example: tab-separated class probabilities (or the value),
  then, for multi-label, the predicted label set (`label_sets`, strings)."""
  files.write_atomically(path, "".join(
      "\t".join([str(p) for p in np.atleast_1d(row)]
                + ([] if label_sets is None else [label_sets[i]])) + "\n"
      for i, row in enumerate(predictions)))


def predicted_sets(probabilities, thresholds, labels):
  """The labels above their thresholds of each row [N, C], joined by the separator."""
  return [multi_label_flags.label_separator().join(
      label for label, above in zip(labels, row) if above)
          for row in np.asarray(probabilities) > thresholds]


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  config = BertConfig.from_json_file(FLAGS.bert_config_file)
  check_flags(config)
  buckets = bucket_flags.buckets_from_flags(FLAGS.max_seq_length)
  multi_label = FLAGS.multi_label
  processor = classifier_data.get_processor(FLAGS.task_name, FLAGS.data_dir,
                                            labels_from_flags(),
                                            multi_label_flags.label_separator())
  label_list = None if processor.is_regression else processor.get_labels()
  tokenizer, tokenizer_files = tokenizer_flags.tokenizer_from_flags(config)
  shared_flags.check_outputs(
      ["eval_results.txt", "test_results.tsv", "labels.txt", classifier.THRESHOLDS_FILE],
      [("--data_dir", os.path.join(FLAGS.data_dir, name)) for name in processor.files.values()]
      + tokenizer_files + [("--bert_config_file", FLAGS.bert_config_file),
                           ("--labels_file", FLAGS.labels_file)])
  if FLAGS.export_dir:
    files.check_replaceable_directory(FLAGS.export_dir, serving.SAVED_MODEL_FILE,
                                      "--export_dir")
  examples = {split: processor.get_examples(FLAGS.data_dir, split)
              for split, wanted in (("train", FLAGS.do_train), ("dev", FLAGS.do_eval),
                                    ("test", FLAGS.do_predict)) if wanted}

  compute_dtype = shared_flags.compute_dtype_from_flags(FLAGS.use_tpu)
  remove_padding = shared_flags.remove_padding_from_flags(FLAGS.use_tpu)
  export_flags.check_file_exports(processor.is_regression, FLAGS.preserve_unused_tokens,
                                  compute_dtype)
  strategy = tpu_flags.strategy_from_flags()
  train_arrays = classifier_data.to_arrays(
      examples["train"], label_list, FLAGS.max_seq_length, tokenizer,
      multi_label) if FLAGS.do_train else {}
  initial_bias = multi_label_flags.initial_bias(train_arrays.get("label_ids"))
  is_chief, model, optimizer, trainer, checkpoints, num_train_steps = (
      fine_tuning_flags.set_up_fine_tuning(
          strategy, len(examples.get("train", ())), lambda: classifier.ClassifierModel(
              config, len(label_list or [None]), processor.is_regression, FLAGS.use_tpu,
              compute_dtype, multi_label, remove_padding, initial_bias),
          classifier.FRESH_HEAD, FLAGS.init_checkpoint, "evaluate, predict or export"))
  if is_chief and label_list is not None:
    files.write_atomically(os.path.join(FLAGS.output_dir, "labels.txt"),
                          "".join(f"{label}\n" for label in label_list))

  if FLAGS.do_train:
    logging.info("***** Running training: %d examples, batch size %d, %d steps *****",
                 len(examples["train"]), FLAGS.train_batch_size, num_train_steps)
    if multi_label:
      label_ids = train_arrays["label_ids"]
      logging.info("Label counts in train: %s; %d of %d examples have the empty set",
                   dict(zip(label_list, label_ids.sum(0).astype(int).tolist())),
                   int(np.sum(label_ids.sum(1) == 0)), len(label_ids))
      if initial_bias is not None:
        logging.info("A fresh output_bias starts at the labels' log prior odds: %s",
                     dict(zip(label_list, np.round(initial_bias, 4).tolist())))
    status = shared_flags.train_on_bucketed_arrays(trainer, train_arrays, buckets,
                                                   num_train_steps, checkpoints)
    if status is not None:
      return status

  thresholds = None
  if multi_label and not multi_label_flags.choosing_thresholds():
    thresholds = multi_label_flags.thresholds_from_flags(label_list,
                                                         int(optimizer.global_step.numpy()))
  if FLAGS.do_eval:
    arrays = classifier_data.to_arrays(examples["dev"], label_list, FLAGS.max_seq_length,
                                       tokenizer, multi_label)
    outputs = array_predictor.predict(strategy, model.predict_step, arrays, FLAGS.eval_batch_size,
                                      buckets, jit_compile=tpu_flags.jit_whole_step_from_flags())
    if multi_label:
      if multi_label_flags.choosing_thresholds():
        thresholds = multi_label_flags.thresholds_from_flags(
            label_list, int(optimizer.global_step.numpy()), outputs, arrays["label_ids"])
      results = classifier.multi_label_metrics(outputs, arrays["label_ids"], thresholds,
                                               label_list)
    else:
      results = classifier.eval_metrics(outputs, arrays["label_ids"], processor.is_regression)
    results["global_step"] = int(optimizer.global_step.numpy())
    logging.info("***** Eval results (%d examples) *****\n%s", len(examples["dev"]),
                 "\n".join(f"  {k} = {results[k]}" for k in sorted(results)))
    if is_chief:
      files.write_eval_results(os.path.join(FLAGS.output_dir, "eval_results.txt"), results)
      if multi_label_flags.choosing_thresholds():
        classifier.write_thresholds(
            multi_label_flags.thresholds_path(), label_list, thresholds, results["global_step"],
            {"eval_micro_f1": results["eval_micro_f1"],
             "multi_label_threshold": FLAGS.multi_label_threshold})
        logging.info("Thresholds chosen on dev (micro F1 %.4f): %s", results["eval_micro_f1"],
                     dict(zip(label_list, np.round(thresholds, 4).tolist())))

  if FLAGS.do_predict:
    arrays = classifier_data.to_arrays(examples["test"], label_list, FLAGS.max_seq_length,
                                       tokenizer, multi_label)
    outputs = array_predictor.predict(strategy, model.predict_step, arrays,
                                 FLAGS.predict_batch_size, buckets,
                                 jit_compile=tpu_flags.jit_whole_step_from_flags())
    if is_chief:
      path = os.path.join(FLAGS.output_dir, "test_results.tsv")
      write_test_results(path, outputs["predictions"], predicted_sets(
          outputs["predictions"], thresholds, label_list) if multi_label else None)
      logging.info("Wrote %d rows of predictions to %s", len(examples["test"]), path)

  if FLAGS.export_dir and is_chief:
    split = next(iter(examples), "train")
    sample = examples.get(split) or processor.get_examples(FLAGS.data_dir, split)
    pair = any(e.text_b for e in sample)
    server = serving.ClassifierServer(model, FLAGS.vocab_file, FLAGS.do_lower_case,
                                      FLAGS.max_seq_length, label_list, FLAGS.spm_model_file,
                                      buckets, thresholds, FLAGS.multi_label_separator)
    logging.info("Exported the serving model (%s) to %s", "text_a, text_b" if pair else "text_a",
                 serving.export(server, FLAGS.export_dir, pair))
  if is_chief:
    for path in export_flags.export_files(model, lambda: tflite_export.TfliteClassifier(
        model, FLAGS.vocab_file, FLAGS.do_lower_case, FLAGS.max_seq_length, label_list,
        FLAGS.spm_model_file, buckets, thresholds)):
      logging.info("Exported %s", path)
  return 0


if __name__ == "__main__":
  # And --vocab_file or --spm_model_file.
  for name in ("data_dir", "task_name", "bert_config_file", "output_dir"):
    flags.mark_flag_as_required(name)
  app.run(main)
