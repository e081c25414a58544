"""Scaled dot-product attention over heads, as the original `attention_layer` computes it.

Shape legend: B batch, N heads, F "from" positions, T "to" positions, D head size.
"""

import math

import tensorflow as tf

from modeling.layers import dropout


def attention_mask_adder(input_mask, dtype=tf.float32):
  """The additive attention mask of the original, from the "to" side only.

  Args:
    input_mask: int or float [B, T], 1 for real tokens, 0 for padding.

  Returns:
    float [B, 1, 1, T]: 0 where attended, -10000 where masked; broadcasts over
    heads and "from" positions.
  """
  mask = tf.cast(input_mask, dtype)[:, tf.newaxis, tf.newaxis, :]  # [B, 1, 1, T]
  return (1.0 - mask) * -10000.0


def dot_product_attention(q, k, v, mask_adder, dropout_rate=0.0, training=False):
  """softmax(q k^T / sqrt(D) + mask_adder) v, with dropout on the probabilities.

  Args:
    q: float [B, N, F, D].
    k: float [B, N, T, D].
    v: float [B, N, T, D].
    mask_adder: float [B, 1, 1, T] from `attention_mask_adder`.
    dropout_rate: dropout on the attention probabilities when training.
    training: apply dropout.

  Returns:
    float [B, N, F, D].
  """
  head_size = q.shape[-1]
  scores = tf.matmul(q, k, transpose_b=True)  # [B, N, F, T]
  scores = scores * (1.0 / math.sqrt(float(head_size))) + mask_adder
  probs = dropout(tf.nn.softmax(scores), dropout_rate, training)  # [B, N, F, T]
  return tf.matmul(probs, v)  # [B, N, F, D]
