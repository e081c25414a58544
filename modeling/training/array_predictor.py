"""Prediction over arrays held in memory: every row once, in input order, under a strategy.

`predict` runs a task's per-replica step over {name: np.ndarray [N, ...]} in
batches (by length bucket, sorted, so only the last batch of a bucket is partly
padding), gathers the replicas' outputs and puts the rows back in input order.
The classifier, SQuAD, NER, distillation and feature extraction predict with it.
"""

import functools

import numpy as np
import tensorflow as tf

from modeling.data import length_buckets
from modeling.training import steps


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
def _gathering_step(strategy, step_fn, jit_compile):
  """A tf.function running `step_fn` on each replica and gathering the global batch.

  Kept for later `predict` calls with the same strategy and step (eval, then test, or
  every evaluation of a training run), so that they run the graphs traced already.
  """
  replica_fn = steps.jit_replica_fn(strategy, step_fn) if jit_compile else step_fn

  @tf.function(reduce_retracing=True)
  def run(batch):
    outputs = strategy.run(replica_fn, args=(batch,))
    # Replicas hold consecutive slices of the global batch: gather them in order.
    return tf.nest.map_structure(lambda x: strategy.gather(x, axis=0), outputs)

  return run


def predict(strategy, step_fn, arrays, batch_size, buckets=None, sequence_outputs=(),
            jit_compile=False):
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
    jit_compile: compile `step_fn` whole (`steps.jit_replica_fn`): one program
      per bucket length, every batch full (the last one padded).

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

  run = _gathering_step(strategy, step_fn, jit_compile)
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
