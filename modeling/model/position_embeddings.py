"""Position embeddings: the original learned table, its hierarchical extension, sinusoids.

Every function returns the rows for positions 0..S-1 as float [S, H], computed in
the graph (H: the embedding width, ALBERT's embedding_size E for ALBERT), so
gradients reach the [n, H] variable `bert/embeddings/position_embeddings`
(n = max_position_embeddings), the only position variable of any type.

"hierarchical" is Su Jianlin's hierarchical decomposition (2020, "层次分解位置编码，
让BERT可以处理超长文本"). With the pretrained rows p_0..p_{n-1} and alpha a, let
u_i = (p_i - a p_0) / (1 - a); position k = i n + j gets

  q_k = a u_i + (1 - a) u_j = p_j + (a / (1 - a)) (p_i - p_0),

so positions below n (i = 0) get exactly the learned rows, and a pretrained
checkpoint extends to n^2 positions with no new variable. a = 0.5 would make
q_{i n + j} = q_{j n + i}.
"""

import tensorflow as tf


def position_table(config, table, seq_length):
  """The position rows of `config.position_embedding_type`, with its length check.

  Args:
    config: a `BertConfig`.
    table: float [n, H], the `bert/embeddings/position_embeddings` variable (None
      for "sinusoidal").
    seq_length: int or int32 scalar S.

  Returns:
    float [S, H].

  Raises:
    ValueError: S > config.max_sequence_length, when S is known when tracing.
    tf.errors.InvalidArgumentError: the same, when S is only known at run time.
  """
  kind = config.position_embedding_type
  if isinstance(seq_length, int):
    config.check_sequence_length(seq_length)
    checks = []
  elif config.max_sequence_length is None:
    checks = []
  else:
    checks = [tf.debugging.assert_less_equal(seq_length, config.max_sequence_length,
                                             message=config.position_limit_message())]
  with tf.control_dependencies(checks):
    if kind == "learned":
      return tf.slice(table, [0, 0], [seq_length, -1])  # [S, H]
    if kind == "hierarchical":
      return hierarchical_table(table, seq_length, config.hierarchical_alpha)
    return sinusoidal_table(seq_length, config.embedding_width)


def hierarchical_table(table, seq_length, alpha):
  """Rows q_k = p_j + (alpha / (1 - alpha)) (p_i - p_0), k = i n + j, k < S.

  Args:
    table: float [n, H], the learned rows p.
    seq_length: int or int32 scalar S <= n^2 (checked by `position_table`).
    alpha: float in (0, 1), not 0.5.

  Returns:
    float [S, H]; rows k < n are exactly table[k].
  """
  n, width = table.shape
  num_blocks = (seq_length + n - 1) // n  # m = ceil(S / n) values of i
  weight = tf.constant(alpha / (1.0 - alpha), table.dtype)
  outer = tf.slice(table, [0, 0], [num_blocks, -1]) - table[:1]  # [m, H], row 0 is 0
  rows = table[tf.newaxis, :, :] + weight * outer[:, tf.newaxis, :]  # [m, n, H]
  rows = tf.reshape(rows, [num_blocks * n, width])  # [m*n, H], row i*n+j = q_{i n + j}
  return rows[:seq_length]  # [S, H]


def sinusoidal_table(seq_length, width, dtype=tf.float32):
  """PE(pos, 2i) = sin(pos / 10000^(2i/H)), PE(pos, 2i+1) = cos(pos / 10000^(2i/H)).

  The fixed encoding of "Attention Is All You Need", dimensions interleaved as in
  its formula.

  Args:
    seq_length: int or int32 scalar S.
    width: H; an odd H ends with a sine column.

  Returns:
    float [S, H].
  """
  half = (width + 1) // 2
  positions = tf.cast(tf.range(seq_length), dtype)  # [S]
  exponents = tf.range(half, dtype=dtype) * (2.0 / width)  # [H/2], 2i/H
  angles = positions[:, tf.newaxis] / tf.pow(tf.constant(10000.0, dtype),
                                             exponents)[tf.newaxis, :]  # [S, H/2]
  pairs = tf.stack([tf.sin(angles), tf.cos(angles)], axis=-1)  # [S, H/2, 2]
  return tf.reshape(pairs, [seq_length, 2 * half])[:, :width]  # [S, H]
