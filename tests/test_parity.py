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

import oracle
import pretraining_parity
from modeling import BertModel, checkpoint
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


@pytest.fixture(scope="module")
def parity_runs(tmp_path_factory):
  """Runs every case; returns {case: (ours, original, spec)}."""
  oracle.require()
  return pretraining_parity.run_cases(CASES, TINY_CONFIG, tiny_config, ORACLE_SCRIPT,
                                      tmp_path_factory.mktemp("parity"), heads=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_outputs_match_original(parity_runs, case):
  ours, original, _ = parity_runs[case]
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
