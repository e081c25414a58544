"""Model inputs packed from word-piece ids in TensorFlow ops, for SavedModels and features.

`pack_inputs` is the original `convert_single_example`'s packing on ragged tensors:
`[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, the longer segment truncated first,
padded to `max_seq_length` (or to a length bucket).
"""

import tensorflow as tf

from modeling.data import length_buckets


def pack_inputs(ids_a, ids_b, max_seq_length, cls_id, sep_id, buckets=None):
  """Builds model inputs from word-piece ids, as the original `convert_single_example`.

  Args:
    ids_a: int64 RaggedTensor [B, (n)], first segment.
    ids_b: int64 RaggedTensor [B, (m)] second segment, or None. A row with no
      pieces is a single-segment row (as the original's `if tokens_b:`).
    max_seq_length: int (or an int scalar tensor), the padded length S.
    cls_id, sep_id: ids of [CLS] and [SEP].
    buckets: `length_buckets.parse_buckets` lengths: the batch is padded to the
      smallest that holds its longest row instead of `max_seq_length`.

  Returns:
    int32 [B, S] input_ids, input_mask, segment_ids (S the bucket's length with
    `buckets`).
  """
  length_a = ids_a.row_lengths()  # [B]
  if ids_b is None:
    ids_b = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int64),
                                             tf.zeros_like(length_a))
  length_b = ids_b.row_lengths()  # [B]
  has_b = tf.cast(length_b > 0, tf.int64)  # [B]
  budget = tf.cast(max_seq_length, tf.int64) - 2 - has_b  # [B] pieces left after [CLS], [SEP]s
  # Popping one piece at a time from the longer segment (b on ties) keeps this many:
  keep_b = tf.minimum(length_b, tf.maximum(budget - length_a, budget // 2))
  keep_a = tf.minimum(length_a, budget - keep_b)

  def head(ids, keep):
    return tf.ragged.boolean_mask(ids, tf.ragged.range(ids.row_lengths()) < keep[:, None])

  def constant(value, counts):
    return tf.RaggedTensor.from_row_lengths(tf.fill([tf.reduce_sum(counts)], value), counts)

  ones = tf.ones_like(length_a)
  pieces = [constant(tf.constant(cls_id, tf.int64), ones), head(ids_a, keep_a),
            constant(tf.constant(sep_id, tf.int64), ones), head(ids_b, keep_b),
            constant(tf.constant(sep_id, tf.int64), has_b)]
  segments = [tf.zeros_like(p) if i < 3 else tf.ones_like(p) for i, p in enumerate(pieces)]
  packed = tf.concat(pieces, axis=1)
  shape = [None, max_seq_length]
  if tf.is_tensor(max_seq_length):
    shape = tf.stack([packed.nrows(), tf.cast(max_seq_length, tf.int64)])
  if buckets is not None:
    longest = tf.reduce_max(tf.concat([packed.row_lengths(), [0]], 0))
    shape = tf.stack([packed.nrows(), length_buckets.bucket_length(longest, buckets)])
  input_ids = packed.to_tensor(0, shape=shape)  # [B, S]
  segment_ids = tf.concat(segments, axis=1).to_tensor(0, shape=shape)  # [B, S]
  input_mask = tf.ones_like(packed).to_tensor(0, shape=shape)  # [B, S]
  return (tf.cast(input_ids, tf.int32), tf.cast(input_mask, tf.int32),
          tf.cast(segment_ids, tf.int32))
