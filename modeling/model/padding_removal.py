"""Padding removal: the encoder's per-token work on the real tokens only.

Between attentions, every part of a BERT layer (the projections, the feed-forward
block, LayerNorm, dropout) acts on each token alone, so it can run on the T real
tokens of a batch, [T, H], instead of all of its B*S positions; only attention
needs the [B, S] grid, where the padded keys are masked anyway. On batches padded
to their longest row this skips the padding's share of the matmuls (about half for
short texts in random batches). The real tokens' outputs are the padded encoder's
up to float rounding; the padded positions' outputs are zeros, where the original
computes values that no head reads.

Shape legend: B batch, S sequence length, T real tokens in the batch, W width.
"""

import tensorflow as tf

from modeling.model.layers import get_shape_list


class RealTokens:
  """Where the real tokens of a [B, S] batch are among its B*S flat positions."""

  def __init__(self, input_mask):
    """input_mask: int [B, S], nonzero for real tokens."""
    input_mask = tf.convert_to_tensor(input_mask)
    batch_size, seq_length = get_shape_list(input_mask, expected_rank=2)
    self.positions = batch_size * seq_length
    flat_mask = tf.reshape(input_mask, [-1])  # [B*S]
    self.rows = tf.cast(tf.where(tf.not_equal(flat_mask, 0)), tf.int32)  # [T, 1]

  def gather(self, x):
    """float [B*S, W] -> the real tokens' rows, [T, W]."""
    return tf.gather_nd(x, self.rows)

  def scatter(self, x):
    """float [T, W] -> [B*S, W], the real tokens back in place and zeros elsewhere."""
    return tf.scatter_nd(self.rows, x, [self.positions, get_shape_list(x)[1]])
