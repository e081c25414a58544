"""Output heads with the original variable names.

- `MaskedLMHead`: `cls/predictions/...`, the original `get_masked_lm_output`.
- `NextSentenceHead`: `cls/seq_relationship/...`, the original `get_next_sentence_output`.
- `ClassifierHead`: top-level `output_weights`/`output_bias`, the original
  `run_classifier.create_model` (softmax), or read as a sigmoid per label.
- `SquadHead`: `cls/squad/output_weights`/`output_bias`, the original
  `run_squad.create_model`.

Shape legend: B batch, S sequence, P masked positions per sequence, H hidden,
E embedding width (H, or ALBERT's embedding_size), V vocabulary, C classes.
"""

import tensorflow as tf

from modeling.model.layers import (Dense, LayerNorm, dropout, get_activation, get_shape_list,
                                   new_variable, truncated_normal)


def gather_indexes(sequence_tensor, positions):
  """Gathers the vectors at `positions` of each sequence.

  Args:
    sequence_tensor: float [B, S, H].
    positions: int [B, P] indexes into S.

  Returns:
    float [B*P, H].
  """
  batch_size, seq_length, width = get_shape_list(sequence_tensor)
  offsets = tf.reshape(tf.range(batch_size) * seq_length, [-1, 1])  # [B, 1]
  flat_positions = tf.reshape(tf.cast(positions, tf.int32) + offsets, [-1])  # [B*P]
  flat_sequence = tf.reshape(sequence_tensor, [-1, width])  # [B*S, H]
  return tf.gather(flat_sequence, flat_positions)  # [B*P, H]


def _weighted_nll(log_probs, label_ids, depth):
  """Per-row negative log-likelihood: log_probs [M, depth], label_ids [M] -> [M]."""
  one_hot = tf.one_hot(tf.reshape(label_ids, [-1]), depth=depth, dtype=log_probs.dtype)
  return -tf.reduce_sum(log_probs * one_hot, axis=-1)


class MaskedLMHead(tf.Module):
  """`cls/predictions`: transform, LayerNorm, tied output embedding and bias."""

  # The names of the variables it creates (`re.search`).
  VARIABLES = r"^cls/predictions/"

  def __init__(self, config, embedding_table):
    """Args: config, a BertConfig; embedding_table, the model's word embeddings [V, E]
    (E = H, or ALBERT's embedding_size: the transform maps H to E)."""
    super().__init__()
    scope = "cls/predictions"
    width = config.embedding_width
    self.vocab_size = config.vocab_size
    self.embedding_table = embedding_table
    self.transform = Dense(f"{scope}/transform/dense", config.hidden_size, width,
                           config.initializer_range,
                           activation=get_activation(config.hidden_act))
    self.layer_norm = LayerNorm(f"{scope}/transform", width)
    self.output_bias = new_variable(f"{scope}/output_bias", [config.vocab_size], tf.zeros)

  def logits(self, sequence_output, positions):
    """Logits over the vocabulary at the masked positions (TF Hub's `mlm_logits`).

    Args:
      sequence_output: float [B, S, H].
      positions: int [B, P].

    Returns:
      float32 [B*P, V], whatever the compute dtype.
    """
    x = self.layer_norm(self.transform(gather_indexes(sequence_output, positions)))  # [B*P, E]
    logits = tf.matmul(x, tf.cast(self.embedding_table, x.dtype), transpose_b=True)  # [B*P, V]
    return tf.nn.bias_add(tf.cast(logits, tf.float32), self.output_bias)

  def log_probs(self, sequence_output, positions):
    """Log-probabilities over the vocabulary at the masked positions.

    Args:
      sequence_output: float [B, S, H].
      positions: int [B, P].

    Returns:
      float32 [B*P, V].
    """
    return tf.nn.log_softmax(self.logits(sequence_output, positions), axis=-1)

  def __call__(self, sequence_output, positions, label_ids, label_weights):
    """The original `get_masked_lm_output`.

    Args:
      sequence_output: float [B, S, H].
      positions: int [B, P] masked positions.
      label_ids: int [B, P] original ids at those positions.
      label_weights: float [B, P], 1 for real predictions and 0 for padding.

    Returns:
      (loss scalar, per_example_loss [B*P], log_probs [B*P, V]), with
      loss = sum(w * nll) / (sum(w) + 1e-5).
    """
    log_probs = self.log_probs(sequence_output, positions)
    per_example_loss = _weighted_nll(log_probs, label_ids, self.vocab_size)  # [B*P]
    weights = tf.reshape(tf.cast(label_weights, log_probs.dtype), [-1])  # [B*P]
    loss = tf.reduce_sum(weights * per_example_loss) / (tf.reduce_sum(weights) + 1e-5)
    return loss, per_example_loss, log_probs


class _LinearHead(tf.Module):
  """A linear map of hidden vectors (the pooled output, or every token's) with `[C, H]`
  weights used transposed, initialised with stddev `stddev` (default: the config's), and
  a bias [C] starting at `initial_bias` (default zeros)."""

  def __init__(self, scope, num_outputs, config, stddev=None, initial_bias=None):
    super().__init__()
    prefix = f"{scope}/" if scope else ""
    self.num_outputs = num_outputs
    self.output_weights = new_variable(
        f"{prefix}output_weights", [num_outputs, config.hidden_size],
        truncated_normal(config.initializer_range if stddev is None else stddev))
    self.output_bias = new_variable(
        f"{prefix}output_bias", [num_outputs], tf.zeros if initial_bias is None else
        lambda shape: tf.reshape(tf.constant(initial_bias, tf.float32), shape))

  def logits(self, pooled_output):
    """Maps [B, H] in the compute dtype to float32 logits [B, C]."""
    weights = tf.cast(self.output_weights, pooled_output.dtype)
    logits = tf.matmul(pooled_output, weights, transpose_b=True)
    return tf.nn.bias_add(tf.cast(logits, tf.float32), self.output_bias)

  def _loss(self, logits, labels):
    """(mean loss, per_example_loss [B], log_probs [B, C]) of integer labels [B]."""
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    per_example_loss = _weighted_nll(log_probs, labels, self.num_outputs)
    return tf.reduce_mean(per_example_loss), per_example_loss, log_probs


class NextSentenceHead(_LinearHead):
  """`cls/seq_relationship`: 2-way "is next" classifier; label 0 means "is next"."""

  # The names of the variables it creates (`re.search`).
  VARIABLES = r"^cls/seq_relationship/"

  def __init__(self, config):
    super().__init__("cls/seq_relationship", 2, config)

  def __call__(self, pooled_output, labels):
    """The original `get_next_sentence_output`.

    Args:
      pooled_output: float [B, H].
      labels: int [B] or [B, 1].

    Returns:
      (loss scalar, per_example_loss [B], log_probs [B, 2]).
    """
    return self._loss(self.logits(pooled_output), labels)


class ClassifierHead(_LinearHead):
  """Top-level `output_weights` [C, H] and `output_bias` [C] of `run_classifier`."""

  # The names of the variables it creates (`re.search`).
  VARIABLES = r"^output_(weights|bias)$"

  def __init__(self, config, num_labels, dropout_rate=0.1, initial_bias=None):
    super().__init__("", num_labels, config, initial_bias=initial_bias)
    self.dropout_rate = dropout_rate

  def __call__(self, pooled_output, labels, training=False):
    """The original `run_classifier.create_model` head.

    Args:
      pooled_output: float [B, H].
      labels: int [B].
      training: apply dropout (rate 0.1) to the pooled output.

    Returns:
      (loss scalar, per_example_loss [B], logits [B, C], probabilities [B, C]).
    """
    logits = self.logits(dropout(pooled_output, self.dropout_rate, training))
    loss, per_example_loss, _ = self._loss(logits, labels)
    return loss, per_example_loss, logits, tf.nn.softmax(logits, axis=-1)

  def multi_label(self, pooled_output, labels, training=False):
    """The same weights read as C independent yes/no labels: a sigmoid per label and
    binary cross-entropy (run_classifier --multi_label).

    Args:
      pooled_output: float [B, H].
      labels: float [B, C], 1 where the example carries the label, else 0.
      training: apply dropout (rate 0.1) to the pooled output.

    Returns:
      (loss scalar, per_example_loss [B], logits [B, C], probabilities [B, C]):
      per_example_loss is the mean over the C labels, loss its mean over B.
    """
    logits = self.logits(dropout(pooled_output, self.dropout_rate, training))  # [B, C]
    per_label_loss = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.cast(labels, logits.dtype), logits=logits)  # [B, C]
    per_example_loss = tf.reduce_mean(per_label_loss, axis=-1)  # [B]
    return tf.reduce_mean(per_example_loss), per_example_loss, logits, tf.sigmoid(logits)


class SquadHead(_LinearHead):
  """`cls/squad/output_weights` [2, H] and `output_bias` [2]: answer start and end
  logits of every token, the original `run_squad.create_model` (whose weights are
  initialised with stddev 0.02 whatever the config says)."""

  # The names of the variables it creates (`re.search`).
  VARIABLES = r"^cls/squad/"

  def __init__(self, config):
    super().__init__("cls/squad", 2, config, stddev=0.02)

  def __call__(self, sequence_output):
    """Start and end logits.

    Args:
      sequence_output: float [B, S, H].

    Returns:
      (start_logits, end_logits), float32 [B, S] each.
    """
    batch_size, seq_length, width = get_shape_list(sequence_output)
    logits = self.logits(tf.reshape(sequence_output, [-1, width]))  # [B*S, 2]
    logits = tf.reshape(logits, [batch_size, seq_length, 2])  # [B, S, 2]
    return logits[:, :, 0], logits[:, :, 1]

  @staticmethod
  def per_example_loss(start_logits, end_logits, start_positions, end_positions):
    """Mean of the start and end cross-entropies of each example.

    Args:
      start_logits, end_logits: float32 [B, S].
      start_positions, end_positions: int [B] (0, [CLS], for no answer).

    Returns:
      float32 [B]; its mean is the original's loss.
    """
    seq_length = get_shape_list(start_logits)[-1]  # dynamic with length buckets
    start_loss = _weighted_nll(tf.nn.log_softmax(start_logits, axis=-1), start_positions,
                               seq_length)
    end_loss = _weighted_nll(tf.nn.log_softmax(end_logits, axis=-1), end_positions,
                             seq_length)
    return (start_loss + end_loss) / 2.0
