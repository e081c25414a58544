"""Fine-tuning BERT for sentence (pair) classification and regression.

`ClassifierModel` is the original `run_classifier.create_model`: BertModel, dropout
0.1 on the pooled output when training, and the top-level `output_weights` [C, H]
and `output_bias` [C]. With `is_regression` (STS-B) C is 1 and the loss is the
squared error of `logits[:, 0]`. With `multi_label` each of the C labels is a
yes/no question of its own: a sigmoid per label, binary cross-entropy averaged
over labels and examples, the bias started at the labels' prior (`prior_log_odds`),
and a label predicted where its probability is above its threshold
(`multi_label_metrics`, `choose_thresholds`).

Batches are dicts of int32 [B, S] `input_ids`, `input_mask`, `segment_ids`, the
labels `label_ids` (int32 [B]; float32 [B] for regression; float32 [B, C] of 0/1
for multi-label) and float32 [B] `is_real_example` (0 for the rows that pad the
last batch of eval and predict).
"""

import json

import numpy as np
import tensorflow as tf

from modeling.data import files
from modeling.model.heads import ClassifierHead
from modeling.model.layers import dropout
from modeling.model.model import BertModel
from modeling.training.steps import example_totals

# The classifier head a pretrained --init_checkpoint lacks.
FRESH_HEAD = (ClassifierHead.VARIABLES,)


class ClassifierModel(tf.Module):
  """BertModel plus the original classifier head."""

  def __init__(self, config, num_labels, is_regression=False, use_one_hot_embeddings=False,
               compute_dtype=tf.float32, multi_label=False, remove_padding=False,
               initial_bias=None):
    """Args:
      config: a BertConfig.
      num_labels: number of classes (ignored for regression, which has one output).
      is_regression: predict one real value trained with squared error.
      use_one_hot_embeddings: as BertModel.
      compute_dtype: as BertModel: tf.float32, or tf.bfloat16 / tf.float16 for
        mixed precision (variables, logits and losses stay float32).
      multi_label: a sigmoid per label and binary cross-entropy instead of the
        softmax (labels float [B, C]).
      remove_padding: as BertModel (the head reads the first token only).
      initial_bias: float [C], where a fresh head's `output_bias` starts
        (default zeros; multi-label: `prior_log_odds`).
    """
    super().__init__()
    if multi_label and is_regression:
      raise ValueError("a classifier is either multi-label or a regression, not both")
    self.is_regression = is_regression
    self.multi_label = multi_label
    self.bert = BertModel(config, use_one_hot_embeddings, compute_dtype, remove_padding)
    self.head = ClassifierHead(config, 1 if is_regression else num_labels,
                               initial_bias=initial_bias)

  def outputs(self, batch, training=False):
    """Per-example losses and predictions.

    Returns:
      (per_example_loss float32 [B], predictions): predictions are the class
      probabilities [B, C] (softmax; one sigmoid per label for multi-label), or
      the predicted values [B] for regression.
    """
    pooled = self.bert(batch["input_ids"], batch["input_mask"], batch["segment_ids"],
                       training=training)["pooled_output"]  # [B, H]
    if self.is_regression:
      logits = self.head.logits(dropout(pooled, self.head.dropout_rate, training))  # [B, 1]
      values = logits[:, 0]  # [B]
      return tf.square(values - tf.cast(batch["label_ids"], values.dtype)), values
    head = self.head.multi_label if self.multi_label else self.head
    _, per_example_loss, _, probabilities = head(pooled, batch["label_ids"], training)
    return per_example_loss, probabilities

  def predictions(self, input_ids, input_mask, segment_ids):
    """The predictions of `outputs` for rows without labels (serving).

    Args:
      input_ids, input_mask, segment_ids: int32 [B, S].

    Returns:
      class probabilities float32 [B, C] (one sigmoid per label for multi-label),
      or the predicted values [B] for regression.
    """
    pooled = self.bert(input_ids, input_mask, segment_ids)["pooled_output"]  # [B, H]
    logits = self.head.logits(pooled)  # [B, C]
    if self.is_regression:
      return logits[:, 0]
    return tf.sigmoid(logits) if self.multi_label else tf.nn.softmax(logits, axis=-1)

  loss_totals = staticmethod(example_totals)

  def loss(self, batch, totals):
    """This batch's share of the update's mean loss (with dropout), float32 scalar.

    Args:
      batch: a (micro-)batch.
      totals: `loss_totals` summed over every batch of the update.
    """
    per_example_loss, _ = self.outputs(batch, training=True)
    return tf.reduce_sum(per_example_loss) / totals["examples"]

  def predict_step(self, batch):
    """Outputs of one replica's batch, without dropout, for `predict`."""
    per_example_loss, predictions = self.outputs(batch, training=False)
    return {"per_example_loss": per_example_loss, "predictions": predictions}


def eval_metrics(outputs, labels, is_regression):
  """The original's eval results (plus Pearson/Spearman for regression).

  Args:
    outputs: `predict` outputs of ClassifierModel.predict_step.
    labels: np.ndarray [N] class ids or target values.
    is_regression: whether the task is regression.

  Returns:
    {name: float}: eval_accuracy (classification) or pearson/spearman
    (regression), eval_loss, and loss (the same mean per-example loss).
  """
  loss = float(np.mean(outputs["per_example_loss"]))
  results = {"eval_loss": loss, "loss": loss}
  predictions = outputs["predictions"]
  if is_regression:
    results["pearson"] = float(np.corrcoef(predictions, labels)[0, 1])
    results["spearman"] = float(np.corrcoef(_ranks(predictions), _ranks(labels))[0, 1])
  else:
    results["eval_accuracy"] = float(np.mean(np.argmax(predictions, -1) == labels))
  return results


def _ranks(values):
  """Ranks from 1, ties sharing their average rank (as Spearman's correlation needs)."""
  values = np.asarray(values)
  order = np.argsort(values, kind="stable")
  ranks = np.empty(len(values))
  ranks[order] = np.arange(1, len(values) + 1)
  for value in np.unique(values):
    tied = values == value
    ranks[tied] = ranks[tied].mean()
  return ranks


# Written beside the checkpoints by --multi_label_threshold=auto, read by later runs.
THRESHOLDS_FILE = "multi_label_thresholds.json"


def prior_log_odds(label_ids):
  """Each label's log prior odds in the training data: the `output_bias` at which a
  fresh multi-label head (weights near 0) gives every example each label's frequency.

  Started at zeros, every label starts at probability 0.5; where most examples carry
  few of the labels, the first updates then go to pushing all of them down through the
  shared pooled output, and at the rates multi-label fine-tuning needs the head stays
  at the prior. Started here, the first gradients are those of telling examples apart.

  Args:
    label_ids: float [N, C] of 0/1.

  Returns:
    np.ndarray float32 [C]: log(p / (1 - p)) of p = (count + 1) / (N + 2), smoothed
    add-one so that a label on no example, or on every one, stays finite.
  """
  label_ids = np.asarray(label_ids, np.float64)
  prior = (label_ids.sum(axis=0) + 1) / (len(label_ids) + 2)
  return np.log(prior / (1 - prior)).astype(np.float32)


def multi_label_metrics(outputs, labels, thresholds, label_names):
  """Eval results of a multi-label classifier, a label predicted where its
  probability is above its threshold.

  Args:
    outputs: `predict` outputs of a multi-label ClassifierModel.predict_step.
    labels: np.ndarray [N, C] of 0/1.
    thresholds: float, or np.ndarray [C], one per label.
    label_names: the C label names.

  Returns:
    {name: float}: eval_loss and loss (the mean binary cross-entropy);
    eval_micro_{precision,recall,f1} over every (example, label) decision;
    eval_macro_f1, the mean of the per-label F1s; eval_subset_accuracy, the
    share of examples whose predicted set is exactly theirs; and
    eval_{precision,recall,f1}_<label> of each label. A ratio of zero over zero
    is 0 (scikit-learn's zero_division=0).
  """
  loss = float(np.mean(outputs["per_example_loss"]))
  predicted = outputs["predictions"] > np.asarray(thresholds)  # [N, C]
  truth = np.asarray(labels) > 0.5  # [N, C]
  tp = np.sum(predicted & truth, 0)  # [C]
  fp = np.sum(predicted & ~truth, 0)
  fn = np.sum(~predicted & truth, 0)
  precision, recall, f1 = _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)
  results = {"eval_loss": loss, "loss": loss,
             "eval_micro_precision": float(_ratio(tp.sum(), (tp + fp).sum())),
             "eval_micro_recall": float(_ratio(tp.sum(), (tp + fn).sum())),
             "eval_micro_f1": float(_ratio(2 * tp.sum(), (2 * tp + fp + fn).sum())),
             "eval_macro_f1": float(np.mean(f1)),
             "eval_subset_accuracy": float(np.mean(np.all(predicted == truth, axis=1)))}
  for index, name in enumerate(label_names):
    results[f"eval_precision_{name}"] = float(precision[index])
    results[f"eval_recall_{name}"] = float(recall[index])
    results[f"eval_f1_{name}"] = float(f1[index])
  return results


def _ratio(numerator, denominator):
  """numerator / denominator elementwise, 0 where the denominator is 0."""
  numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
  return np.divide(numerator, denominator, out=np.zeros_like(numerator),
                   where=denominator > 0)


def choose_thresholds(probabilities, labels, per_label=False):
  """The thresholds maximising micro F1 on labelled data (the dev set).

  One global value: the best cut of all N*C probabilities, ranked. Per label:
  starting from the global value, each label's threshold in turn is set to the
  best for micro F1 with the others held, until a pass changes none (each step
  raises micro F1 or keeps it, so this ends). Thresholds fall midway between the
  neighbouring probabilities they separate.

  Args:
    probabilities: np.ndarray [N, C].
    labels: np.ndarray [N, C] of 0/1.
    per_label: one threshold per label instead of one for all.

  Returns:
    np.ndarray float64 [C] (all equal unless per_label).
  """
  probabilities = np.asarray(probabilities, np.float64)
  truth = np.asarray(labels) > 0.5
  num_true = int(truth.sum())
  threshold = _best_cut(probabilities.ravel(), truth.ravel(), 0, 0, num_true)
  thresholds = np.full(probabilities.shape[1], threshold)
  if not per_label:
    return thresholds
  for _ in range(10 * probabilities.shape[1]):  # A bound that passes never reach in practice.
    changed = False
    for index in range(probabilities.shape[1]):
      others = np.arange(probabilities.shape[1]) != index
      predicted = probabilities[:, others] > thresholds[others]
      best = _best_cut(probabilities[:, index], truth[:, index],
                       int(np.sum(predicted & truth[:, others])), int(predicted.sum()), num_true)
      if _micro_f1(probabilities, truth, np.where(others, thresholds, best)) > _micro_f1(
          probabilities, truth, thresholds):
        thresholds[index], changed = best, True
    if not changed:
      break
  return thresholds


def _micro_f1(probabilities, truth, thresholds):
  predicted = probabilities > thresholds
  return _ratio(2 * np.sum(predicted & truth), predicted.sum() + truth.sum())


def _best_cut(scores, positives, base_tp, base_predicted, num_true):
  """The threshold on `scores` [M] maximising 2 TP / (predicted + num_true), where
  TP and predicted add base_tp and base_predicted of decisions made elsewhere.
  Ties go to the highest threshold (the fewest labels predicted)."""
  order = np.argsort(-scores, kind="stable")
  ranked, hits = scores[order], positives[order]
  count = len(ranked)
  # Cutting after the top k (k = 0..M) predicts them; only cuts between distinct scores.
  cuts = np.concatenate([[0], np.flatnonzero(ranked[:-1] > ranked[1:]) + 1, [count]])
  tp = np.concatenate([[0], np.cumsum(hits)])[cuts]
  f1 = _ratio(2 * (base_tp + tp), base_predicted + cuts + num_true)
  k = cuts[int(np.argmax(f1))]
  if k == 0:
    return (ranked[0] + 1.0) / 2 if count else 0.5
  if k == count:
    return ranked[-1] / 2
  return (ranked[k - 1] + ranked[k]) / 2


def write_thresholds(path, label_names, thresholds, global_step, notes):
  """Writes the chosen thresholds as JSON (atomically): {"labels", "thresholds",
  "global_step" (the model's step they were chosen for), plus `notes` ({name:
  value}, e.g. the dev micro F1 they reach)}."""
  files.write_atomically(path, json.dumps(
      {"labels": list(label_names), "thresholds": [float(t) for t in thresholds],
       "global_step": int(global_step), **notes}, indent=2, sort_keys=True) + "\n")


def read_thresholds(path, label_names):
  """(thresholds np.ndarray [C] in `label_names`' order, global_step) as
  `write_thresholds` wrote them.

  Raises:
    FileNotFoundError: no such file.
    ValueError: not such a file, or written for other labels.
  """
  if not files.exists(path):
    raise FileNotFoundError(f"{path} does not exist")
  try:
    with files.open(path) as reader:
      values = json.loads(reader.read())
    saved, thresholds = values["labels"], np.array(values["thresholds"], np.float64)
    global_step = int(values["global_step"])
  except (ValueError, KeyError, TypeError) as error:
    raise ValueError(f"{path}: not a thresholds file of run_classifier ({error})") from None
  if list(saved) != list(label_names) or thresholds.shape != (len(label_names),):
    raise ValueError(f"{path}: thresholds for the labels {saved}, but this run's labels are "
                     f"{list(label_names)}")
  return thresholds, global_step
