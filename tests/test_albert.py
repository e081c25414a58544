"""ALBERT: config keys, names, shared layers, and parity with Google's ALBERT code.

The oracle is `albert-tensorflow==1.1` under tf.compat.v1 (tests/original_albert.py),
run in a subprocess: checkpoints both ways on random ALBERT configs (E < H and
E = H, one or several groups, inner groups) with outputs within 1e-5, and three
pretraining steps (MLM + SOP, AdamWeightDecay, dropout 0) giving its weights.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import oracle
import pretraining_parity
from conftest import REPO_DIR
from modeling import BertConfig, BertModel, MaskedLMHead, checkpoint
from modeling.tasks import pretraining
from modeling.training import optimization, run_checkpoints
from tiny import TINY_CONFIG, make_trainer, tiny_config, tiny_inputs

ALBERT_TINY = {**TINY_CONFIG, "embedding_size": 16, "num_hidden_groups": 1,
               "inner_group_num": 1, "hidden_dropout_prob": 0.0,
               "attention_probs_dropout_prob": 0.0}


def albert_config(**changes):
  return BertConfig.from_dict({**ALBERT_TINY, **changes})


def _require_albert():
  oracle.require()
  pytest.importorskip("albert", reason="Google's ALBERT (pip install albert-tensorflow==1.1) "
                      "is the test oracle")


# ----------------------------------------------------------------------------
# Config and names.

def test_config_keys_make_albert_and_round_trip(tmp_path):
  path = tmp_path / "albert_config.json"
  google = {"attention_probs_dropout_prob": 0, "hidden_act": "gelu", "hidden_dropout_prob": 0,
            "embedding_size": 128, "hidden_size": 768, "initializer_range": 0.02,
            "intermediate_size": 3072, "max_position_embeddings": 512,
            "num_attention_heads": 12, "num_hidden_layers": 12, "num_hidden_groups": 1,
            "net_structure_type": 0, "gap_size": 0, "num_memory_blocks": 0,
            "inner_group_num": 1, "down_scale_factor": 1, "type_vocab_size": 2,
            "vocab_size": 30000}
  path.write_text(json.dumps(google))
  config = BertConfig.from_json_file(path)
  assert config.is_albert and config.embedding_width == 128
  assert config.to_dict() == google
  # A BERT config has none of ALBERT's keys, and writes none back.
  bert = tiny_config()
  assert not bert.is_albert and bert.embedding_width == bert.hidden_size
  assert bert.embedding_size is None and set(bert.to_dict()) == set(TINY_CONFIG)
  # Any ALBERT key makes an ALBERT config; the others take ALBERT's defaults.
  partial = tiny_config(num_hidden_groups=2)
  assert partial.is_albert and partial.embedding_size == 128 and partial.inner_group_num == 1


@pytest.mark.parametrize("changes, message", [
    ({"embedding_size": 0}, "embedding_size=0 must be a positive integer"),
    ({"num_hidden_groups": 3}, "num_hidden_groups=3 exceeds num_hidden_layers=2"),
    ({"inner_group_num": 1.5}, "inner_group_num=1.5 must be a positive integer"),
    ({"embeding_size": 16}, "did you mean 'embedding_size'"),
])
def test_bad_albert_values_are_named(tmp_path, changes, message):
  path = tmp_path / "albert_config.json"
  path.write_text(json.dumps({**ALBERT_TINY, **changes}
                             if "embeding_size" not in changes
                             else {**TINY_CONFIG, **changes}))
  with pytest.raises(ValueError, match=f"{path}: .*{message}"):
    BertConfig.from_json_file(path)


def test_variable_names_and_sharing():
  config = albert_config(num_hidden_layers=4, num_hidden_groups=2, inner_group_num=2)
  model = BertModel(config)
  names = set(checkpoint.named_variables(model))
  assert "bert/encoder/embedding_hidden_mapping_in/kernel" in names
  block = "bert/encoder/transformer/group_1/inner_group_1"
  for part in ("attention_1/self/query/kernel", "attention_1/self/key/bias",
               "attention_1/self/value/kernel", "attention_1/output/dense/kernel",
               "LayerNorm/gamma", "ffn_1/intermediate/dense/kernel",
               "ffn_1/intermediate/output/dense/bias", "LayerNorm_1/beta"):
    assert f"{block}/{part}" in names, part
  assert not any("group_2" in n or "layer_" in n for n in names)
  # 4 layers x 2 inner blocks applied; layers 0-1 share group 0, layers 2-3 group 1.
  assert len(model.encoder_layers) == 8
  assert model.encoder_layers[0] is model.encoder_layers[2]
  assert model.encoder_layers[4] is model.encoder_layers[6]
  assert model.encoder_layers[0] is not model.encoder_layers[4]
  shapes = {n: v.shape.as_list() for n, v in checkpoint.named_variables(model).items()}
  assert shapes["bert/embeddings/word_embeddings"] == [99, 16]
  assert shapes["bert/embeddings/position_embeddings"] == [64, 16]
  assert shapes["bert/embeddings/LayerNorm/gamma"] == [16]
  assert shapes["bert/encoder/embedding_hidden_mapping_in/kernel"] == [16, 32]
  # The masked-LM transform maps H to E before the tied [V, E] embedding.
  mlm = MaskedLMHead(config, model.embedding_table)
  assert mlm.transform.kernel.shape.as_list() == [32, 16]
  # E == H: no projection.
  same = BertModel(albert_config(embedding_size=32))
  assert same.embedding_projection is None
  assert not any("mapping_in" in n for n in checkpoint.named_variables(same))


def test_outputs_dict_as_bert():
  config = albert_config(num_hidden_layers=3, inner_group_num=2)
  data = tiny_inputs()
  outputs = BertModel(config)(data["input_ids"], data["input_mask"], data["segment_ids"])
  assert outputs["sequence_output"].shape == [3, 16, 32]
  assert outputs["pooled_output"].shape == [3, 32]
  assert outputs["embedding_output"].shape == [3, 16, 16]
  assert len(outputs["all_encoder_layers"]) == 6  # one per block, as ALBERT's
  np.testing.assert_array_equal(outputs["all_encoder_layers"][-1], outputs["sequence_output"])


def test_parameters_shrink_with_sharing():
  count = lambda model: sum(int(np.prod(v.shape)) for v in model.variables)  # noqa: E731
  bert = BertModel(tiny_config(num_hidden_layers=4))
  albert = BertModel(albert_config(num_hidden_layers=4))
  one_layer = BertModel(tiny_config(num_hidden_layers=1))
  bert_embeddings = (99 + 64 + 2) * 32 + 2 * 32  # H-wide tables and LayerNorm
  albert_embeddings = (99 + 64 + 2) * 16 + 2 * 16 + 16 * 32 + 32  # E-wide, and projection
  assert count(albert) == count(one_layer) - bert_embeddings + albert_embeddings
  assert count(albert) < count(bert)


# ----------------------------------------------------------------------------
# Parity with Google's ALBERT code, checkpoints both ways.

ORACLE_SCRIPT = """
import json, sys
import numpy as np
import original_albert

tf, modeling, run_pretraining = (original_albert.original_bert.tf, original_albert.modeling,
                                 original_albert.run_pretraining)
for case in json.load(open(sys.argv[1])):
  data = np.load(case["inputs"])
  with tf.Graph().as_default():
    config = modeling.AlbertConfig.from_dict(case["config"])
    model = modeling.AlbertModel(
        config=config, is_training=False, input_ids=tf.constant(data["input_ids"]),
        input_mask=tf.constant(data["input_mask"]),
        token_type_ids=tf.constant(data["segment_ids"]),
        use_one_hot_embeddings=case["use_one_hot_embeddings"])
    fetches = {"sequence_output": model.get_sequence_output(),
               "pooled_output": model.get_pooled_output(),
               "embedding_output": model.get_embedding_output()}
    for i, layer in enumerate(model.get_all_encoder_layers()):
      fetches["layer_%d" % i] = layer
    mlm_loss, _, mlm_log_probs = run_pretraining.get_masked_lm_output(
        config, model.get_sequence_output(), model.get_embedding_table(),
        tf.constant(data["masked_lm_positions"]), tf.constant(data["masked_lm_ids"]),
        tf.constant(data["masked_lm_weights"]))
    sop_loss, _, sop_log_probs = run_pretraining.get_sentence_order_output(
        config, model.get_pooled_output(), tf.constant(data["next_sentence_labels"]))
    fetches.update(mlm_loss=mlm_loss, mlm_log_probs=mlm_log_probs,
                   sop_loss=sop_loss, sop_log_probs=sop_log_probs)
    saver = tf.train.Saver()
    with tf.Session() as sess:
      if case["direction"] == "original_to_ours":
        sess.run(tf.global_variables_initializer())
        rng = np.random.RandomState(1)
        for v in tf.global_variables():  # Non-trivial biases, gammas and betas too.
          v.load(v.eval() + rng.normal(0.0, 0.2, size=v.shape.as_list()).astype(np.float32),
                 sess)
        saver.save(sess, case["checkpoint"])
      else:
        saver.restore(sess, case["checkpoint"])
      np.savez(case["outputs"], **sess.run(fetches))
"""

CASES = {
    "original_to_ours_projection_groups_inner": dict(
        direction="original_to_ours", use_one_hot_embeddings=False,
        config={"num_hidden_layers": 3, "num_hidden_groups": 2, "inner_group_num": 2}),
    "original_to_ours_e_equals_h_one_hot": dict(
        direction="original_to_ours", use_one_hot_embeddings=True,
        config={"embedding_size": 32, "type_vocab_size": 3}),
    "ours_to_original_all_shared": dict(
        direction="ours_to_original", use_one_hot_embeddings=False,
        config={"num_hidden_layers": 4, "hidden_act": "relu"}),
    "ours_to_original_e_equals_h_groups_inner": dict(
        direction="ours_to_original", use_one_hot_embeddings=True,
        config={"embedding_size": 32, "num_hidden_groups": 2, "inner_group_num": 3}),
}


@pytest.fixture(scope="module")
def parity_runs(tmp_path_factory):
  """Runs every case in one oracle process; returns {case: (ours, original, spec)}."""
  _require_albert()
  return pretraining_parity.run_cases(CASES, ALBERT_TINY, albert_config, ORACLE_SCRIPT,
                                      tmp_path_factory.mktemp("albert_parity"), "sop")


@pytest.mark.parametrize("case", sorted(CASES))
def test_outputs_match_original_albert(parity_runs, case):
  ours, original, _ = parity_runs[case]
  assert sorted(ours) == sorted(original)
  for key in original:
    np.testing.assert_allclose(ours[key], original[key], rtol=1e-5, atol=1e-5, err_msg=key)


def test_checkpoint_cli_recognises_albert(parity_runs, tmp_path):
  _, _, spec = parity_runs["original_to_ours_projection_groups_inner"]
  inspect = subprocess.run([sys.executable, "-m", "modeling.checkpoint", "inspect",
                            spec["checkpoint"]], capture_output=True, text=True, cwd=REPO_DIR)
  assert inspect.returncode == 0, inspect.stderr
  for line in ("model: ALBERT", "embedding_size: 16", "num_hidden_groups: 2",
               "inner_group_num: 2", "hidden_size: 32", "intermediate_size: 37",
               "heads: pretraining MLM, pretraining NSP"):
    assert line in inspect.stdout, inspect.stdout
  config_file = tmp_path / "albert_config.json"
  config_file.write_text(json.dumps(spec["config"]))
  check = subprocess.run([sys.executable, "-m", "modeling.checkpoint", "check",
                          "--bert_config_file", str(config_file), "--task", "pretraining",
                          spec["checkpoint"]], capture_output=True, text=True, cwd=REPO_DIR)
  assert check.returncode == 0, check.stdout + check.stderr
  # A BERT config of the same sizes does not fit an ALBERT checkpoint.
  bert_file = tmp_path / "bert_config.json"
  bert_file.write_text(json.dumps(TINY_CONFIG))
  check = subprocess.run([sys.executable, "-m", "modeling.checkpoint", "check",
                          "--bert_config_file", str(bert_file), spec["checkpoint"]],
                         capture_output=True, text=True, cwd=REPO_DIR)
  assert check.returncode == 1
  assert "missing from the checkpoint: bert/encoder/layer_0/" in check.stdout


# ----------------------------------------------------------------------------
# Pretraining (MLM + SOP) steps against ALBERT's optimizer.

ORACLE_TRAIN_SCRIPT = """
import json, sys
import numpy as np
import original_albert

tf, modeling = original_albert.original_bert.tf, original_albert.modeling
run_pretraining, optimization = original_albert.run_pretraining, original_albert.optimization
config_file, batch_file, init_ckpt, out_ckpt = sys.argv[1:5]
lr, total, warmup, steps = float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
config = modeling.AlbertConfig.from_json_file(config_file)
batch = {k: tf.constant(v) for k, v in np.load(batch_file).items()}
model = modeling.AlbertModel(config=config, is_training=True, input_ids=batch["input_ids"],
                             input_mask=batch["input_mask"], token_type_ids=batch["segment_ids"])
mlm_loss, _, _ = run_pretraining.get_masked_lm_output(
    config, model.get_sequence_output(), model.get_embedding_table(),
    batch["masked_lm_positions"], batch["masked_lm_ids"], batch["masked_lm_weights"])
sop_loss, _, _ = run_pretraining.get_sentence_order_output(
    config, model.get_pooled_output(), batch["next_sentence_labels"])
loss = mlm_loss + sop_loss
train_op = optimization.create_optimizer(loss, lr, total, warmup, False, "adamw")
# The update and `global_step += 1` are grouped unordered (google-research/bert#1050);
# run them in the order the comments intend.
increment = [op for op in train_op.control_inputs if op.type == "Assign"]
update = [op for op in train_op.control_inputs if op.type != "Assign"]
model_vars = [v for v in tf.global_variables() if "adam_" not in v.name and
              "global_step" not in v.name]
losses = []
with tf.Session() as sess:
  sess.run(tf.global_variables_initializer())
  tf.train.Saver(model_vars).restore(sess, init_ckpt)
  for _ in range(steps):
    losses.append(float(sess.run(loss)))
    sess.run(update)
    sess.run(increment)
  tf.train.Saver().save(sess, out_ckpt)
print(json.dumps(losses))
"""


def test_pretraining_steps_match_original_albert(tmp_path):
  _require_albert()
  config_dict = {**ALBERT_TINY, "num_hidden_layers": 3, "num_hidden_groups": 2,
                 "inner_group_num": 2}
  config_file = tmp_path / "albert_config.json"
  config_file.write_text(json.dumps(config_dict))
  config = BertConfig.from_json_file(config_file)
  data = tiny_inputs(batch_size=4, seq_length=16, seed=5)
  np.savez(tmp_path / "batch.npz", **data)
  lr, total, warmup, steps = 1e-3, 10, 1, 3

  tf.random.set_seed(2)
  model = pretraining.PretrainingModel(config)
  opt = optimization.create_optimizer("adamw", model.trainable_variables, lr, total, warmup)
  init_prefix = checkpoint.save(tmp_path / "init" / "model.ckpt", model)
  checkpoints = run_checkpoints.CheckpointManager(tmp_path / "ours", [model, opt])
  batch = {k: tf.constant(v) for k, v in data.items()}
  trainer = make_trainer(tf.distribute.get_strategy(), model.loss, opt, 4,
                         totals_fn=model.loss_totals, log_steps=1)
  first_loss = float(trainer.evaluate(tf.data.Dataset.from_tensors(batch).repeat(),
                                      model.eval_metrics, 1)["loss"])
  trainer.train(tf.data.Dataset.from_tensors(batch).repeat(), steps, checkpoints,
                save_checkpoints_steps=steps)

  losses = json.loads(oracle.run(ORACLE_TRAIN_SCRIPT, config_file, tmp_path / "batch.npz",
                                 init_prefix, tmp_path / "original" / "model.ckpt-3", lr,
                                 total, warmup, steps).strip().splitlines()[-1])
  assert first_loss == pytest.approx(losses[0], abs=1e-5)  # MLM + SOP on the same batch
  reader = lambda prefix: {n: tf.train.load_checkpoint(str(prefix)).get_tensor(n)  # noqa: E731
                           for n in tf.train.list_variables(str(prefix)) for n in [n[0]]}
  expected = reader(tmp_path / "original" / "model.ckpt-3")
  ours = reader(checkpoints.latest)
  assert set(ours) == set(expected)
  worst = max(float(np.max(np.abs(ours[k] - expected[k]))) for k in expected)
  print(f"largest difference from ALBERT's weights after {steps} steps: {worst:.2e}")
  assert worst < 1e-6, worst
