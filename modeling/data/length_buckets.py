"""Length buckets: each batch padded to the smallest of a few fixed lengths that holds it.

The original pads every fine-tuning, evaluation and prediction example to
`max_seq_length`; real sentences are much shorter (on the topics data the median is
25 pieces of 128). Here a batch is padded to the smallest *bucket* length that holds
its longest example, and the buckets are few and fixed (by default multiples of 32 up
to `max_seq_length`), so XLA or a TPU compiles one program per bucket, no more.
The model masks padding, so results do not change beyond float noise.

  buckets = parse_buckets("auto", 128)           # [32, 64, 96, 128]
  ids = bucket_ids(arrays["input_mask"], buckets)
  dataset = training_batches(arrays, buckets, 32, seed, num_batches, skip_batches)

Training order (`batch_plan`): each pass over the data is a seeded permutation of
the examples (plus the fewer than B examples the previous pass left), grouped by
bucket in that order and cut into batches of B; the remainders of the buckets are
batched together at the bucket of their longest member; the batches of a pass are
then shuffled. Every example is in exactly one batch of each pass (the last fewer
than B open the next pass, as in the original's repeated stream), the plan is a
function of the seed alone, and a resumed run skips the batches already trained on.

Without grouping (`group_by_length=False`) a pass is cut into batches in the order of
its permutation, each padded to the bucket of its longest member: the batches of an
unbucketed run (`none`), padded less (with `auto` on an uncompiled step, to the
multiple of 8 above the longest: `training_buckets`). Grouped batches are faster (short batches of
short examples) but each holds examples of one length range; where the labels depend
on length (multi-label sets: short texts mention fewer things) that biases each step.
"""

import numpy as np
import tensorflow as tf

from modeling.data.pretraining_input import SEQUENCE_FEATURES

_STEP = 32
# `training_buckets`' step. Not 1 (each batch at its longest): after training at
# dozens of lengths, TensorFlow's CPU evaluation ran 10x slower (memory allocation,
# measured), and 8 keeps most of the gain.
UNCOMPILED_STEP = 8


def parse_buckets(spec, max_seq_length, flag="--length_buckets"):
  """The bucket lengths of a flag value, ascending, the last one `max_seq_length`.

  Args:
    spec: "auto" (multiples of 32 below `max_seq_length`, and it), "none" (one
      bucket: every batch padded to `max_seq_length`, as the original), or a
      comma list of lengths (`max_seq_length` is added when absent).
    max_seq_length: the longest length.
    flag: named in errors.

  Raises:
    ValueError: a length that is not a positive integer or exceeds max_seq_length.
  """
  spec = spec.strip().lower()
  if spec == "none":
    return [max_seq_length]
  if spec == "auto":
    return _multiples(_STEP, max_seq_length)
  lengths = set()
  for item in spec.split(","):
    try:
      length = int(item)
    except ValueError:
      raise ValueError(f"{flag}={spec}: {item!r} is not a length (or use auto or none)") from None
    if not 0 < length <= max_seq_length:
      raise ValueError(f"{flag}={spec}: {length} is not in [1, --max_seq_length="
                       f"{max_seq_length}]")
    lengths.add(length)
  return sorted(lengths | {max_seq_length})


def _multiples(step, max_seq_length):
  return list(range(step, max_seq_length, step)) + [max_seq_length]


def training_buckets(buckets, spec, group_by_length, compiled):
  """The lengths training batches are padded to.

  `buckets` (of `spec`), except for `auto` ungrouped batches on a step that is not
  compiled: the multiples of `UNCOMPILED_STEP`. Ungrouped, the buckets do not choose
  the batches, they only pad them, and an uncompiled step serves every length with
  one trace, so finer lengths cost nothing but the padding saved (XLA and TPUs
  compile one program per length: there `auto` keeps its few).
  """
  if spec.strip().lower() == "auto" and not group_by_length and not compiled:
    return _multiples(UNCOMPILED_STEP, buckets[-1])
  return buckets


def bucket_ids(input_mask, buckets):
  """The bucket index of each example: the smallest bucket holding its tokens.

  Args:
    input_mask: np.ndarray [N, S] of 0/1.
    buckets: ascending lengths, the last >= S's real lengths.

  Returns:
    np.ndarray int [N].
  """
  lengths = np.asarray(input_mask).sum(axis=1)
  return np.searchsorted(np.asarray(buckets), lengths, side="left")


def bucket_length(longest, buckets):
  """`bucket_ids` in TensorFlow ops, for graphs: the smallest of `buckets` (ascending)
  that holds `longest` tokens, a scalar tensor of `longest`'s int dtype."""
  lengths = tf.constant(buckets, longest.dtype)  # [K]
  # The count of smaller buckets is the index (a sum, not searchsorted: TFLite has
  # no LowerBound builtin).
  return tf.gather(lengths, tf.reduce_sum(tf.cast(lengths < longest, tf.int32)))


def batch_plan(ids, batch_size, seed, num_batches, group_by_length=True):
  """The first `num_batches` training batches: (bucket index, example indexes) pairs.

  See the module docstring.

  Args:
    ids: np.ndarray int [N], `bucket_ids` of the examples.
    batch_size: B.
    seed: int, the seed of the permutations and batch orders.
    num_batches: how many batches to plan.
    group_by_length: batch the examples of each bucket together; else batch in
      the permutation's order, each batch at the bucket of its longest member.

  Returns:
    (np.ndarray int [num_batches] bucket indexes, np.ndarray int [num_batches, B]).
  """
  rng = np.random.default_rng(seed)
  count = len(ids)
  buckets, batches = [], []
  groups = ids if group_by_length else np.zeros_like(ids)
  carry = np.zeros([0], np.int64)
  while len(batches) < num_batches:
    order = np.concatenate([carry, rng.permutation(count)])
    pass_batches, rest = [], []
    for group in np.unique(groups[order]):
      members = order[groups[order] == group]
      full = len(members) // batch_size * batch_size
      pass_batches += [(ids[members[i:i + batch_size]].max(), members[i:i + batch_size])
                       for i in range(0, full, batch_size)]
      rest.append(members[full:])
    rest = np.concatenate(rest)
    mixed = len(rest) // batch_size * batch_size
    pass_batches += [(ids[rest[i:i + batch_size]].max(), rest[i:i + batch_size])
                     for i in range(0, mixed, batch_size)]
    carry = rest[mixed:]
    for index in rng.permutation(len(pass_batches)):
      buckets.append(pass_batches[index][0])
      batches.append(pass_batches[index][1])
  return (np.array(buckets[:num_batches], np.int64),
          np.array(batches[:num_batches], np.int64).reshape([num_batches, batch_size]))


class TrainingPlan:
  """The batches of a training run: which examples (`batch_plan`), at which length.

  Attributes:
    batches: np.ndarray int [num_batches, B], example indexes.
    lengths: np.ndarray int32 [num_batches], each batch's bucket length.
  """

  def __init__(self, input_mask, buckets, batch_size, seed, num_batches, group_by_length=True):
    """Args:
      input_mask: np.ndarray [N, S] of the examples.
      buckets: `parse_buckets` lengths.
      batch_size, seed, num_batches, group_by_length: as `batch_plan`.
    """
    plan_buckets, self.batches = batch_plan(bucket_ids(input_mask, buckets), batch_size, seed,
                                            num_batches, group_by_length)
    self.lengths = np.asarray(buckets, np.int32)[plan_buckets]

  def dataset(self, arrays, skip_batches=0):
    """The planned batches of `arrays` from `skip_batches` on, each cut to its length.

    Args:
      arrays: {name: np.ndarray [N, ...]}; `SEQUENCE_FEATURES` are [N, S].
      skip_batches: batches already trained on (where a resumed run starts).

    Returns:
      A tf.data.Dataset of {name: tensor [B, L_bucket] or [B, ...]}, with
      is_real_example all 1; the sequence dimension is None in its element spec
      (one trace serves every bucket; XLA compiles one program per length).
    """
    count = len(next(iter(arrays.values())))
    columns = {name: tf.constant(value) for name, value in
               dict(arrays, is_real_example=np.ones(count, np.float32)).items()}

    def gather(indexes, length):
      batch = {name: tf.gather(value, indexes) for name, value in columns.items()}
      for name in SEQUENCE_FEATURES:
        batch[name] = batch[name][:, :length]
      return batch

    return tf.data.Dataset.from_tensor_slices(
        (self.batches[skip_batches:], self.lengths[skip_batches:])).map(gather)


def training_batches(arrays, buckets, batch_size, seed, num_batches, skip_batches=0,
                     group_by_length=True):
  """`TrainingPlan(...).dataset(arrays, skip_batches)`: the global training batches of
  `arrays` ({name: np.ndarray [N, ...]}), each cut to its bucket length."""
  return TrainingPlan(arrays["input_mask"], buckets, batch_size, seed, num_batches,
                      group_by_length).dataset(arrays, skip_batches)
