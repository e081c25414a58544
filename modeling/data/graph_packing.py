"""Model inputs packed from word-piece ids in TensorFlow ops, for SavedModels and features.

`pack_inputs` is the original `convert_single_example`'s packing of ragged word-piece ids:
`[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, the longer segment truncated first,
padded to `max_seq_length` (or to a length bucket).
"""

import tensorflow as tf

from modeling.data import length_buckets


def pack_inputs(ids_a, ids_b, max_seq_length, cls_id, sep_id, buckets=None):
  """Builds model inputs from word-piece ids, as the original `convert_single_example`.

  Each output position gathers its piece from the flat values, so the graph holds
  only dense ops (Range, Gather, Select), which TFLite runs as builtins (the
  TFLite export packs with it too).

  Args:
    ids_a: int RaggedTensor [B, (n)], first segment.
    ids_b: RaggedTensor [B, (m)] second segment of the same dtype, or None. A row
      with no pieces is a single-segment row (as the original's `if tokens_b:`).
    max_seq_length: int (or an int scalar tensor), the padded length S.
    cls_id, sep_id: ids of [CLS] and [SEP].
    buckets: `length_buckets.parse_buckets` lengths: the batch is padded to the
      smallest that holds its longest row instead of `max_seq_length`.

  Returns:
    int32 [B, S] input_ids, input_mask, segment_ids (S the bucket's length with
    `buckets`).
  """
  if tf.is_tensor(max_seq_length):  # A Python int keeps S static.
    max_seq_length = tf.cast(max_seq_length, tf.int32)
  splits_a = tf.cast(ids_a.row_splits, tf.int32)  # [B + 1]
  length_a = splits_a[1:] - splits_a[:-1]  # [B]
  if ids_b is None:
    splits_b, values_b = tf.zeros_like(splits_a), tf.zeros([0], ids_a.dtype)
  else:
    splits_b, values_b = tf.cast(ids_b.row_splits, tf.int32), ids_b.flat_values
  length_b = splits_b[1:] - splits_b[:-1]  # [B]
  has_b = tf.cast(length_b > 0, tf.int32)  # [B]
  budget = max_seq_length - 2 - has_b  # [B] pieces left after [CLS], [SEP]s
  # Popping one piece at a time from the longer segment (b on ties) keeps this many:
  keep_b = tf.minimum(length_b, tf.maximum(budget - length_a, budget // 2))[:, None]  # [B, 1]
  keep_a = tf.minimum(length_a[:, None], budget[:, None] - keep_b)  # [B, 1]
  total = 2 + keep_a + keep_b + has_b[:, None]  # [B, 1] packed length
  if buckets is None:
    seq_length = max_seq_length
  else:
    seq_length = length_buckets.bucket_length(tf.reduce_max(tf.concat([total[:, 0], [0]], 0)),
                                              buckets)
  position = tf.range(seq_length)[None, :]  # [1, S]
  # [CLS] a [SEP] b [SEP]: a at 1 .. keep_a, b at keep_a + 2 .. keep_a + keep_b + 1.
  in_a = (position >= 1) & (position <= keep_a)  # [B, S]
  in_b = (position >= keep_a + 2) & (position < keep_a + keep_b + 2)  # [B, S]
  is_sep = (position == keep_a + 1) | ((position == total - 1) & (has_b[:, None] > 0))

  def gather(values, starts, offset, inside):
    # A zero after the values, so masked-out positions gather something in range.
    values = tf.concat([tf.cast(values, tf.int32), [0]], 0)
    index = tf.where(inside, starts[:, None] + position - offset, tf.size(values) - 1)
    return tf.gather(values, index)  # [B, S]

  input_ids = tf.where(in_a, gather(ids_a.flat_values, splits_a[:-1], 1, in_a),
                       gather(values_b, splits_b[:-1], keep_a + 2, in_b))
  input_ids = tf.where(is_sep, sep_id, tf.where(position == 0, cls_id, input_ids))
  input_mask = tf.cast(position < total, tf.int32)  # [B, S]
  segment_ids = tf.cast((position >= keep_a + 2) & (position < total), tf.int32)  # [B, S]
  return input_ids, input_mask, segment_ids
