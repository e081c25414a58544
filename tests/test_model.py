"""BertModel and heads: TF1 names, shapes, graph/XLA execution, position checks."""

import re

import numpy as np
import pytest
import tensorflow as tf

from modeling import BertModel, ClassifierHead, MaskedLMHead, NextSentenceHead
from modeling.model import layers
from tiny import tiny_config, tiny_inputs


def _names(module):
  return sorted(v.name for v in module.variables)


def test_variable_names_are_the_tf1_names():
  config = tiny_config(num_hidden_layers=1)
  model = BertModel(config)
  layer = "bert/encoder/layer_0"
  expected = [
      "bert/embeddings/word_embeddings:0", "bert/embeddings/token_type_embeddings:0",
      "bert/embeddings/position_embeddings:0", "bert/embeddings/LayerNorm/beta:0",
      "bert/embeddings/LayerNorm/gamma:0",
      *[f"{layer}/attention/self/{p}/{k}:0" for p in ("query", "key", "value")
        for k in ("kernel", "bias")],
      f"{layer}/attention/output/dense/kernel:0", f"{layer}/attention/output/dense/bias:0",
      f"{layer}/attention/output/LayerNorm/beta:0", f"{layer}/attention/output/LayerNorm/gamma:0",
      f"{layer}/intermediate/dense/kernel:0", f"{layer}/intermediate/dense/bias:0",
      f"{layer}/output/dense/kernel:0", f"{layer}/output/dense/bias:0",
      f"{layer}/output/LayerNorm/beta:0", f"{layer}/output/LayerNorm/gamma:0",
      "bert/pooler/dense/kernel:0", "bert/pooler/dense/bias:0",
  ]
  assert _names(model) == sorted(expected)
  shapes = {v.name: v.shape.as_list() for v in model.variables}
  assert shapes["bert/embeddings/word_embeddings:0"] == [99, 32]
  assert shapes["bert/embeddings/position_embeddings:0"] == [64, 32]
  assert shapes[f"{layer}/intermediate/dense/kernel:0"] == [32, 37]
  assert shapes[f"{layer}/output/dense/kernel:0"] == [37, 32]
  assert model.embedding_table is model.embeddings.word_embeddings


def test_head_names_and_shapes():
  config = tiny_config()
  model = BertModel(config)
  mlm, nsp = MaskedLMHead(config, model.embedding_table), NextSentenceHead(config)
  classifier = ClassifierHead(config, num_labels=5)
  own = lambda head: [n for n in _names(head) if not n.startswith("bert/")]  # noqa: E731
  assert own(mlm) == ["cls/predictions/output_bias:0",
                      "cls/predictions/transform/LayerNorm/beta:0",
                      "cls/predictions/transform/LayerNorm/gamma:0",
                      "cls/predictions/transform/dense/bias:0",
                      "cls/predictions/transform/dense/kernel:0"]
  assert own(nsp) == ["cls/seq_relationship/output_bias:0",
                      "cls/seq_relationship/output_weights:0"]
  assert own(classifier) == ["output_bias:0", "output_weights:0"]
  assert classifier.output_weights.shape == [5, 32]
  assert nsp.output_weights.shape == [2, 32]


def test_output_shapes_and_defaults():
  config = tiny_config()
  model = BertModel(config)
  data = tiny_inputs(batch_size=3, seq_length=16)
  outputs = model(data["input_ids"])
  assert outputs["sequence_output"].shape == [3, 16, 32]
  assert outputs["pooled_output"].shape == [3, 32]
  assert outputs["embedding_output"].shape == [3, 16, 32]
  assert len(outputs["all_encoder_layers"]) == 2
  explicit = model(data["input_ids"], np.ones([3, 16], np.int32), np.zeros([3, 16], np.int32))
  np.testing.assert_allclose(outputs["pooled_output"], explicit["pooled_output"], atol=1e-6)


def test_padding_does_not_leak_into_real_tokens():
  """Changing ids under input_mask=0 leaves the outputs of real tokens unchanged."""
  model = BertModel(tiny_config())
  data = tiny_inputs(batch_size=2, seq_length=16, seed=1)
  changed = data["input_ids"].copy()
  changed[data["input_mask"] == 0] = 7
  a = model(data["input_ids"], data["input_mask"], data["segment_ids"])["sequence_output"]
  b = model(changed, data["input_mask"], data["segment_ids"])["sequence_output"]
  real = data["input_mask"].astype(bool)
  np.testing.assert_allclose(np.asarray(a)[real], np.asarray(b)[real], atol=1e-5)


def test_dropout_only_in_training():
  model = BertModel(tiny_config())
  ids = tiny_inputs()["input_ids"]
  first, second = model(ids)["pooled_output"], model(ids)["pooled_output"]
  np.testing.assert_array_equal(first, second)
  trained = model(ids, training=True)["pooled_output"]
  assert not np.allclose(first, trained)


def test_tf_function_with_unknown_batch_and_length():
  model = BertModel(tiny_config())
  spec = tf.TensorSpec([None, None], tf.int32)

  @tf.function(input_signature=[spec, spec, spec])
  def encode(ids, mask, types):
    return model(ids, mask, types)["sequence_output"]

  for batch, length in ((2, 9), (3, 16)):
    data = tiny_inputs(batch_size=batch, seq_length=length)
    eager = model(data["input_ids"], data["input_mask"], data["segment_ids"])
    graph = encode(data["input_ids"], data["input_mask"], data["segment_ids"])
    np.testing.assert_allclose(graph, eager["sequence_output"], atol=1e-5)


@pytest.mark.parametrize("use_one_hot_embeddings", [False, True])
def test_jit_compile(use_one_hot_embeddings):
  config = tiny_config()
  model = BertModel(config, use_one_hot_embeddings=use_one_hot_embeddings)
  mlm, nsp = MaskedLMHead(config, model.embedding_table), NextSentenceHead(config)
  data = tiny_inputs()

  @tf.function(jit_compile=True)
  def loss_and_grads(ids, mask, types, positions, labels, weights, next_sentence):
    with tf.GradientTape() as tape:
      outputs = model(ids, mask, types, training=True)
      mlm_loss, _, _ = mlm(outputs["sequence_output"], positions, labels, weights)
      nsp_loss, _, _ = nsp(outputs["pooled_output"], next_sentence)
      loss = mlm_loss + nsp_loss
    return loss, tape.gradient(loss, model.trainable_variables)

  loss, grads = loss_and_grads(data["input_ids"], data["input_mask"], data["segment_ids"],
                               data["masked_lm_positions"], data["masked_lm_ids"],
                               data["masked_lm_weights"], data["next_sentence_labels"])
  assert np.isfinite(loss)
  assert all(g is not None for g in grads)


def test_sequence_longer_than_positions_fails_eagerly():
  model = BertModel(tiny_config(max_position_embeddings=8))
  with pytest.raises(ValueError, match=r"max_position_embeddings=8.*got sequence length 9"):
    model(np.ones([1, 9], np.int32))


def test_sequence_longer_than_positions_fails_in_graph():
  model = BertModel(tiny_config(max_position_embeddings=8))
  encode = tf.function(lambda ids: model(ids)["pooled_output"],
                       input_signature=[tf.TensorSpec([None, None], tf.int32)])
  assert encode(np.ones([1, 8], np.int32)).shape == [1, 32]
  with pytest.raises(tf.errors.InvalidArgumentError, match="max_position_embeddings=8"):
    encode(np.ones([1, 9], np.int32))


def test_position_embeddings_are_a_slice_of_the_table():
  """A shorter sequence uses the first rows of the table: prefix outputs agree."""
  model = BertModel(tiny_config())
  embeddings = model.embeddings
  table = embeddings.position_table(5)
  np.testing.assert_array_equal(table[0], embeddings.position_embeddings[:5])
  assert re.match(r"bert/embeddings/position_embeddings", embeddings.position_embeddings.name)


def test_classifier_head_matches_manual_softmax():
  config = tiny_config()
  head = ClassifierHead(config, num_labels=3)
  pooled = tf.random.normal([4, 32])
  labels = tf.constant([0, 1, 2, 1])
  loss, per_example, logits, probs = head(pooled, labels)
  expected_logits = pooled @ tf.transpose(head.output_weights) + head.output_bias
  np.testing.assert_allclose(logits, expected_logits, atol=1e-6)
  np.testing.assert_allclose(tf.reduce_sum(probs, -1), np.ones(4), atol=1e-6)
  nll = -np.log(np.asarray(probs)[np.arange(4), labels.numpy()])
  np.testing.assert_allclose(per_example, nll, rtol=1e-5)
  np.testing.assert_allclose(loss, nll.mean(), rtol=1e-5)
  _, _, trained_logits, _ = head(pooled, labels, training=True)
  assert not np.allclose(trained_logits, logits)


def test_masked_lm_loss_ignores_zero_weights():
  config = tiny_config()
  model = BertModel(config)
  mlm = MaskedLMHead(config, model.embedding_table)
  data = tiny_inputs()
  sequence = model(data["input_ids"], data["input_mask"])["sequence_output"]
  weights = data["masked_lm_weights"]
  loss, per_example, log_probs = mlm(sequence, data["masked_lm_positions"],
                                     data["masked_lm_ids"], weights)
  assert log_probs.shape == [15, 99]
  flat = weights.reshape(-1)
  expected = (flat * per_example).numpy().sum() / (flat.sum() + 1e-5)
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  garbage = data["masked_lm_ids"].copy()
  garbage[weights == 0] = 42
  loss2, _, _ = mlm(sequence, data["masked_lm_positions"], garbage, weights)
  np.testing.assert_allclose(loss, loss2, rtol=1e-6)


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float16])
def test_mixed_precision_compute_with_float32_variables(dtype):
  config = tiny_config()
  model = BertModel(config, compute_dtype=dtype)
  mlm, nsp = MaskedLMHead(config, model.embedding_table), NextSentenceHead(config)
  reference = BertModel(config)
  for ours, theirs in zip(model.variables, reference.variables):
    theirs.assign(ours)
  assert all(v.dtype == tf.float32 for v in model.variables)
  data = tiny_inputs()
  with tf.GradientTape() as tape:
    outputs = model(data["input_ids"], data["input_mask"], data["segment_ids"])
    mlm_loss, _, log_probs = mlm(outputs["sequence_output"], data["masked_lm_positions"],
                                 data["masked_lm_ids"], data["masked_lm_weights"])
    nsp_loss, _, _ = nsp(outputs["pooled_output"], data["next_sentence_labels"])
    total_loss = mlm_loss + nsp_loss
  assert outputs["sequence_output"].dtype == dtype
  assert outputs["embedding_output"].dtype == tf.float32
  assert log_probs.dtype == tf.float32 and mlm_loss.dtype == tf.float32
  gradients = tape.gradient(total_loss, model.trainable_variables)
  assert all(g.dtype == tf.float32 for g in gradients)
  expected = reference(data["input_ids"], data["input_mask"], data["segment_ids"])
  np.testing.assert_allclose(tf.cast(outputs["sequence_output"], tf.float32),
                             expected["sequence_output"], atol=0.1)
  np.testing.assert_allclose(tf.cast(outputs["pooled_output"], tf.float32),
                             expected["pooled_output"], atol=0.05)


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_stateless_dropout_rate_scale_and_seed(dtype):
  inputs = tf.ones([3, 1001], dtype)  # An odd number of entries: one draw is half used.
  seed = tf.constant([7, 11], tf.int64)
  outputs = layers.stateless_dropout(inputs, 0.1, seed).numpy().astype(np.float32)
  assert outputs.shape == (3, 1001)
  kept = outputs != 0
  np.testing.assert_allclose(outputs[kept], 1 / 0.9, rtol=1e-2 if dtype == tf.bfloat16 else 1e-6)
  # 3003 entries, dropped with p = 6554 / 65536: within 4 standard deviations.
  assert abs((~kept).mean() - 0.1) < 4 * np.sqrt(0.1 * 0.9 / kept.size)
  np.testing.assert_array_equal(
      outputs, layers.stateless_dropout(inputs, 0.1, seed).numpy().astype(np.float32))
  other = layers.stateless_dropout(inputs, 0.1, seed + 1).numpy().astype(np.float32)
  assert (other != outputs).any()
  # Both 16-bit halves of a draw are used, and neither alone decides: the masks of
  # the first and second half of the entries are not copies of each other.
  flat = kept.reshape(-1)
  assert (flat[:1501] != flat[1501:3002]).any()


def test_stateless_dropout_rate_is_exact_in_expectation():
  kept = layers.stateless_dropout(tf.ones([1 << 20]), 0.25, tf.constant([1, 2], tf.int64))
  assert abs(np.mean(kept.numpy() == 0) - 0.25) < 4 * np.sqrt(0.25 * 0.75 / (1 << 20))
