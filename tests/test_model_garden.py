"""modeling.checkpoint.model_garden: Model Garden TF2 BertEncoder checkpoints both ways.

Oracle: tf-models-official's own BertEncoder, BertPretrainerV2 and BertClassifier
(tests/model_garden_oracle.py, Keras 2 in a subprocess) on uneven sizes; round
trips original -> Model Garden -> original bit-exact; the refusals' messages.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from modeling import BertModel, checkpoint
from modeling.checkpoint import model_garden
from modeling.checkpoint.model_garden_names import OLD_ATTENTION_OUTPUT
from modeling.model.heads import ClassifierHead, MaskedLMHead, NextSentenceHead
from test_hf_checkpoint import assert_same_bits, read_ckpt, save_ours
from tiny import tiny_config, tiny_inputs

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
UNEVEN = {"hidden_size": 72, "intermediate_size": 150}  # 2 layers, 4 heads of 18


def _save_heads(directory, config):
  """Two original checkpoints of one random model with the heads Model Garden holds:
  `directory/ours` (encoder, masked LM, a 3-class classifier) and
  `directory/ours_pretraining` (encoder, masked LM, next sentence). Returns
  ({name: (prefix, config file)}, modules)."""
  model = BertModel(config)
  mlm, classifier = MaskedLMHead(config, model.embedding_table), ClassifierHead(config, 3)
  nsp = NextSentenceHead(config)
  rng = np.random.RandomState(3)
  for variable in checkpoint.named_variables([model, mlm, classifier, nsp]).values():
    variable.assign(rng.normal(0, 0.3, variable.shape).astype(np.float32))
  saved = {}
  for name, head in (("ours", classifier), ("ours_pretraining", nsp)):
    prefix = checkpoint.save(os.path.join(directory, name, "bert_model.ckpt"), [model, mlm, head])
    config_file = os.path.join(directory, name, "bert_config.json")
    with open(config_file, "w", encoding="utf-8") as writer:
      writer.write(config.to_json_string())
    saved[name] = prefix, config_file
  return saved, (model, mlm, classifier, nsp)


def _our_outputs(modules, inputs):
  model, mlm, classifier, nsp = modules
  result = model(inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"])
  linear = lambda head: (tf.matmul(result["pooled_output"], head.output_weights,  # noqa: E731
                                   transpose_b=True) + head.output_bias).numpy()
  return {"sequence_output": result["sequence_output"].numpy(),
          "pooled_output": result["pooled_output"].numpy(),
          **{f"layer_{i}": x.numpy() for i, x in enumerate(result["all_encoder_layers"])},
          "mlm_log_probs": mlm.log_probs(result["sequence_output"],
                                         inputs["masked_lm_positions"]).numpy(),
          "classifier_logits": linear(classifier), "nsp_logits": linear(nsp)}


def _load(prefix, config, num_labels=3):
  model = BertModel(config)
  modules = [model, MaskedLMHead(config, model.embedding_table),
             ClassifierHead(config, num_labels), NextSentenceHead(config)]
  checkpoint.load(prefix, modules, allow_missing=[r"^cls/", r"^output_"])
  return modules


def _log_softmax(logits):
  logits = logits.reshape(-1, logits.shape[-1])
  shifted = logits - logits.max(-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


@pytest.mark.slow
def test_model_garden_is_the_oracle_both_ways(tmp_path):
  for module in ("official", "tf_keras", "gin", "tf_slim", "immutabledict"):
    if importlib.util.find_spec(module) is None:
      pytest.skip(f"Model Garden's oracle needs {module}: pip install --no-deps "
                  "tf-models-official==2.20.0 gin-config tf-slim immutabledict, and tf-keras")
  config = tiny_config(**UNEVEN)
  dims = {**config.to_dict(), "num_labels": 3}
  (tmp_path / "dims.json").write_text(json.dumps(dims))
  inputs = tiny_inputs(batch_size=3, seq_length=16, vocab_size=config.vocab_size)
  np.savez(tmp_path / "inputs.npz", **inputs)
  saved, ours = _save_heads(str(tmp_path / "original"), config)
  for name, (prefix, config_file) in saved.items():
    model_garden.to_model_garden(prefix, config_file, tmp_path / name)

  result = subprocess.run([sys.executable, os.path.join(TESTS_DIR, "model_garden_oracle.py"),
                           str(tmp_path)], capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-4000:]

  # Ours written, read by Model Garden: the same outputs.
  on_ours, expected = np.load(tmp_path / "on_ours.npz"), _our_outputs(ours, inputs)
  for name in ("sequence_output", "pooled_output", "layer_0", "layer_1", "classifier_logits",
               "nsp_logits"):
    np.testing.assert_allclose(on_ours[name], expected[name], atol=1e-5, err_msg=name)
  np.testing.assert_allclose(_log_softmax(on_ours["mlm_logits"]), expected["mlm_log_probs"],
                             atol=1e-5)

  # Theirs read by us: the pretrainer's encoder, masked-LM and next-sentence heads ...
  theirs = np.load(tmp_path / "theirs.npz")
  conversion = model_garden.from_model_garden(tmp_path / "theirs_pretrainer", tmp_path / "a")
  assert conversion.task == "pretraining"
  assert any("hidden_act 'gelu'" in note for note in conversion.notes)
  mine = _our_outputs(_load(str(tmp_path / "a" / "bert_model.ckpt"), config), inputs)
  for name in ("sequence_output", "pooled_output", "layer_0", "layer_1", "nsp_logits"):
    np.testing.assert_allclose(mine[name], theirs[name], atol=1e-5, err_msg=name)
  np.testing.assert_allclose(mine["mlm_log_probs"], _log_softmax(theirs["mlm_logits"]),
                             atol=1e-5)
  # ... and the classifier saved by a trainer, its Adam slots left out with a note.
  conversion = model_garden.from_model_garden(
      tmp_path / "theirs_classifier" / "ckpt-1", tmp_path / "b")
  assert conversion.task == "classifier"
  assert any("optimizer entries" in note for note in conversion.notes), conversion.notes
  mine = _our_outputs(_load(str(tmp_path / "b" / "bert_model.ckpt"), config), inputs)
  np.testing.assert_allclose(mine["classifier_logits"], theirs["classifier_logits"], atol=1e-5)


@pytest.mark.parametrize("task", ["encoder", "pretraining", "classifier"])
def test_original_to_model_garden_to_original_is_bit_exact(tmp_path, task):
  prefix, config_file, tensors = save_ours(str(tmp_path / "ours"), task, **UNEVEN)
  model_garden.to_model_garden(prefix, config_file, tmp_path / "mg")
  keys = dict(tf.train.list_variables(str(tmp_path / "mg" / "bert_model.ckpt")))
  assert keys["encoder/layer_with_weights-4/_attention_layer/_query_dense/kernel/"
              ".ATTRIBUTES/VARIABLE_VALUE"] == [72, 4, 18]
  assert keys["encoder/layer_with_weights-5/_attention_layer/_output_dense/kernel/"
              ".ATTRIBUTES/VARIABLE_VALUE"] == [4, 18, 72]
  assert model_garden.is_model_garden(tmp_path / "mg") and not model_garden.is_model_garden(
      prefix)
  model_garden.from_model_garden(tmp_path / "mg", tmp_path / "back")
  assert_same_bits(read_ckpt(str(tmp_path / "back" / "bert_model.ckpt")), tensors)
  assert json.loads((tmp_path / "back" / "bert_config.json").read_text()) == json.loads(
      open(config_file, encoding="utf-8").read())


def _rewrite(source_prefix, destination, change, extra=None):
  """A Model Garden checkpoint of `source_prefix`'s tensors, paths passed through
  `change(path) -> path`, with `extra` ({path: array}) added or replacing."""
  reader = tf.train.load_checkpoint(source_prefix)
  values = {}
  for key in reader.get_variable_to_shape_map():
    if key.endswith(model_garden.names.SUFFIX):
      values[change(key[:-len(model_garden.names.SUFFIX)])] = tf.Variable(
          reader.get_tensor(key))
  values.update({path: tf.Variable(value) for path, value in (extra or {}).items()})
  root = model_garden._tree(values)  # pylint: disable=protected-access
  tf.train.Checkpoint(**{name: getattr(root, name) for name in vars(root)
                         if not name.startswith("_")}).write(destination)
  return destination


def test_older_attention_output_names_are_read(tmp_path):
  prefix, config_file, tensors = save_ours(str(tmp_path / "ours"), "encoder", **UNEVEN)
  model_garden.to_model_garden(prefix, config_file, tmp_path / "mg")
  old = _rewrite(str(tmp_path / "mg" / "bert_model.ckpt"), str(tmp_path / "old" / "ckpt"),
                 lambda p: p.replace("/_attention_layer/_output_dense/",
                                     f"/{OLD_ATTENTION_OUTPUT}/"))
  assert any(OLD_ATTENTION_OUTPUT in n for n, _ in tf.train.list_variables(old))
  model_garden.from_model_garden(old, tmp_path / "back", bert_config_file=config_file)
  assert_same_bits(read_ckpt(str(tmp_path / "back" / "bert_model.ckpt")), tensors)


def test_refusals(tmp_path):
  prefix, config_file, _ = save_ours(str(tmp_path / "ours"), "encoder", **UNEVEN)
  model_garden.to_model_garden(prefix, config_file, tmp_path / "mg")
  mg = str(tmp_path / "mg" / "bert_model.ckpt")

  other = tf.Module()
  other.dense = tf.Variable(np.zeros([3, 3], np.float32))
  tf.train.Checkpoint(net=other).write(str(tmp_path / "other" / "ckpt"))
  with pytest.raises(ValueError, match=r"no Model Garden BertEncoder in it .*another "
                                       r"architecture.*net/dense"):
    model_garden.read_model_garden(str(tmp_path / "other" / "ckpt"))

  wrong = tmp_path / "wrong.json"
  wrong.write_text(tiny_config(hidden_size=72, intermediate_size=148).to_json_string())
  with pytest.raises(ValueError, match=r"wrong.json disagrees with the shapes of .*"
                                       r"intermediate_size=148 where the checkpoint has 150"):
    model_garden.read_model_garden(mg, bert_config_file=str(wrong))

  extra = _rewrite(mg, str(tmp_path / "extra" / "ckpt"), lambda p: p,
                   {"encoder/layer_with_weights-9/bias": np.zeros([72], np.float32)})
  with pytest.raises(ValueError, match=r"variables with no place in the original layout: "
                                       r"encoder/layer_with_weights-9/bias"):
    model_garden.read_model_garden(extra)

  (tmp_path / "busy").mkdir()
  (tmp_path / "busy" / "notes.txt").write_text("keep me")
  with pytest.raises(ValueError, match=r"exists and is not an earlier export"):
    model_garden.from_model_garden(mg, tmp_path / "busy")
  assert os.listdir(tmp_path / "busy") == ["notes.txt"]

  squad, squad_config, _ = save_ours(str(tmp_path / "squad"), "squad")
  with pytest.raises(ValueError, match=r"a Model Garden checkpoint has no place for "
                                       r"cls/squad/output_bias"):
    model_garden.to_model_garden(squad, squad_config, tmp_path / "out")
  assert not (tmp_path / "out").exists()

  pretraining, pretraining_config, _ = save_ours(str(tmp_path / "pre"), "pretraining", **UNEVEN)
  model_garden.to_model_garden(pretraining, pretraining_config, tmp_path / "mg_pre")
  own_pooler = _rewrite(  # A next-sentence head trained with its own pooler.
      str(tmp_path / "mg_pre" / "bert_model.ckpt"), str(tmp_path / "own" / "ckpt"), lambda p: p,
      {"next_sentence..pooler_dense/bias": np.ones([72], np.float32)})
  half = _rewrite(str(tmp_path / "mg_pre" / "bert_model.ckpt"), str(tmp_path / "half" / "ckpt"),
                  lambda p: p.replace("masked_lm/dense/bias", "masked_lm/dense/bias_"))
  with pytest.raises(ValueError, match=r"a head with masked_lm/dense/bias absent"):
    model_garden.read_model_garden(half, allow_unused=["bias_$"])
  with pytest.raises(ValueError, match=r"the next-sentence head's own pooler "
                                       r"next_sentence..pooler_dense/bias differs from the "
                                       r"encoder's"):
    model_garden.read_model_garden(own_pooler, bert_config_file=pretraining_config)
