"""BertModel: the original BERT encoder as a tf.Module with the TF1 variable names.

Shape legend, as in the original:
  B = batch size, S = sequence length (F "from" and T "to" in attention),
  H = hidden size, N = attention heads, D = H / N head size, I = intermediate size,
  V = vocabulary size.

Activations between layers are kept 2-D, [B*S, H], as the original does: the
matmul + bias + activation patterns then map onto fused kernels.
"""

import tensorflow as tf

from modeling.model import albert, position_embeddings
from modeling.model.attention import attention_mask_adder, dot_product_attention
from modeling.model.layers import (Dense, LayerNorm, dropout, get_activation, get_shape_list,
                                   new_variable, truncated_normal)
from modeling.model.padding_removal import RealTokens


class Embeddings(tf.Module):
  """`bert/embeddings`: word + token type + position embeddings, LayerNorm, dropout.

  Of width E = `config.embedding_width`: H, or ALBERT's embedding_size.
  """

  def __init__(self, config, use_one_hot_embeddings=False):
    super().__init__()
    scope = "bert/embeddings"
    init = truncated_normal(config.initializer_range)
    width = config.embedding_width
    self.config = config
    self.use_one_hot_embeddings = use_one_hot_embeddings
    self.word_embeddings = new_variable(
        f"{scope}/word_embeddings", [config.vocab_size, width], init)
    self.token_type_embeddings = new_variable(
        f"{scope}/token_type_embeddings", [config.type_vocab_size, width], init)
    self.position_embeddings = None  # "sinusoidal" positions are computed: no variable
    if config.position_embedding_type != "sinusoidal":
      self.position_embeddings = new_variable(
          f"{scope}/position_embeddings", [config.max_position_embeddings, width],
          init)
    self.layer_norm = LayerNorm(scope, width)

  def position_table(self, seq_length):
    """The position rows of `config.position_embedding_type`, checked against its limit.

    "learned" is the original's checked slice of the table; see
    `modeling.model.position_embeddings` for the others.

    Args:
      seq_length: int or int32 scalar S.

    Returns:
      float [1, S, E], to broadcast-add over the batch.

    Raises:
      ValueError: S > config.max_sequence_length, when S is known when tracing.
      tf.errors.InvalidArgumentError: the same, when S is only known at run time.
    """
    table = position_embeddings.position_table(self.config, self.position_embeddings,
                                               seq_length)  # [S, E]
    return tf.reshape(table, [1, seq_length, self.config.embedding_width])  # [1, S, E]

  def __call__(self, input_ids, token_type_ids, training=False):
    """Embeds int [B, S] ids and segment ids into float [B, S, E]."""
    batch_size, seq_length = get_shape_list(input_ids)
    width = self.config.embedding_width
    flat_ids = tf.reshape(input_ids, [-1])  # [B*S]
    if self.use_one_hot_embeddings:
      one_hot = tf.one_hot(flat_ids, depth=self.config.vocab_size)  # [B*S, V]
      words = tf.matmul(one_hot, self.word_embeddings)  # [B*S, E]
    else:
      words = tf.gather(self.word_embeddings, flat_ids)  # [B*S, E]
    flat_types = tf.reshape(token_type_ids, [-1])  # [B*S]
    one_hot_types = tf.one_hot(flat_types, depth=self.config.type_vocab_size)
    types = tf.matmul(one_hot_types, self.token_type_embeddings)  # [B*S, E]
    output = tf.reshape(words + types, [batch_size, seq_length, width])  # [B, S, E]
    output += self.position_table(seq_length)
    output = self.layer_norm(output)
    return dropout(output, self.config.hidden_dropout_prob, training)


class SelfAttention(tf.Module):
  """`layer_N/attention/self`: multi-head self-attention.

  The query, key and value projections keep their three checkpoint variables;
  they are applied as one [H, 3H] matmul, which is faster than three.
  """

  def __init__(self, scope, config):
    super().__init__()
    width, init = config.hidden_size, config.initializer_range
    self.num_heads = config.num_attention_heads
    self.head_size = config.attention_head_size
    self.dropout_rate = config.attention_probs_dropout_prob
    self.chunk_size = config.attention_chunk_size
    self.max_length = config.max_sequence_length
    self.query = Dense(f"{scope}/query", width, width, init)
    self.key = Dense(f"{scope}/key", width, width, init)
    self.value = Dense(f"{scope}/value", width, width, init)

  def __call__(self, x, mask_adder, batch_size, seq_length, training=False, real_tokens=None):
    """Attends float [B*S, H] to itself; mask_adder is [B, 1, 1, S]; returns [B*S, H].

    With `real_tokens` (a `RealTokens`), x and the result are the real tokens'
    rows only, [T, H].
    """
    projections = (self.query, self.key, self.value)
    kernel = tf.cast(tf.concat([p.kernel for p in projections], axis=1), x.dtype)  # [H, 3H]
    bias = tf.cast(tf.concat([p.bias for p in projections], axis=0), x.dtype)  # [3H]
    qkv = tf.nn.bias_add(tf.matmul(x, kernel), bias)  # [B*S, 3H] (or [T, 3H])
    if real_tokens is not None:
      qkv = real_tokens.scatter(qkv)  # [B*S, 3H]
    qkv = tf.reshape(qkv, [batch_size, seq_length, 3, self.num_heads, self.head_size])
    # Unstacked, not indexed: the gradient of unstack is one stack, where three
    # slices would each scatter into a zero tensor of the whole [3, B, N, S, D].
    query, key, value = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4]))  # [B, N, S, D] each
    context = dot_product_attention(query, key, value, mask_adder, self.dropout_rate,
                                    training, self.chunk_size, self.max_length)  # [B, N, S, D]
    context = tf.transpose(context, [0, 2, 1, 3])  # [B, S, N, D]
    context = tf.reshape(context, [-1, self.num_heads * self.head_size])  # [B*S, H]
    return context if real_tokens is None else real_tokens.gather(context)


# Where a layer has its parts, relative to its scope: (scope, LayerNorm name) for
# the layer norms. `albert.ALBERT_LAYER_NAMES` has ALBERT's.
BERT_LAYER_NAMES = {
    "attention": "attention/self",
    "attention_output": "attention/output/dense",
    "attention_layer_norm": ("attention/output", "LayerNorm"),
    "intermediate": "intermediate/dense",
    "output": "output/dense",
    "output_layer_norm": ("output", "LayerNorm"),
}


class TransformerLayer(tf.Module):
  """`bert/encoder/layer_N`: post-LayerNorm self-attention and feed-forward blocks.

  Also one block of ALBERT's shared layers, with `albert.ALBERT_LAYER_NAMES`.
  """

  def __init__(self, scope, config, names=None):
    """Args:
      scope: the layer's variable scope, e.g. "bert/encoder/layer_0".
      config: a BertConfig.
      names: where the parts are under `scope` (default `BERT_LAYER_NAMES`).
    """
    super().__init__()
    names = names or BERT_LAYER_NAMES
    width, inner, init = config.hidden_size, config.intermediate_size, config.initializer_range
    path = lambda name: f"{scope}/{name}" if name else scope  # noqa: E731
    self.dropout_rate = config.hidden_dropout_prob
    self.attention = SelfAttention(path(names["attention"]), config)
    self.attention_output = Dense(path(names["attention_output"]), width, width, init)
    norm_scope, norm_name = names["attention_layer_norm"]
    self.attention_layer_norm = LayerNorm(path(norm_scope), width, norm_name)
    self.intermediate = Dense(path(names["intermediate"]), width, inner, init,
                              activation=get_activation(config.hidden_act))
    self.output = Dense(path(names["output"]), inner, width, init)
    norm_scope, norm_name = names["output_layer_norm"]
    self.output_layer_norm = LayerNorm(path(norm_scope), width, norm_name)

  def __call__(self, x, mask_adder, batch_size, seq_length, training=False, real_tokens=None):
    """Maps float [B*S, H] to [B*S, H]; with `real_tokens`, [T, H] to [T, H]."""
    attended = self.attention(x, mask_adder, batch_size, seq_length, training, real_tokens)
    attended = dropout(self.attention_output(attended), self.dropout_rate, training)
    x = self.attention_layer_norm(attended + x)
    transformed = dropout(self.output(self.intermediate(x)), self.dropout_rate, training)
    return self.output_layer_norm(transformed + x)


class BertModel(tf.Module):
  """The BERT encoder and pooler, variables named as the original's `bert/...`.

  With an ALBERT config (`config.is_albert`), ALBERT's encoder under ALBERT's
  names: factorized embeddings and shared layers (see `modeling.model.albert`).

  Example:
    config = BertConfig.from_json_file("bert_config.json")
    model = BertModel(config)
    modeling.checkpoint.load("bert_model.ckpt", model)
    outputs = model(input_ids, input_mask, token_type_ids)
    outputs["pooled_output"]  # [B, H]
  """

  def __init__(self, config, use_one_hot_embeddings=False, compute_dtype=tf.float32,
               remove_padding=False):
    """Creates every variable (always float32).

    Args:
      config: a `BertConfig`.
      use_one_hot_embeddings: look words up by one-hot matmul (faster on TPU)
        instead of gather.
      compute_dtype: the dtype of the encoder's matmuls and activations:
        tf.float32, or tf.bfloat16 / tf.float16 for mixed precision (embeddings,
        LayerNorm and softmax stay in float32).
      remove_padding: run the layers' per-token work on the real tokens only
        (`modeling.model.padding_removal`); the outputs at padded positions are
        then zeros. Its shapes vary with the batch's tokens: not for XLA or TPUs.

    Raises:
      ValueError: hidden_size is not a multiple of num_attention_heads.
    """
    super().__init__()
    config.check_attention_heads()
    self.config = config
    self.compute_dtype = tf.as_dtype(compute_dtype)
    self.remove_padding = remove_padding
    self.embeddings = Embeddings(config, use_one_hot_embeddings)
    if config.is_albert:
      self.embedding_projection = albert.embedding_projection(config)
      self.encoder_layers = albert.shared_blocks(config, TransformerLayer)
    else:
      self.embedding_projection = None
      self.encoder_layers = [TransformerLayer(f"bert/encoder/layer_{i}", config)
                             for i in range(config.num_hidden_layers)]
    self.pooler = Dense("bert/pooler/dense", config.hidden_size, config.hidden_size,
                        config.initializer_range, activation=tf.tanh)

  @property
  def embedding_table(self):
    """The word embedding variable, float [V, H] (the original `get_embedding_table`)."""
    return self.embeddings.word_embeddings

  def __call__(self, input_ids, input_mask=None, token_type_ids=None, training=False):
    """Runs the encoder.

    Args:
      input_ids: int [B, S] wordpiece ids.
      input_mask: int [B, S], 1 for real tokens and 0 for padding; all ones if None.
      token_type_ids: int [B, S] segment ids; all zeros if None.
      training: apply dropout.

    Returns:
      A dict with `sequence_output` [B, S, H], `pooled_output` [B, H],
      `all_encoder_layers` (a list of [B, S, H], one per layer; for ALBERT one
      per block, num_hidden_layers * inner_group_num, as ALBERT's), all in
      `compute_dtype`, and `embedding_output` float32 [B, S, E] (E = H but for
      ALBERT's embedding_size).
    """
    input_ids = tf.convert_to_tensor(input_ids)
    if input_mask is None:
      input_mask = tf.ones_like(input_ids)
    if token_type_ids is None:
      token_type_ids = tf.zeros_like(input_ids)
    batch_size, seq_length = get_shape_list(input_ids)
    width = self.config.hidden_size

    embedding_output = self.embeddings(input_ids, token_type_ids, training)  # [B, S, E]
    mask_adder = attention_mask_adder(input_mask)  # [B, 1, 1, S]
    x = tf.reshape(embedding_output, [-1, self.config.embedding_width])  # [B*S, E]
    x = tf.cast(x, self.compute_dtype)
    real_tokens = RealTokens(input_mask) if self.remove_padding else None
    if real_tokens is not None:
      x = real_tokens.gather(x)  # [T, E]
    if self.embedding_projection is not None:  # ALBERT with E != H
      x = self.embedding_projection(x)  # [B*S, H] (or [T, H])
    all_encoder_layers = []
    for layer in self.encoder_layers:
      x = layer(x, mask_adder, batch_size, seq_length, training, real_tokens)
      grid = x if real_tokens is None else real_tokens.scatter(x)  # [B*S, H]
      all_encoder_layers.append(tf.reshape(grid, [batch_size, seq_length, width]))
    sequence_output = all_encoder_layers[-1]
    pooled_output = self.pooler(sequence_output[:, 0, :])  # [B, H]
    return {
        "sequence_output": sequence_output,
        "pooled_output": pooled_output,
        "all_encoder_layers": all_encoder_layers,
        "embedding_output": embedding_output,
    }


def variables_except_pooler(module):
  """A task model's trainable variables but `bert/pooler/...`.

  For the heads that do not read `pooled_output` (span, per-token, masked LM
  only): the pooler gets no gradient, and the original's optimizer skips it and
  makes no Adam slots for it, as ours does given this list as `trained_variables`.
  """
  return [v for v in module.trainable_variables if not v.name.startswith("bert/pooler/")]
