"""--remove_padding (`modeling.model.padding_removal`): the encoder run on the real tokens
only gives the padded encoder's outputs and gradients at the real tokens, in BERT and
ALBERT; run_classifier.py trains with it to the same results, and the scripts refuse it
where it cannot take effect."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from modeling import BertModel
from test_albert import albert_config
from test_run_classifier import REPO_DIR, run_classifier, workspace  # noqa: F401 (fixture)
from tiny import TINY_CONFIG, tiny_config, tiny_inputs


def _twins(config, compute_dtype=tf.float32):
  """(padded, padding removed) BertModels with the same weights."""
  padded = BertModel(config, compute_dtype=compute_dtype)
  removed = BertModel(config, compute_dtype=compute_dtype, remove_padding=True)
  for source, target in zip(padded.variables, removed.variables):
    target.assign(source)
  return padded, removed


def _run(model, inputs, weights):
  """The outputs and the gradients of a loss on the real tokens and the rows' pooled outputs
  (only the rows with tokens: the pooler of a row of padding reads a padded position)."""
  with tf.GradientTape() as tape:
    outputs = model(inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"])
    real = tf.cast(inputs["input_mask"], tf.float32)[:, :, None]  # [B, S, 1]
    sequence = tf.cast(outputs["sequence_output"], tf.float32)
    has_tokens = tf.reduce_max(real, axis=1)  # [B, 1]: the rows with a [CLS]
    loss = (tf.reduce_sum(sequence * weights * real)
            + tf.reduce_sum(tf.cast(outputs["pooled_output"], tf.float32) ** 2 * has_tokens))
  return outputs, tape.gradient(loss, model.trainable_variables)


@pytest.mark.parametrize("config", [tiny_config(), albert_config(embedding_size=16)],
                         ids=["bert", "albert"])
def test_real_tokens_get_the_padded_encoders_outputs_and_gradients(config):
  inputs = tiny_inputs(batch_size=5)
  inputs["input_mask"][3] = 0  # A row of padding only: its pooled output is not compared.
  real = inputs["input_mask"].astype(bool)  # [B, S]
  weights = tf.random.stateless_normal([1, 16, config.hidden_size], seed=[1, 2])
  padded, removed = _twins(config)
  expected, expected_gradients = _run(padded, inputs, weights)
  outputs, gradients = _run(removed, inputs, weights)
  assert len(outputs["all_encoder_layers"]) == len(expected["all_encoder_layers"])
  for ours, theirs in zip(outputs["all_encoder_layers"], expected["all_encoder_layers"]):
    np.testing.assert_allclose(ours.numpy()[real], theirs.numpy()[real], atol=1e-5)
    assert not ours.numpy()[~real].any()  # The padded positions are zeros.
  kept = [0, 1, 2, 4]
  np.testing.assert_allclose(outputs["pooled_output"].numpy()[kept],
                             expected["pooled_output"].numpy()[kept], atol=1e-5)
  np.testing.assert_array_equal(outputs["embedding_output"], expected["embedding_output"])
  for variable, ours, theirs in zip(removed.trainable_variables, gradients, expected_gradients):
    np.testing.assert_allclose(tf.convert_to_tensor(ours), tf.convert_to_tensor(theirs),
                               rtol=1e-5, atol=2e-5, err_msg=variable.name)


def test_mixed_precision_and_a_batch_of_padding_only():
  padded, removed = _twins(tiny_config(), tf.bfloat16)
  inputs = tiny_inputs(batch_size=4)
  real = inputs["input_mask"].astype(bool)
  ours = removed(inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"])
  theirs = padded(inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"])
  assert ours["sequence_output"].dtype == tf.bfloat16
  np.testing.assert_allclose(tf.cast(ours["sequence_output"], tf.float32).numpy()[real],
                             tf.cast(theirs["sequence_output"], tf.float32).numpy()[real],
                             atol=0.1)  # bfloat16 keeps 8 bits: rounding differs by row
  empty = removed(inputs["input_ids"], np.zeros_like(inputs["input_mask"]))
  assert empty["sequence_output"].shape == (4, 16, 32)
  assert not tf.cast(empty["sequence_output"], tf.float32).numpy().any()


def test_run_classifier_trains_to_the_same_results(workspace, tmp_path):  # noqa: F811
  # Without dropout the two runs differ only by float rounding.
  config = tmp_path / "bert_config.json"
  config.write_text(json.dumps(dict(TINY_CONFIG, vocab_size=len(
      (workspace / "vocab.txt").read_text().split()), hidden_dropout_prob=0.0,
      attention_probs_dropout_prob=0.0)))
  results = []
  for name, extra in (("padded", []), ("removed", ["--remove_padding"])):
    output_dir = tmp_path / name
    run_classifier(workspace, output_dir, "--do_train", "--do_eval",
                   f"--init_checkpoint={workspace / 'pretrained' / 'bert_model.ckpt'}",
                   f"--bert_config_file={config}", "--train_batch_size=8",
                   "--learning_rate=2e-3", "--num_train_epochs=1", "--eval_batch_size=5",
                   *extra)
    lines = (output_dir / "eval_results.txt").read_text().splitlines()
    results.append({k: float(v) for k, v in (line.split(" = ") for line in lines)})
  padded, removed = results
  assert removed["global_step"] == padded["global_step"] == 12
  assert removed["eval_loss"] == pytest.approx(padded["eval_loss"], abs=1e-4)
  assert removed["eval_accuracy"] == padded["eval_accuracy"]


def test_refused_with_xla_and_by_run_squad(workspace, tmp_path):  # noqa: F811
  result = run_classifier(workspace, tmp_path / "xla", "--do_train", "--remove_padding",
                          "--use_xla", check=False)
  assert result.returncode != 0
  assert "--remove_padding with --use_xla" in result.stderr
  squad = subprocess.run(
      [sys.executable, os.path.join(REPO_DIR, "run_squad.py"),
       f"--vocab_file={workspace / 'vocab.txt'}",
       f"--bert_config_file={workspace / 'bert_config.json'}",
       f"--output_dir={tmp_path / 'squad'}", "--do_predict",
       f"--predict_file={tmp_path / 'dev.json'}", "--remove_padding"],
      capture_output=True, text=True, cwd=REPO_DIR)
  assert squad.returncode != 0
  assert "--remove_padding: the span loss's softmax reads every position" in squad.stderr
