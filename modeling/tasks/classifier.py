"""Fine-tuning BERT for sentence (pair) classification and regression.

`ClassifierModel` is the original `run_classifier.create_model`: BertModel, dropout
0.1 on the pooled output when training, and the top-level `output_weights` [C, H]
and `output_bias` [C]. With `is_regression` (STS-B) C is 1 and the loss is the
squared error of `logits[:, 0]`.

Batches are dicts of int32 [B, S] `input_ids`, `input_mask`, `segment_ids`, the
labels `label_ids` (int32 [B], or float32 [B] for regression) and float32 [B]
`is_real_example` (0 for the rows that pad the last batch of eval and predict).
"""

import numpy as np
import tensorflow as tf

from modeling.model.heads import ClassifierHead
from modeling.model.layers import dropout
from modeling.model.model import BertModel
from modeling.training.steps import example_totals

# The classifier head a pretrained --init_checkpoint lacks.
FRESH_HEAD = (ClassifierHead.VARIABLES,)


class ClassifierModel(tf.Module):
  """BertModel plus the original classifier head."""

  def __init__(self, config, num_labels, is_regression=False, use_one_hot_embeddings=False,
               compute_dtype=tf.float32):
    """Args:
      config: a BertConfig.
      num_labels: number of classes (ignored for regression, which has one output).
      is_regression: predict one real value trained with squared error.
      use_one_hot_embeddings: as BertModel.
      compute_dtype: as BertModel: tf.float32, or tf.bfloat16 / tf.float16 for
        mixed precision (variables, logits and losses stay float32).
    """
    super().__init__()
    self.is_regression = is_regression
    self.bert = BertModel(config, use_one_hot_embeddings, compute_dtype)
    self.head = ClassifierHead(config, 1 if is_regression else num_labels)

  def outputs(self, batch, training=False):
    """Per-example losses and predictions.

    Returns:
      (per_example_loss float32 [B], predictions): predictions are the class
      probabilities [B, C], or the predicted values [B] for regression.
    """
    pooled = self.bert(batch["input_ids"], batch["input_mask"], batch["segment_ids"],
                       training=training)["pooled_output"]  # [B, H]
    if self.is_regression:
      logits = self.head.logits(dropout(pooled, self.head.dropout_rate, training))  # [B, 1]
      values = logits[:, 0]  # [B]
      return tf.square(values - tf.cast(batch["label_ids"], values.dtype)), values
    _, per_example_loss, _, probabilities = self.head(pooled, batch["label_ids"], training)
    return per_example_loss, probabilities

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
