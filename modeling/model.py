"""BertModel: the original BERT encoder as a tf.Module with the TF1 variable names.

Shape legend, as in the original:
  B = batch size, S = sequence length (F "from" and T "to" in attention),
  H = hidden size, N = attention heads, D = H / N head size, I = intermediate size,
  V = vocabulary size.

Activations between layers are kept 2-D, [B*S, H], as the original does: the
matmul + bias + activation patterns then map onto fused kernels.
"""

import tensorflow as tf

from modeling import position_embeddings
from modeling.attention import attention_mask_adder, dot_product_attention
from modeling.layers import (Dense, LayerNorm, dropout, get_activation, get_shape_list,
                             new_variable, truncated_normal)


class Embeddings(tf.Module):
  """`bert/embeddings`: word + token type + position embeddings, LayerNorm, dropout."""

  def __init__(self, config, use_one_hot_embeddings=False):
    super().__init__()
    scope = "bert/embeddings"
    init = truncated_normal(config.initializer_range)
    self.config = config
    self.use_one_hot_embeddings = use_one_hot_embeddings
    self.word_embeddings = new_variable(
        f"{scope}/word_embeddings", [config.vocab_size, config.hidden_size], init)
    self.token_type_embeddings = new_variable(
        f"{scope}/token_type_embeddings", [config.type_vocab_size, config.hidden_size], init)
    self.position_embeddings = None  # "sinusoidal" positions are computed: no variable
    if config.position_embedding_type != "sinusoidal":
      self.position_embeddings = new_variable(
          f"{scope}/position_embeddings", [config.max_position_embeddings, config.hidden_size],
          init)
    self.layer_norm = LayerNorm(scope, config.hidden_size)

  def position_table(self, seq_length):
    """The position rows of `config.position_embedding_type`, checked against its limit.

    "learned" is the original's checked slice of the table; see
    `modeling.position_embeddings` for the others.

    Args:
      seq_length: int or int32 scalar S.

    Returns:
      float [1, S, H], to broadcast-add over the batch.

    Raises:
      ValueError: S > config.max_sequence_length, when S is known when tracing.
      tf.errors.InvalidArgumentError: the same, when S is only known at run time.
    """
    table = position_embeddings.position_table(self.config, self.position_embeddings,
                                               seq_length)  # [S, H]
    return tf.reshape(table, [1, seq_length, self.config.hidden_size])  # [1, S, H]

  def __call__(self, input_ids, token_type_ids, training=False):
    """Embeds int [B, S] ids and segment ids into float [B, S, H]."""
    batch_size, seq_length = get_shape_list(input_ids)
    width = self.config.hidden_size
    flat_ids = tf.reshape(input_ids, [-1])  # [B*S]
    if self.use_one_hot_embeddings:
      one_hot = tf.one_hot(flat_ids, depth=self.config.vocab_size)  # [B*S, V]
      words = tf.matmul(one_hot, self.word_embeddings)  # [B*S, H]
    else:
      words = tf.gather(self.word_embeddings, flat_ids)  # [B*S, H]
    flat_types = tf.reshape(token_type_ids, [-1])  # [B*S]
    one_hot_types = tf.one_hot(flat_types, depth=self.config.type_vocab_size)
    types = tf.matmul(one_hot_types, self.token_type_embeddings)  # [B*S, H]
    output = tf.reshape(words + types, [batch_size, seq_length, width])  # [B, S, H]
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
    self.query = Dense(f"{scope}/query", width, width, init)
    self.key = Dense(f"{scope}/key", width, width, init)
    self.value = Dense(f"{scope}/value", width, width, init)

  def __call__(self, x, mask_adder, batch_size, seq_length, training=False):
    """Attends float [B*S, H] to itself; mask_adder is [B, 1, 1, S]; returns [B*S, H]."""
    projections = (self.query, self.key, self.value)
    kernel = tf.cast(tf.concat([p.kernel for p in projections], axis=1), x.dtype)  # [H, 3H]
    bias = tf.cast(tf.concat([p.bias for p in projections], axis=0), x.dtype)  # [3H]
    qkv = tf.nn.bias_add(tf.matmul(x, kernel), bias)  # [B*S, 3H]
    qkv = tf.reshape(qkv, [batch_size, seq_length, 3, self.num_heads, self.head_size])
    # Unstacked, not indexed: the gradient of unstack is one stack, where three
    # slices would each scatter into a zero tensor of the whole [3, B, N, S, D].
    query, key, value = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4]))  # [B, N, S, D] each
    context = dot_product_attention(query, key, value, mask_adder, self.dropout_rate,
                                    training, self.chunk_size)  # [B, N, S, D]
    context = tf.transpose(context, [0, 2, 1, 3])  # [B, S, N, D]
    return tf.reshape(context, [-1, self.num_heads * self.head_size])  # [B*S, H]


class TransformerLayer(tf.Module):
  """`bert/encoder/layer_N`: post-LayerNorm self-attention and feed-forward blocks."""

  def __init__(self, index, config):
    super().__init__()
    scope = f"bert/encoder/layer_{index}"
    width, inner, init = config.hidden_size, config.intermediate_size, config.initializer_range
    self.dropout_rate = config.hidden_dropout_prob
    self.attention = SelfAttention(f"{scope}/attention/self", config)
    self.attention_output = Dense(f"{scope}/attention/output/dense", width, width, init)
    self.attention_layer_norm = LayerNorm(f"{scope}/attention/output", width)
    self.intermediate = Dense(f"{scope}/intermediate/dense", width, inner, init,
                              activation=get_activation(config.hidden_act))
    self.output = Dense(f"{scope}/output/dense", inner, width, init)
    self.output_layer_norm = LayerNorm(f"{scope}/output", width)

  def __call__(self, x, mask_adder, batch_size, seq_length, training=False):
    """Maps float [B*S, H] to [B*S, H]."""
    attended = self.attention(x, mask_adder, batch_size, seq_length, training)
    attended = dropout(self.attention_output(attended), self.dropout_rate, training)
    x = self.attention_layer_norm(attended + x)
    transformed = dropout(self.output(self.intermediate(x)), self.dropout_rate, training)
    return self.output_layer_norm(transformed + x)


class BertModel(tf.Module):
  """The BERT encoder and pooler, variables named as the original's `bert/...`.

  Example:
    config = BertConfig.from_json_file("bert_config.json")
    model = BertModel(config)
    modeling.checkpoint.load("bert_model.ckpt", model)
    outputs = model(input_ids, input_mask, token_type_ids)
    outputs["pooled_output"]  # [B, H]
  """

  def __init__(self, config, use_one_hot_embeddings=False, compute_dtype=tf.float32):
    """Creates every variable (always float32).

    Args:
      config: a `BertConfig`.
      use_one_hot_embeddings: look words up by one-hot matmul (faster on TPU)
        instead of gather.
      compute_dtype: the dtype of the encoder's matmuls and activations:
        tf.float32, or tf.bfloat16 / tf.float16 for mixed precision (embeddings,
        LayerNorm and softmax stay in float32).

    Raises:
      ValueError: hidden_size is not a multiple of num_attention_heads.
    """
    super().__init__()
    config.check_attention_heads()
    self.config = config
    self.compute_dtype = tf.as_dtype(compute_dtype)
    self.embeddings = Embeddings(config, use_one_hot_embeddings)
    self.encoder_layers = [TransformerLayer(i, config)
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
      `all_encoder_layers` (a list of [B, S, H], one per layer), all in
      `compute_dtype`, and `embedding_output` float32 [B, S, H].
    """
    input_ids = tf.convert_to_tensor(input_ids)
    if input_mask is None:
      input_mask = tf.ones_like(input_ids)
    if token_type_ids is None:
      token_type_ids = tf.zeros_like(input_ids)
    batch_size, seq_length = get_shape_list(input_ids)
    width = self.config.hidden_size

    embedding_output = self.embeddings(input_ids, token_type_ids, training)  # [B, S, H]
    mask_adder = attention_mask_adder(input_mask)  # [B, 1, 1, S]
    x = tf.cast(tf.reshape(embedding_output, [-1, width]), self.compute_dtype)  # [B*S, H]
    all_encoder_layers = []
    for layer in self.encoder_layers:
      x = layer(x, mask_adder, batch_size, seq_length, training)
      all_encoder_layers.append(tf.reshape(x, [batch_size, seq_length, width]))  # [B, S, H]
    sequence_output = all_encoder_layers[-1]
    pooled_output = self.pooler(sequence_output[:, 0, :])  # [B, H]
    return {
        "sequence_output": sequence_output,
        "pooled_output": pooled_output,
        "all_encoder_layers": all_encoder_layers,
        "embedding_output": embedding_output,
    }
