"""Fine-tuning BERT for sentence (pair) classification and regression.

`ClassifierModel` is the original `run_classifier.create_model`: BertModel, dropout
0.1 on the pooled output when training, and the top-level `output_weights` [C, H]
and `output_bias` [C]. With `is_regression` (STS-B) C is 1 and the loss is the
squared error of `logits[:, 0]`.

Batches are dicts of int32 [B, S] `input_ids`, `input_mask`, `segment_ids`, the
labels `label_ids` (int32 [B], or float32 [B] for regression) and float32 [B]
`is_real_example` (0 for the rows that pad the last batch of eval and predict).
"""

import functools

import numpy as np
import tensorflow as tf

from modeling.data import length_buckets
from modeling.model.heads import ClassifierHead
from modeling.model.layers import dropout
from modeling.model.model import BertModel

# The classifier head a pretrained --init_checkpoint lacks.
FRESH_HEAD = (r"^output_(weights|bias)$",)


def example_totals(batch):
  """What a fine-tuning loss divides by, summed over a batch: {"examples": float32 scalar}."""
  return {"examples": tf.cast(tf.shape(batch["input_ids"])[0], tf.float32)}


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


def padded_dataset(arrays, batch_size):
  """Batches in order, padding the last batch with rows whose is_real_example is 0.

  Args:
    arrays: {name: np.ndarray [N, ...]}, every array the same length N.
    batch_size: the global batch size.

  Returns:
    (tf.data.Dataset of full batches, number of batches).
  """
  count = len(next(iter(arrays.values())))
  padded_count = -(-count // batch_size) * batch_size
  columns = {name: np.concatenate([value, np.zeros((padded_count - count,) + value.shape[1:],
                                                   value.dtype)])
             for name, value in arrays.items()}
  columns["is_real_example"] = (np.arange(padded_count) < count).astype(np.float32)
  dataset = tf.data.Dataset.from_tensor_slices(columns).batch(batch_size, drop_remainder=True)
  return dataset, padded_count // batch_size


@functools.lru_cache(maxsize=8)
def _global_step(strategy, step_fn):
  """A tf.function running `step_fn` on each replica and gathering the global batch.

  Kept for later `predict` calls with the same strategy and step (eval, then test, or
  every evaluation of a training run), so that they run the graphs traced already.
  """

  @tf.function(reduce_retracing=True)
  def run(batch):
    outputs = strategy.run(step_fn, args=(batch,))
    # Replicas hold consecutive slices of the global batch: gather them in order.
    return tf.nest.map_structure(lambda x: strategy.gather(x, axis=0), outputs)

  return run


def predict(strategy, step_fn, arrays, batch_size, buckets=None, sequence_outputs=()):
  """Runs `step_fn` over every row, in input order, under `strategy`.

  Args:
    strategy: a tf.distribute.Strategy.
    step_fn: batch -> {name: tensor [b, ...]} on one replica.
    arrays: {name: np.ndarray [N, ...]} the inputs; `input_ids`, `input_mask`,
      `segment_ids` are [N, S].
    batch_size: global batch size (a multiple of the number of replicas).
    buckets: `length_buckets.parse_buckets` lengths: the rows, sorted by length,
      are cut into batches, each run at the smallest bucket holding its longest
      row, so only the last batch is partly padding (None: every batch at S, in
      input order).
    sequence_outputs: names of outputs [b, L, ...] over the sequence; they come
      back padded with zeros to S.

  Returns:
    {name: np.ndarray [N, ...]}: one row per input row, none dropped or repeated.
  """
  count = len(next(iter(arrays.values())))
  width = arrays["input_ids"].shape[1]
  if buckets is None:
    order, lengths = np.arange(count), [width]
    batch_buckets = np.zeros(count, np.int64)
  else:
    order, lengths = np.argsort(arrays["input_mask"].sum(1), kind="stable"), buckets
    ids = length_buckets.bucket_ids(arrays["input_mask"][order], buckets)  # ascending
    # The bucket of each sorted row's batch: that of the batch's last (longest) row.
    last_of_batch = np.minimum((np.arange(count) // batch_size + 1) * batch_size, count) - 1
    batch_buckets = ids[last_of_batch]

  run = _global_step(strategy, step_fn)
  rows, parts = [], []
  for bucket in np.unique(batch_buckets):
    members = order[batch_buckets == bucket]  # Whole batches, but for the last bucket's.
    length = min(lengths[bucket], width)
    dataset, num_batches = padded_dataset(
        {name: value[members][:, :length] if name in length_buckets.SEQUENCE_FEATURES
         else value[members] for name, value in arrays.items()}, batch_size)
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    outputs = [{k: v.numpy() for k, v in run(next(iterator)).items()}
               for _ in range(num_batches)]
    part = {name: np.concatenate([o[name] for o in outputs])[:len(members)]
            for name in outputs[0]}
    for name in sequence_outputs:
      padding = [(0, 0), (0, width - part[name].shape[1])] + [(0, 0)] * (part[name].ndim - 2)
      part[name] = np.pad(part[name], padding)
    rows.append(members)
    parts.append(part)
  order = np.argsort(np.concatenate(rows), kind="stable")
  return {name: np.concatenate([p[name] for p in parts])[order] for name in parts[0]}


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
