"""Long texts: position embedding types, their limits, chunked attention == full attention."""

import json

import numpy as np
import pytest
import tensorflow as tf

from modeling import BertConfig, BertModel, checkpoint
from modeling.model import attention
from modeling.model.position_embeddings import sinusoidal_table
from test_config import GOOGLE_BASE, GOOGLE_CHINESE_EXTRAS
from tiny import tiny_config, tiny_inputs


# --- config ---------------------------------------------------------------------------

def test_google_config_round_trips_to_its_own_keys(tmp_path):
  path = tmp_path / "bert_config.json"
  path.write_text(json.dumps({**GOOGLE_BASE, **GOOGLE_CHINESE_EXTRAS}))
  config = BertConfig.from_json_file(path)
  assert (config.position_embedding_type, config.hierarchical_alpha,
          config.attention_chunk_size) == ("learned", 0.4, None)
  assert json.loads(config.to_json_string()) == {**GOOGLE_BASE, **GOOGLE_CHINESE_EXTRAS}


def test_long_text_keys_are_written_when_set():
  config = BertConfig.from_dict({**GOOGLE_BASE, "position_embedding_type": "hierarchical",
                                 "attention_chunk_size": 256})
  assert config.to_dict() == {**GOOGLE_BASE, "position_embedding_type": "hierarchical",
                              "attention_chunk_size": 256}
  assert BertConfig.from_dict(config.to_dict()) == config
  explicit_default = BertConfig.from_dict({**GOOGLE_BASE, "hierarchical_alpha": 0.4})
  assert explicit_default.to_dict() == {**GOOGLE_BASE, "hierarchical_alpha": 0.4}
  assert config.replace(position_embedding_type="sinusoidal").to_dict()[
      "position_embedding_type"] == "sinusoidal"


@pytest.mark.parametrize("changes, message", [
    ({"hierarchical_alpha": 0.5}, r"hierarchical_alpha=0.5 must not be 0.5"),
    ({"hierarchical_alpha": 0}, r"hierarchical_alpha=0 must be a number in \(0, 1\)"),
    ({"hierarchical_alpha": 1.0}, r"hierarchical_alpha=1.0 must be"),
    ({"hierarchical_alpha": "0.4"}, r"hierarchical_alpha='0.4' must be"),
    ({"position_embedding_type": "rotary"}, r"position_embedding_type='rotary' is not one"),
    ({"attention_chunk_size": -1}, r"attention_chunk_size=-1 must be"),
    ({"attention_chunk_size": 1.5}, r"attention_chunk_size=1.5 must be"),
])
def test_bad_long_text_values_are_named(changes, message):
  with pytest.raises(ValueError, match=message):
    BertConfig.from_dict({**GOOGLE_BASE, **changes}, source="my_config.json")


def test_max_sequence_length_and_script_check():
  limits = {kind: tiny_config(max_position_embeddings=16, position_embedding_type=kind)
            for kind in ("learned", "hierarchical", "sinusoidal")}
  assert {k: c.max_sequence_length for k, c in limits.items()} == {
      "learned": 16, "hierarchical": 256, "sinusoidal": None}
  limits["learned"].check_sequence_length(16)
  with pytest.raises(ValueError, match=r"max_position_embeddings=16 .*hierarchical.*"
                                       r"up to 256.*got --max_seq_length 17"):
    limits["learned"].check_sequence_length(17, name="--max_seq_length")
  limits["hierarchical"].check_sequence_length(256)
  with pytest.raises(ValueError, match=r"max_position_embeddings\^2=256 .*got .* 257"):
    limits["hierarchical"].check_sequence_length(257)
  limits["sinusoidal"].check_sequence_length(10**6)


# --- position tables ------------------------------------------------------------------

def _hierarchical_model(n=16, alpha=0.4, width=8):
  return BertModel(tiny_config(max_position_embeddings=n, hidden_size=width,
                               num_attention_heads=2, num_hidden_layers=1,
                               position_embedding_type="hierarchical", hierarchical_alpha=alpha))


@pytest.mark.parametrize("alpha", [0.4, 0.3, 0.8])
def test_hierarchical_rows_follow_the_closed_form_for_every_position(alpha):
  """q_k = a u_i + (1 - a) u_j, u_i = (p_i - a p_0) / (1 - a), for every k = i n + j < n^2."""
  n = 16
  embeddings = _hierarchical_model(n, alpha).embeddings
  p = embeddings.position_embeddings.numpy().astype(np.float64)  # [n, H]
  u = (p - alpha * p[0]) / (1 - alpha)
  k = np.arange(n * n)
  expected = alpha * u[k // n] + (1 - alpha) * u[k % n]  # [n^2, H]
  table = embeddings.position_table(n * n)[0].numpy()
  np.testing.assert_allclose(table, expected, rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(table[:n], embeddings.position_embeddings.numpy())
  distinct_rows = np.unique(table.round(7), axis=0)
  assert len(distinct_rows) == n * n


def test_hierarchical_gradient_reaches_the_table():
  """dL/dp_r for L = sum_k <w_k, q_k>: q_k = p_j + c (p_i - p_0), c = a / (1 - a)."""
  n, length, alpha = 8, 43, 0.4
  embeddings = _hierarchical_model(n, alpha).embeddings
  w = np.random.RandomState(0).randn(length, 8).astype(np.float32)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(embeddings.position_table(length)[0] * w)
  grad = tape.gradient(loss, embeddings.position_embeddings)
  c, k = alpha / (1 - alpha), np.arange(length)
  expected = np.zeros([n, 8])
  np.add.at(expected, k % n, w)
  np.add.at(expected, k // n, c * w)
  expected[0] -= c * w.sum(0)
  np.testing.assert_allclose(tf.convert_to_tensor(grad), expected, rtol=1e-5, atol=1e-5)


def test_hierarchical_limit_is_n_squared_in_eager_and_graph():
  model = _hierarchical_model(n=8)
  assert model(np.ones([1, 64], np.int32))["sequence_output"].shape == [1, 64, 8]
  with pytest.raises(ValueError, match=r"max_position_embeddings\^2=64 .*got sequence length 65"):
    model(np.ones([1, 65], np.int32))
  encode = tf.function(lambda ids: model(ids)["pooled_output"],
                       input_signature=[tf.TensorSpec([None, None], tf.int32)])
  assert encode(np.ones([2, 64], np.int32)).shape == [2, 8]
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"max_position_embeddings\^2=64"):
    encode(np.ones([1, 65], np.int32))


def test_learned_error_suggests_hierarchical():
  model = BertModel(tiny_config(max_position_embeddings=8))
  with pytest.raises(ValueError, match=r"max_position_embeddings=8.*hierarchical.*64"):
    model(np.ones([1, 9], np.int32))


@pytest.mark.parametrize("width", [8, 7])
def test_sinusoidal_table_is_the_transformer_formula(width):
  length = 300
  pos, dim = np.arange(length)[:, None], np.arange(width)[None, :]
  angles = pos / np.power(10000.0, 2 * (dim // 2) / width)
  expected = np.where(dim % 2 == 0, np.sin(angles), np.cos(angles))
  np.testing.assert_allclose(sinusoidal_table(length, width), expected, atol=2e-5)


def test_sinusoidal_has_no_position_variable_and_no_limit():
  model = BertModel(tiny_config(max_position_embeddings=8,
                                position_embedding_type="sinusoidal"))
  assert not any("position_embeddings" in v.name for v in model.variables)
  outputs = model(np.ones([1, 100], np.int32))
  np.testing.assert_allclose(outputs["embedding_output"].shape, [1, 100, 32])
  np.testing.assert_allclose(model.embeddings.position_table(100)[0],
                             sinusoidal_table(100, 32))


def test_hierarchical_model_equals_learned_up_to_n_positions():
  learned = BertModel(tiny_config(max_position_embeddings=16))
  hierarchical = BertModel(tiny_config(max_position_embeddings=16,
                                       position_embedding_type="hierarchical"))
  for target, source in zip(hierarchical.variables, learned.variables):
    target.assign(source)
  data = tiny_inputs(batch_size=2, seq_length=16)
  a = learned(data["input_ids"], data["input_mask"], data["segment_ids"])
  b = hierarchical(data["input_ids"], data["input_mask"], data["segment_ids"])
  np.testing.assert_array_equal(a["sequence_output"], b["sequence_output"])


def test_real_checkpoint_hierarchical_equals_learned_up_to_512(minilm_dir):
  """MiniLM's 512-row table: hierarchical outputs are the learned ones for <= 512 tokens."""
  config = BertConfig.from_json_file(f"{minilm_dir}/bert_config.json")
  models = [BertModel(config), BertModel(config.replace(position_embedding_type="hierarchical"))]
  for model in models:
    checkpoint.load(f"{minilm_dir}/bert_model.ckpt", model)
  rng = np.random.RandomState(0)
  for length in (512, 100):
    ids = rng.randint(1000, config.vocab_size, [2, length]).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, length // 3:] = 0
    learned, hierarchical = (m(ids, mask)["sequence_output"] for m in models)
    np.testing.assert_array_equal(learned, hierarchical)
  long_ids = rng.randint(1000, config.vocab_size, [1, 600]).astype(np.int32)
  assert np.isfinite(models[1](long_ids)["pooled_output"]).all()


# --- chunked attention ----------------------------------------------------------------

def _attention_inputs(batch=3, heads=2, from_length=37, to_length=37, width=8, seed=0):
  rng = np.random.RandomState(seed)
  q = tf.constant(rng.randn(batch, heads, from_length, width).astype(np.float32))
  k, v = (tf.constant(rng.randn(batch, heads, to_length, width).astype(np.float32))
          for _ in range(2))
  mask = np.ones([batch, to_length], np.int32)
  mask[1, to_length // 2:] = 0  # padding
  mask[2, :] = 0  # an all-padding example, as run_classifier pads the last batch
  return q, k, v, attention.attention_mask_adder(mask)


def _output_and_gradients(fn, q, k, v, adder):
  with tf.GradientTape() as tape:
    tape.watch([q, k, v, adder])
    out = fn(q, k, v, adder)
    loss = tf.reduce_sum(out * tf.sin(out))  # a gradient that differs per element
  return [out] + tape.gradient(loss, [q, k, v, adder])


@pytest.mark.parametrize("chunk_size, from_length", [(5, 37), (8, 37), (37, 37), (64, 37),
                                                     (6, 20)])
def test_chunked_equals_full_forward_and_gradients(chunk_size, from_length):
  inputs = _attention_inputs(from_length=from_length)
  full = _output_and_gradients(attention.full_attention, *inputs)
  chunked = _output_and_gradients(
      lambda *x: attention.chunked_attention(*x, chunk_size=chunk_size), *inputs)
  for name, a, b in zip(("out", "dq", "dk", "dv", "dmask"), full, chunked):
    np.testing.assert_allclose(b, a, atol=1e-5, err_msg=name)


def test_dispatch_by_length_and_chunk_size():
  q, k, v, adder = _attention_inputs()
  full = attention.full_attention(q, k, v, adder)
  np.testing.assert_array_equal(attention.dot_product_attention(q, k, v, adder), full)
  np.testing.assert_array_equal(attention.dot_product_attention(q, k, v, adder, chunk_size=37),
                                full)
  np.testing.assert_array_equal(attention.dot_product_attention(q, k, v, adder, chunk_size=8),
                                attention.chunked_attention(q, k, v, adder, 8))
  assert not np.array_equal(attention.chunked_attention(q, k, v, adder, 8), full)
  long_inputs = _attention_inputs(batch=3, heads=1, from_length=8,
                                  to_length=attention.AUTO_CHUNK_THRESHOLD + 1, width=4)
  np.testing.assert_array_equal(
      attention.dot_product_attention(*long_inputs),
      attention.chunked_attention(*long_inputs, attention.AUTO_CHUNK_SIZE))


def test_chunked_in_graph_with_unknown_length_and_under_xla():
  inputs = _attention_inputs()
  expected = _output_and_gradients(attention.full_attention, *inputs)
  spec = tf.TensorSpec([None, None, None, 8], tf.float32)
  adder_spec = tf.TensorSpec([None, 1, 1, None], tf.float32)
  dynamic = tf.function(
      lambda *x: _output_and_gradients(
          lambda *y: attention.dot_product_attention(*y, chunk_size=8), *x),
      input_signature=[spec, spec, spec, adder_spec])
  compiled = tf.function(
      lambda *x: _output_and_gradients(
          lambda *y: attention.chunked_attention(*y, chunk_size=8), *x), jit_compile=True)
  for fn in (dynamic, compiled):
    for a, b in zip(expected, fn(*inputs)):
      np.testing.assert_allclose(b, a, atol=1e-5)


def test_chunked_dropout_gradient_matches_autodiff_of_the_same_masks():
  """With dropout, the recomputing backward pass equals autodiff through the forward."""
  q, k, v, adder = _attention_inputs()
  blocks = [attention._split_blocks(x, 2, 8) for x in (q, k, v)]
  blocks.append(attention._split_blocks(adder, 3, 8, attention._PADDING_KEY_SCORE))
  seed = tf.constant([7, 11])
  weights = tf.random.stateless_normal(blocks[0].shape, [1, 2])

  def gradients(fn):
    with tf.GradientTape() as tape:
      tape.watch(blocks)
      loss = tf.reduce_sum(fn() * weights)
    return tape.gradient(loss, blocks)

  ours = gradients(lambda: attention._blocked_attention(*blocks, seed, 0.3))
  autodiff = gradients(lambda: attention._blocked_forward(
      attention._Blocks(*blocks, seed, 0.3))[0])
  for a, b in zip(autodiff, ours):
    np.testing.assert_allclose(b, a, atol=1e-5)
  without_dropout = attention._blocked_attention(*blocks, seed, 0.0)
  assert not np.allclose(attention._blocked_attention(*blocks, seed, 0.3), without_dropout)


def test_model_with_chunked_attention_equals_full():
  data = tiny_inputs(batch_size=3, seq_length=16)
  full = BertModel(tiny_config())
  chunked = BertModel(tiny_config(attention_chunk_size=4))
  for target, source in zip(chunked.variables, full.variables):
    target.assign(source)

  weights = tf.random.stateless_normal([3, 16, 32], [3, 4])

  def outputs_and_gradients(model):
    with tf.GradientTape() as tape:
      out = model(data["input_ids"], data["input_mask"], data["segment_ids"])
      loss = tf.reduce_sum(out["sequence_output"] * weights) + tf.reduce_sum(
          out["pooled_output"])
    grads = tape.gradient(loss, model.trainable_variables)
    return [out["sequence_output"]] + [tf.convert_to_tensor(g) for g in grads]

  for a, b in zip(outputs_and_gradients(full), outputs_and_gradients(chunked)):
    # Summed in another order, an element's rounding scales with the largest term of
    # its tensor (embedding gradients reach ~80), not with the element itself.
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 + 1e-6 * np.max(np.abs(a)))


def test_long_training_step_compiles_with_chunks_and_dropout():
  model = BertModel(tiny_config(max_position_embeddings=8, attention_chunk_size=16,
                                position_embedding_type="hierarchical", num_hidden_layers=1))
  data = tiny_inputs(batch_size=2, seq_length=40)

  @tf.function(jit_compile=True)
  def gradients(ids, mask):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(model(ids, mask, training=True)["pooled_output"] ** 2)
    return tape.gradient(loss, model.trainable_variables)

  grads = gradients(data["input_ids"], data["input_mask"])
  assert len(grads) == len(model.trainable_variables)
  assert all(g is not None and np.isfinite(tf.convert_to_tensor(g)).all() for g in grads)


def test_chunked_bfloat16_keeps_softmax_statistics_in_float32():
  """bf16 inputs (mixed precision): 4096 keys would swamp a bf16 running sum."""
  q, k, v, adder = _attention_inputs(batch=3, heads=1, from_length=16, to_length=4096)
  rounded = [tf.cast(tf.cast(x, tf.bfloat16), tf.float32) for x in (q, k, v)]
  expected = attention.full_attention(*rounded, adder)
  out = attention.chunked_attention(*(tf.cast(x, tf.bfloat16) for x in (q, k, v)), adder,
                                    chunk_size=512)
  assert out.dtype == tf.bfloat16
  np.testing.assert_allclose(tf.cast(out, tf.float32), expected, atol=2e-2)
