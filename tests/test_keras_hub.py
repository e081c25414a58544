"""modeling.checkpoint.keras_hub: keras-hub BertBackbone presets both ways, with h5py.

Oracle: keras-hub's own BertBackbone and BertTextClassifier (tests/keras_hub_oracle.py,
Keras 3 in a subprocess) on uneven sizes, `from_preset` of ours with no warning;
round trips bit-exact; the refusals' messages.
"""

import importlib.util
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import tensorflow as tf

from modeling import BertModel, checkpoint
from modeling.checkpoint import formats, keras_hub
from modeling.model.heads import ClassifierHead
from test_hf_checkpoint import assert_same_bits, read_ckpt, save_ours
from tiny import tiny_config, tiny_inputs

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
UNEVEN = {"hidden_size": 72, "intermediate_size": 150}
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_vocab(path, size=99):
  path.write_text("".join(f"{token}\n" for token in SPECIAL + [f"w{i}" for i in range(size - 5)]))
  return str(path)


def our_outputs(prefix, config, inputs, num_labels=3):
  model = BertModel(config)
  head = ClassifierHead(config, num_labels)
  checkpoint.load(prefix, [model, head])
  result = model(inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"])
  logits = tf.matmul(result["pooled_output"], head.output_weights, transpose_b=True)
  return {"sequence_output": result["sequence_output"].numpy(),
          "pooled_output": result["pooled_output"].numpy(),
          **{f"layer_{i}": x.numpy() for i, x in enumerate(result["all_encoder_layers"])},
          "classifier_logits": (logits + head.output_bias).numpy()}


@pytest.mark.slow
def test_keras_hub_is_the_oracle_both_ways(tmp_path):
  if importlib.util.find_spec("keras_hub") is None:
    pytest.skip("keras-hub's oracle needs keras-hub: pip install keras-hub==0.32.0")
  config = tiny_config(**UNEVEN)
  (tmp_path / "dims.json").write_text(json.dumps({**config.to_dict(), "num_labels": 3}))
  inputs = tiny_inputs(batch_size=3, seq_length=16, vocab_size=config.vocab_size)
  np.savez(tmp_path / "inputs.npz", **inputs)
  vocab = write_vocab(tmp_path / "vocab.txt")
  prefix, config_file, _ = save_ours(str(tmp_path / "original"), "classifier", **UNEVEN)
  keras_hub.to_keras_hub(prefix, config_file, tmp_path / "ours", vocab_file=vocab)

  result = subprocess.run([sys.executable, os.path.join(TESTS_DIR, "keras_hub_oracle.py"),
                           str(tmp_path)], capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-4000:]
  assert json.loads((tmp_path / "warnings.json").read_text()) == []

  on_ours, expected = np.load(tmp_path / "on_ours.npz"), our_outputs(prefix, config, inputs)
  for name in expected:
    np.testing.assert_allclose(on_ours[name], expected[name], atol=1e-5, err_msg=name)
  np.testing.assert_allclose(on_ours["backbone_sequence_output"], expected["sequence_output"],
                             atol=1e-5)
  assert on_ours["tokens"].tolist() == [[1, 6, 7]]  # Our vocabulary, lowercased.

  conversion = keras_hub.from_keras_hub(tmp_path / "theirs", tmp_path / "back")
  assert conversion.task == "classifier"
  theirs = np.load(tmp_path / "theirs.npz")
  mine = our_outputs(str(tmp_path / "back" / "bert_model.ckpt"), config, inputs)
  for name in mine:
    np.testing.assert_allclose(mine[name], theirs[name], atol=1e-5, err_msg=name)
  assert (tmp_path / "back" / "vocab.txt").read_text() == (tmp_path / "vocab.txt").read_text()

  # The chain no tool offered: keras-hub -> ours -> Hugging Face -> transformers.
  if importlib.util.find_spec("torch") is None or importlib.util.find_spec(
      "transformers") is None:
    return
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel
  formats.convert(tmp_path / "theirs", tmp_path / "hf", "hf")
  model = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
  with torch.no_grad():
    result = model(input_ids=torch.tensor(inputs["input_ids"], dtype=torch.long),
                   attention_mask=torch.tensor(inputs["input_mask"], dtype=torch.long),
                   token_type_ids=torch.tensor(inputs["segment_ids"], dtype=torch.long),
                   output_hidden_states=True)
  np.testing.assert_allclose(result.hidden_states[-1].numpy(), theirs["sequence_output"],
                             atol=1e-5)
  np.testing.assert_allclose(result.logits.numpy(), theirs["classifier_logits"], atol=1e-5)


@pytest.mark.parametrize("task", ["encoder", "classifier"])
def test_original_to_keras_hub_to_original_is_bit_exact(tmp_path, task):
  prefix, config_file, tensors = save_ours(str(tmp_path / "ours"), task, **UNEVEN)
  vocab = write_vocab(tmp_path / "vocab.txt")
  keras_hub.to_keras_hub(prefix, config_file, tmp_path / "kh", vocab_file=vocab,
                         do_lower_case=False)
  with h5py.File(tmp_path / "kh" / "model.weights.h5", "r") as h5:
    assert h5["layers/transformer_encoder_1/_self_attention_layer/query_dense/vars/0"].shape \
        == (72, 4, 18)
  assert json.loads((tmp_path / "kh" / "tokenizer.json").read_text())["config"]["lowercase"] \
      is False
  assert (tmp_path / "kh" / "task.json").exists() == (task == "classifier")
  assert keras_hub.is_keras_hub_preset(tmp_path / "kh")
  conversion = keras_hub.from_keras_hub(tmp_path / "kh", tmp_path / "back")
  assert any("run the scripts with --do_lower_case=False" in note for note in conversion.notes)
  assert_same_bits(read_ckpt(str(tmp_path / "back" / "bert_model.ckpt")), tensors)


def test_refusals(tmp_path):
  prefix, config_file, _ = save_ours(str(tmp_path / "ours"), "encoder", **UNEVEN)
  vocab = write_vocab(tmp_path / "vocab.txt")
  with pytest.raises(ValueError, match=r"holds its tokenizer's vocabulary .*--vocab_file"):
    keras_hub.to_keras_hub(prefix, config_file, tmp_path / "kh")

  exact, exact_config, _ = save_ours(str(tmp_path / "exact"), "encoder", hidden_act="gelu_exact")
  with pytest.raises(ValueError, match=r"hidden_act 'gelu_exact' .*hard-codes the tanh GELU.*"
                                       r"--approximate_gelu"):
    keras_hub.to_keras_hub(exact, exact_config, tmp_path / "kh", vocab_file=vocab)
  assert not (tmp_path / "kh").exists()
  conversion = keras_hub.to_keras_hub(exact, exact_config, tmp_path / "approx", vocab_file=vocab,
                                      approximate_gelu=True)
  assert any("--approximate_gelu" in note for note in conversion.notes)

  large = write_vocab(tmp_path / "large.txt", size=120)
  with pytest.raises(ValueError, match=r"large.txt has 120 entries but .* vocab_size=99"):
    keras_hub.to_keras_hub(prefix, config_file, tmp_path / "kh", vocab_file=large)

  keras_hub.to_keras_hub(prefix, config_file, tmp_path / "kh", vocab_file=vocab)
  other = json.loads((tmp_path / "kh" / "config.json").read_text())
  other["class_name"] = "RobertaBackbone"
  (tmp_path / "kh" / "config.json").write_text(json.dumps(other))
  with pytest.raises(ValueError, match=r"a keras-hub 'RobertaBackbone', not a BertBackbone"):
    keras_hub.from_keras_hub(tmp_path / "kh", tmp_path / "back")
  other["class_name"] = "BertBackbone"
  other["config"]["num_heads"] = 6
  (tmp_path / "kh" / "config.json").write_text(json.dumps(other))
  with pytest.raises(ValueError, match=r"query_dense/vars/0 .* is \[72, 4, 18\], but the "
                                       r"config's 6 heads of 12 make it \[72, 6, 12\]"):
    keras_hub.from_keras_hub(tmp_path / "kh", tmp_path / "back")
  other["config"]["num_heads"] = 4
  other["config"]["intermediate_dim"] = 148
  (tmp_path / "kh" / "config.json").write_text(json.dumps(other))
  with pytest.raises(ValueError, match=r"intermediate/dense/kernel: checkpoint \[72, 150\]"):
    keras_hub.from_keras_hub(tmp_path / "kh", tmp_path / "back")
  with pytest.raises(ValueError, match=r"--bert_config_file=.*holds its config"):
    keras_hub.from_keras_hub(tmp_path / "kh", tmp_path / "back", bert_config_file=config_file)

  (tmp_path / "busy").mkdir()
  (tmp_path / "busy" / "model.safetensors").write_text("a Hugging Face model")
  (tmp_path / "busy" / "config.json").write_text("{}")
  with pytest.raises(ValueError, match=r"holds model.safetensors, which an earlier output "
                                       r"does not"):
    keras_hub.to_keras_hub(prefix, config_file, tmp_path / "busy", vocab_file=vocab)
  assert sorted(os.listdir(tmp_path / "busy")) == ["config.json", "model.safetensors"]
