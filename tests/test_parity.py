"""Parity with Google's original code: checkpoints both ways, outputs within 1e-5.

One oracle process builds the original graph for every case: for "original ->
ours" cases it initialises the original model and saves its checkpoint, for
"ours -> original" cases it restores the checkpoint we wrote. Either way it
records its outputs on the same inputs, and we compare ours.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import oracle
from modeling import BertModel, MaskedLMHead, NextSentenceHead, checkpoint
from tiny import TINY_CONFIG, tiny_config, tiny_inputs

ORACLE_SCRIPT = """
import json, sys
import numpy as np
import original_bert
from bert import run_pretraining

tf, modeling = original_bert.tf, original_bert.modeling
for case in json.load(open(sys.argv[1])):
  data = np.load(case["inputs"])
  with tf.Graph().as_default():
    config = modeling.BertConfig.from_dict(case["config"])
    model = modeling.BertModel(
        config=config, is_training=False, input_ids=tf.constant(data["input_ids"]),
        input_mask=tf.constant(data["input_mask"]),
        token_type_ids=tf.constant(data["segment_ids"]),
        use_one_hot_embeddings=case["use_one_hot_embeddings"])
    fetches = {"sequence_output": model.get_sequence_output(),
               "pooled_output": model.get_pooled_output(),
               "embedding_output": model.get_embedding_output()}
    for i, layer in enumerate(model.get_all_encoder_layers()):
      fetches["layer_%d" % i] = layer
    if case["heads"]:
      mlm_loss, _, mlm_log_probs = run_pretraining.get_masked_lm_output(
          config, model.get_sequence_output(), model.get_embedding_table(),
          tf.constant(data["masked_lm_positions"]), tf.constant(data["masked_lm_ids"]),
          tf.constant(data["masked_lm_weights"]))
      nsp_loss, _, nsp_log_probs = run_pretraining.get_next_sentence_output(
          config, model.get_pooled_output(), tf.constant(data["next_sentence_labels"]))
      fetches.update(mlm_loss=mlm_loss, mlm_log_probs=mlm_log_probs,
                     nsp_loss=nsp_loss, nsp_log_probs=nsp_log_probs)
    saver = tf.train.Saver()
    with tf.Session() as sess:
      if case["direction"] == "original_to_ours":
        sess.run(tf.global_variables_initializer())
        rng = np.random.RandomState(1)
        for v in tf.global_variables():  # Non-trivial biases, gammas and betas too.
          shape = v.shape.as_list()
          v.load(v.eval() + rng.normal(0.0, 0.2, size=shape).astype(np.float32), sess)
        saver.save(sess, case["checkpoint"])
      else:
        saver.restore(sess, case["checkpoint"])
      np.savez(case["outputs"], **sess.run(fetches))
"""

CASES = {
    "original_to_ours_gather": dict(direction="original_to_ours", use_one_hot_embeddings=False,
                                    config={}),
    "original_to_ours_one_hot": dict(direction="original_to_ours", use_one_hot_embeddings=True,
                                     config={"hidden_act": "gelu_exact", "type_vocab_size": 3}),
    "ours_to_original_gather": dict(direction="ours_to_original", use_one_hot_embeddings=False,
                                    config={"hidden_act": "relu", "num_hidden_layers": 3}),
    "ours_to_original_one_hot": dict(direction="ours_to_original", use_one_hot_embeddings=True,
                                     config={}),
}


def _build(config, use_one_hot_embeddings):
  model = BertModel(config, use_one_hot_embeddings=use_one_hot_embeddings)
  return model, MaskedLMHead(config, model.embedding_table), NextSentenceHead(config)


def _perturb(modules, seed):
  """Adds noise to every variable, so that biases, gammas and betas are non-trivial."""
  rng = np.random.RandomState(seed)
  for variable in checkpoint.named_variables(modules).values():
    variable.assign_add(rng.normal(0.0, 0.2, size=variable.shape).astype(np.float32))


def _our_outputs(modules, data):
  model, mlm, nsp = modules
  outputs = model(data["input_ids"], data["input_mask"], data["segment_ids"])
  mlm_loss, _, mlm_log_probs = mlm(outputs["sequence_output"], data["masked_lm_positions"],
                                   data["masked_lm_ids"], data["masked_lm_weights"])
  nsp_loss, _, nsp_log_probs = nsp(outputs["pooled_output"], data["next_sentence_labels"])
  result = {key: outputs[key] for key in ("sequence_output", "pooled_output",
                                          "embedding_output")}
  result.update({f"layer_{i}": layer for i, layer in enumerate(outputs["all_encoder_layers"])})
  result.update(mlm_loss=mlm_loss, mlm_log_probs=mlm_log_probs, nsp_loss=nsp_loss,
                nsp_log_probs=nsp_log_probs)
  return {key: np.asarray(value) for key, value in result.items()}


@pytest.fixture(scope="module")
def parity_runs(tmp_path_factory):
  """Runs every case; returns {case: (ours, original) output dicts}."""
  oracle.require()
  tmp = tmp_path_factory.mktemp("parity")
  data = tiny_inputs(batch_size=3, seq_length=16)  # 16 < max_position_embeddings=64
  np.savez(tmp / "inputs.npz", **data)
  specs, ours = [], {}
  for name, case in CASES.items():
    config_dict = {**TINY_CONFIG, **case["config"]}
    spec = dict(case, config=config_dict, heads=True, inputs=str(tmp / "inputs.npz"),
                checkpoint=str(tmp / name / "model.ckpt"), outputs=str(tmp / f"{name}.npz"))
    if case["direction"] == "ours_to_original":
      modules = _build(tiny_config(**case["config"]), case["use_one_hot_embeddings"])
      _perturb(modules, seed=7)
      checkpoint.save(spec["checkpoint"], modules)
      ours[name] = _our_outputs(modules, data)
    specs.append(spec)
  (tmp / "cases.json").write_text(json.dumps(specs))
  oracle.run(ORACLE_SCRIPT, tmp / "cases.json")
  results = {}
  for spec in specs:
    name = next(n for n in CASES if spec["outputs"].endswith(f"{n}.npz"))
    if name not in ours:
      modules = _build(tiny_config(**CASES[name]["config"]), spec["use_one_hot_embeddings"])
      report = checkpoint.load(spec["checkpoint"], modules)
      assert not report.missing and not report.unexpected, report
      ours[name] = _our_outputs(modules, data)
    results[name] = (ours[name], dict(np.load(spec["outputs"])))
  return results


@pytest.mark.parametrize("case", sorted(CASES))
def test_outputs_match_original(parity_runs, case):
  ours, original = parity_runs[case]
  assert sorted(ours) == sorted(original)
  for key in original:
    np.testing.assert_allclose(ours[key], original[key], rtol=1e-5, atol=1e-5, err_msg=key)


def test_real_checkpoint_matches_original(minilm_dir, tmp_path):
  """The pretrained MiniLM (gelu_exact) gives the original's outputs on real-length input."""
  oracle.require()
  data = tiny_inputs(batch_size=2, seq_length=40, vocab_size=30522, seed=3)
  np.savez(tmp_path / "inputs.npz", **data)
  with open(os.path.join(minilm_dir, "bert_config.json")) as f:
    config_dict = json.load(f)
  spec = dict(direction="ours_to_original", use_one_hot_embeddings=False, heads=False,
              config=config_dict, inputs=str(tmp_path / "inputs.npz"),
              checkpoint=os.path.join(minilm_dir, "bert_model.ckpt"),
              outputs=str(tmp_path / "original.npz"))
  (tmp_path / "cases.json").write_text(json.dumps([spec]))
  oracle.run(ORACLE_SCRIPT, tmp_path / "cases.json")
  original = np.load(spec["outputs"])

  model = BertModel(tiny_config(**config_dict))
  report = checkpoint.load(spec["checkpoint"], model)
  assert report.missing == [] and report.mismatched == []
  outputs = model(data["input_ids"], data["input_mask"], data["segment_ids"])
  for key in ("sequence_output", "pooled_output", "embedding_output"):
    np.testing.assert_allclose(outputs[key], original[key], rtol=1e-5, atol=1e-5, err_msg=key)
  for i, layer in enumerate(outputs["all_encoder_layers"]):
    np.testing.assert_allclose(layer, original[f"layer_{i}"], rtol=1e-5, atol=1e-5)
