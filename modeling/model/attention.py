"""Scaled dot-product attention over heads, as the original `attention_layer` computes it.

Two exact implementations of the same function:
  `full_attention`: the original's [B, N, F, T] score matrix; memory grows as F * T.
  `chunked_attention`: queries in blocks of C rows, and for each query block the
    keys in blocks of C with a running maximum and sum (an online softmax); the
    backward pass recomputes the blocks instead of keeping them (a custom
    gradient). At most a few [B, N, C, C] blocks live at once, so memory grows
    linearly in F and T.
`dot_product_attention` picks one by length or by `attention_chunk_size`.

Shape legend: B batch, N heads, F "from" positions, T "to" positions, D head size,
C block size, Fb = ceil(F / C) query blocks, Tb = ceil(T / C) key blocks.
"""

import math

import tensorflow as tf

from modeling.model.layers import dropout, dropout_seed, get_shape_list, stateless_dropout

# Automatic choice (attention_chunk_size None or 0): full attention up to this many
# "to" positions, chunked attention in blocks of AUTO_CHUNK_SIZE above.
AUTO_CHUNK_THRESHOLD = 1024
AUTO_CHUNK_SIZE = 512

# Additive score of the keys that pad the last key block: exp() of it is exactly 0,
# even next to keys masked with -10000.
_PADDING_KEY_SCORE = -1e30


def attention_mask_adder(input_mask, dtype=tf.float32):
  """The additive attention mask of the original, from the "to" side only.

  Args:
    input_mask: int or float [B, T], 1 for real tokens, 0 for padding.

  Returns:
    float [B, 1, 1, T]: 0 where attended, -10000 where masked; broadcasts over
    heads and "from" positions.
  """
  # expand_dims, not [:, newaxis, newaxis, :]: TFLite has no builtin for a strided
  # slice adding axes when T is unknown.
  mask = tf.expand_dims(tf.expand_dims(tf.cast(input_mask, dtype), 1), 1)  # [B, 1, 1, T]
  return (1.0 - mask) * -10000.0


def dot_product_attention(q, k, v, mask_adder, dropout_rate=0.0, training=False,
                          chunk_size=None, max_length=None):
  """softmax(q k^T / sqrt(D) + mask_adder) v, with dropout on the probabilities.

  Args:
    q: float [B, N, F, D].
    k: float [B, N, T, D].
    v: float [B, N, T, D].
    mask_adder: float [B, 1, 1, T] from `attention_mask_adder`.
    dropout_rate: dropout on the attention probabilities when training.
    training: apply dropout.
    chunk_size: None or 0: `full_attention` up to AUTO_CHUNK_THRESHOLD "to"
      positions, `chunked_attention` in blocks of AUTO_CHUNK_SIZE above; a
      positive int C: `chunked_attention` in blocks of C when T > C, else full.
      A T only known at run time is dispatched with tf.cond, unless
      `max_length` settles it.
    max_length: the longest T the model accepts (the config's
      `max_sequence_length`), or None for no limit. When it is within the
      threshold, full attention is used whatever T is: a tf.cond would also
      build the chunked branch and its gradient (length buckets run with T
      unknown while tracing: 16 GB for MiniLM's training step, against 3).

  Returns:
    float [B, N, F, D].
  """
  threshold, block = ((chunk_size, chunk_size) if chunk_size
                      else (AUTO_CHUNK_THRESHOLD, AUTO_CHUNK_SIZE))
  to_length = get_shape_list(k)[2]
  full = lambda: full_attention(q, k, v, mask_adder, dropout_rate, training)  # noqa: E731
  chunked = lambda: chunked_attention(  # noqa: E731
      q, k, v, mask_adder, block, dropout_rate, training)
  if isinstance(to_length, int):
    return chunked() if to_length > threshold else full()
  if max_length is not None and max_length <= threshold:
    return full()
  return tf.cond(to_length > threshold, chunked, full)


def full_attention(q, k, v, mask_adder, dropout_rate=0.0, training=False):
  """The original's attention: the whole [B, N, F, T] score matrix at once.

  Arguments and result as `dot_product_attention`.
  """
  head_size = q.shape[-1]
  scores = tf.matmul(q, k, transpose_b=True)  # [B, N, F, T]
  # The mask adder and the softmax stay in float32 under mixed precision.
  scores = tf.cast(scores, tf.float32) * (1.0 / math.sqrt(float(head_size))) + mask_adder
  probs = dropout(tf.nn.softmax(scores), dropout_rate, training)  # [B, N, F, T]
  return tf.matmul(tf.cast(probs, v.dtype), v)  # [B, N, F, D]


def chunked_attention(q, k, v, mask_adder, chunk_size, dropout_rate=0.0, training=False):
  """The same function as `full_attention`, in memory linear in F and T.

  F and T are padded up to multiples of `chunk_size`; padded keys get weight 0
  and padded queries are dropped. Dropout masks are drawn per block from one
  seed, so the backward pass regenerates the same ones.

  Args:
    q, k, v, mask_adder, dropout_rate, training: as `dot_product_attention`.
    chunk_size: int C, rows per query block and per key block.

  Returns:
    float [B, N, F, D].
  """
  batch_size, num_heads, from_length, head_size = get_shape_list(q)
  q_blocks = _split_blocks(q, 2, chunk_size)  # [Fb, B, N, C, D]
  k_blocks = _split_blocks(k, 2, chunk_size)  # [Tb, B, N, C, D]
  v_blocks = _split_blocks(v, 2, chunk_size)  # [Tb, B, N, C, D]
  adder_blocks = _split_blocks(mask_adder, 3, chunk_size,
                               _PADDING_KEY_SCORE)  # [Tb, B, 1, 1, C]
  rate = dropout_rate if training else 0.0
  # From the training loop's checkpointed dropout generator, as `dropout` draws.
  seed = dropout_seed() if rate else tf.zeros([2], tf.int64)
  out_blocks = _blocked_attention(q_blocks, k_blocks, v_blocks, adder_blocks, seed,
                                  rate)  # [Fb, B, N, C, D]
  out = tf.transpose(out_blocks, [1, 2, 0, 3, 4])  # [B, N, Fb, C, D]
  out = tf.reshape(out, [batch_size, num_heads, -1, head_size])  # [B, N, Fb*C, D]
  return out[:, :, :from_length]  # [B, N, F, D]


def _split_blocks(x, axis, chunk_size, padding_value=0.0):
  """Pads `axis` of a rank-4 x to a multiple of C and makes its blocks the leading axis.

  Args:
    x: float rank-4 tensor, length L on `axis` (2 for [B, N, L, D], 3 for [B, 1, 1, L]).
    axis: 2 or 3.
    chunk_size: int C.
    padding_value: value of the padded entries.

  Returns:
    float [ceil(L/C), *x.shape with L replaced by C] (for axis 2: [Lb, B, N, C, D]).
  """
  shape = get_shape_list(x)
  num_blocks = (shape[axis] + chunk_size - 1) // chunk_size
  padding = [[0, 0]] * 4
  padding[axis] = [0, num_blocks * chunk_size - shape[axis]]
  x = tf.pad(x, padding, constant_values=padding_value)  # L padded to Lb*C
  x = tf.reshape(x, shape[:axis] + [num_blocks, chunk_size] + shape[axis + 1:])  # L -> Lb, C
  return tf.transpose(x, [axis] + [i for i in range(5) if i != axis])  # [Lb, ..., C, ...]


def _blocked_forward(blocks):
  """Online-softmax attention of every query block over every key block.

  Args:
    blocks: the `_Blocks` of one call.

  Returns:
    (out_blocks float [Fb, B, N, C, D], row_max float32 [Fb, B, N, C], row_sum
    float32 [Fb, B, N, C]): the output and, per query row, the softmax maximum and
    normaliser, which the backward pass needs. (Their log-sum-exp alone would lose
    precision next to the -10000 of masked keys.)
  """
  def attend_query_block(i):
    def step(j, acc, row_max, row_sum):
      scores = blocks.scores(i, j)  # [B, N, C, C]
      new_max = tf.maximum(row_max, tf.reduce_max(scores, -1))  # [B, N, C]
      correction = tf.exp(row_max - new_max)  # [B, N, C]
      probs = tf.exp(scores - new_max[..., tf.newaxis])  # [B, N, C, C], unnormalised
      row_sum = row_sum * correction + tf.reduce_sum(probs, -1)
      acc = acc * correction[..., tf.newaxis] + blocks.matmul(
          blocks.drop(probs, i, j), blocks.v_blocks[j])  # [B, N, C, D]
      return j + 1, acc, new_max, row_sum

    acc = tf.zeros_like(blocks.q_blocks[i], tf.float32)  # [B, N, C, D]
    row_sum = tf.zeros_like(acc[..., 0])  # [B, N, C]
    _, acc, row_max, row_sum = tf.while_loop(
        lambda j, *_: j < blocks.num_key_blocks, step,
        (tf.constant(0), acc, row_sum - math.inf, row_sum), parallel_iterations=1)
    return tf.cast(acc / row_sum[..., tf.newaxis], blocks.dtype), row_max, row_sum

  return tf.map_fn(attend_query_block, tf.range(blocks.num_query_blocks),
                   fn_output_signature=(blocks.dtype, tf.float32, tf.float32),
                   parallel_iterations=1)


def _blocked_backward(blocks, out_blocks, row_max, row_sum, d_out):
  """Gradients of `_blocked_forward`'s output, recomputing every block.

  Per block, P = exp(scores - row_max) / row_sum and, with delta = rowsum(dOut * Out),
  dScores = P * (dropout(dOut V^T) - delta). dq is accumulated over key blocks
  per query block; dk, dv and the mask adder's gradient over query blocks per
  key block.

  Args:
    blocks: the `_Blocks` of the forward call.
    out_blocks, row_max, row_sum: the results of `_blocked_forward`.
    d_out: float [Fb, B, N, C, D], the gradient of out_blocks.

  Returns:
    Gradients of q_blocks, k_blocks, v_blocks and adder_blocks, in their shapes.
  """
  delta = tf.reduce_sum(tf.cast(d_out, tf.float32) * tf.cast(out_blocks, tf.float32),
                        -1)  # [Fb, B, N, C]

  def probs_and_d_scores(i, j):
    probs = (tf.exp(blocks.scores(i, j) - row_max[i][..., tf.newaxis])
             / row_sum[i][..., tf.newaxis])  # [B, N, C, C]
    d_probs = blocks.drop(blocks.matmul(d_out[i], blocks.v_blocks[j], transpose_b=True), i, j)
    return probs, probs * (d_probs - delta[i][..., tf.newaxis])  # [B, N, C, C] twice

  def d_query_block(i):
    def step(j, d_q):
      _, d_scores = probs_and_d_scores(i, j)
      return j + 1, d_q + blocks.matmul(d_scores, blocks.k_blocks[j])  # [B, N, C, D]

    _, d_q = tf.while_loop(lambda j, _: j < blocks.num_key_blocks, step,
                           (tf.constant(0), tf.zeros_like(blocks.q_blocks[i], tf.float32)),
                           parallel_iterations=1)
    return tf.cast(d_q * blocks.scale, blocks.dtype)

  def d_key_block(j):
    def step(i, d_k, d_v, d_adder):
      probs, d_scores = probs_and_d_scores(i, j)
      d_v += blocks.matmul(blocks.drop(probs, i, j), d_out[i], transpose_a=True)  # [B, N, C, D]
      d_k += blocks.matmul(d_scores, blocks.q_blocks[i], transpose_a=True)  # [B, N, C, D]
      d_adder += tf.reduce_sum(d_scores, axis=[1, 2], keepdims=True)  # [B, 1, 1, C]
      return i + 1, d_k, d_v, d_adder

    zeros = tf.zeros_like(blocks.k_blocks[j], tf.float32)  # [B, N, C, D]
    _, d_k, d_v, d_adder = tf.while_loop(
        lambda i, *_: i < blocks.num_query_blocks, step,
        (tf.constant(0), zeros, zeros, tf.zeros_like(blocks.adder_blocks[j], tf.float32)),
        parallel_iterations=1)
    return (tf.cast(d_k * blocks.scale, blocks.dtype), tf.cast(d_v, blocks.dtype),
            tf.cast(d_adder, blocks.adder_blocks.dtype))

  dtype = blocks.dtype
  d_q = tf.map_fn(d_query_block, tf.range(blocks.num_query_blocks),
                  fn_output_signature=dtype, parallel_iterations=1)
  d_k, d_v, d_adder = tf.map_fn(d_key_block, tf.range(blocks.num_key_blocks),
                                fn_output_signature=(dtype, dtype, blocks.adder_blocks.dtype),
                                parallel_iterations=1)
  return d_q, d_k, d_v, d_adder


def _blocked_attention(q_blocks, k_blocks, v_blocks, adder_blocks, seed, dropout_rate):
  """`_blocked_forward` with `_blocked_backward` as its gradient.

  The gradient keeps only the inputs, the output and the [Fb, B, N, C] row
  maxima and sums, not the blocks of scores.

  Args:
    q_blocks: float [Fb, B, N, C, D].
    k_blocks, v_blocks: float [Tb, B, N, C, D].
    adder_blocks: float [Tb, B, 1, 1, C], the mask adder per key block.
    seed: int64 [2], seed of the dropout masks (unused when dropout_rate is 0).
    dropout_rate: Python float, dropout on the probabilities (0 for none).

  Returns:
    float [Fb, B, N, C, D].
  """
  @tf.custom_gradient
  def attend(q_blocks, k_blocks, v_blocks, adder_blocks, seed):
    blocks = _Blocks(q_blocks, k_blocks, v_blocks, adder_blocks, seed, dropout_rate)
    out_blocks, row_max, row_sum = _blocked_forward(blocks)

    def backward(d_out):
      return (*_blocked_backward(blocks, out_blocks, row_max, row_sum, d_out), None)

    return out_blocks, backward

  return attend(q_blocks, k_blocks, v_blocks, adder_blocks, seed)


class _Blocks:
  """The blocked inputs of one call, with the score and dropout of block (i, j).

  Query block i and key block j are recomputed identically by the forward and
  the backward pass: the dropout mask of (i, j) comes from a seed folded with
  the block index.
  """

  def __init__(self, q_blocks, k_blocks, v_blocks, adder_blocks, seed, dropout_rate):
    """Arguments as `_blocked_attention`."""
    self.q_blocks, self.k_blocks, self.v_blocks = q_blocks, k_blocks, v_blocks
    self.adder_blocks, self.seed, self.dropout_rate = adder_blocks, seed, dropout_rate
    self.dtype = q_blocks.dtype
    self.scale = 1.0 / math.sqrt(float(q_blocks.shape[-1]))
    self.num_query_blocks = tf.shape(q_blocks)[0]
    self.num_key_blocks = tf.shape(k_blocks)[0]

  def matmul(self, a, b, **kwargs):
    """tf.matmul in the inputs' dtype (bf16 under mixed precision), result in float32."""
    a, b = (tf.cast(x, self.dtype) for x in (a, b))
    return tf.cast(tf.matmul(a, b, **kwargs), tf.float32)

  def scores(self, i, j):
    """float32 [B, N, C, C]: q_i k_j^T / sqrt(D) + mask adder of key block j."""
    scores = self.matmul(self.q_blocks[i], self.k_blocks[j], transpose_b=True)  # [B, N, C, C]
    return scores * self.scale + tf.cast(self.adder_blocks[j], tf.float32)

  def drop(self, x, i, j):
    """Dropout of float [B, N, C, C] with the mask of block (i, j)."""
    if not self.dropout_rate:
      return x
    block_seed = tf.random.experimental.stateless_fold_in(
        self.seed, i * self.num_key_blocks + j, alg="philox")  # As in stateless_dropout.
    return stateless_dropout(x, self.dropout_rate, block_seed)
