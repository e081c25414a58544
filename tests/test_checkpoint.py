"""modeling.checkpoint: strict name-based load, atomic save, inspect/check CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from modeling import BertModel, ClassifierHead, MaskedLMHead, NextSentenceHead, checkpoint
from tiny import TINY_CONFIG, tiny_config


@pytest.fixture
def saved(tmp_path):
  """A tiny encoder saved with our writer: (prefix, model, config file)."""
  model = BertModel(tiny_config())
  prefix = checkpoint.save(tmp_path / "ckpt" / "bert_model.ckpt", model)
  config_file = tmp_path / "bert_config.json"
  config_file.write_text(json.dumps(TINY_CONFIG))
  return prefix, model, config_file


def test_round_trip_and_tf_reader(saved):
  prefix, model, _ = saved
  reader = tf.train.load_checkpoint(prefix)
  assert set(reader.get_variable_to_shape_map()) == {v.name[:-2] for v in model.variables}
  other = BertModel(tiny_config())
  report = checkpoint.load(prefix, other)
  assert len(report.loaded) == len(model.variables) and not report.missing
  for a, b in zip(model.variables, other.variables):
    np.testing.assert_array_equal(a, b)


def test_no_temporary_files_left(saved):
  prefix, _, _ = saved
  assert sorted(os.listdir(os.path.dirname(prefix))) == [
      "bert_model.ckpt.data-00000-of-00001", "bert_model.ckpt.index"]


def test_crash_during_save_leaves_previous_checkpoint_intact(saved, monkeypatch):
  prefix, model, _ = saved
  before = {v.name: v.numpy() for v in model.variables}
  for v in model.variables:
    v.assign(v + 1.0)
  renames = []

  def crash_on_index(src, dst, overwrite=False):
    if src.endswith(".index"):
      raise OSError("disk full")
    renames.append(dst)
    os.replace(src, dst)

  # The data file is replaced first; a crash before the index rename must leave
  # no checkpoint under a new name, and here the new data file pairs with the old index.
  new_prefix = os.path.join(os.path.dirname(prefix), "model.ckpt-2")
  monkeypatch.setattr(tf.io.gfile, "rename", crash_on_index)
  with pytest.raises(OSError):
    checkpoint.save(new_prefix, model)
  assert not tf.io.gfile.exists(new_prefix + ".index")
  assert renames == [new_prefix + ".data-00000-of-00001"]
  fresh = BertModel(tiny_config())
  checkpoint.load(prefix, fresh)
  for v in fresh.variables:
    np.testing.assert_array_equal(v, before[v.name])


def test_missing_variables_are_named_and_refused(saved):
  prefix, model, _ = saved
  config = tiny_config()
  head = ClassifierHead(config, num_labels=3)
  with pytest.raises(ValueError, match=r"missing from the checkpoint: output_bias"):
    checkpoint.load(prefix, [model, head])
  report = checkpoint.load(prefix, [model, head], allow_missing=[r"^output_"])
  assert report.missing == ["output_bias", "output_weights"]


def test_unexpected_variables_are_reported(tmp_path):
  config = tiny_config()
  model = BertModel(config)
  heads = [MaskedLMHead(config, model.embedding_table), NextSentenceHead(config)]
  prefix = checkpoint.save(tmp_path / "pretrained.ckpt", [model, *heads])
  report = checkpoint.load(prefix, BertModel(config))
  assert "cls/seq_relationship/output_weights" in report.unexpected
  assert "cls/predictions/output_bias" in report.unexpected


def test_shape_mismatch_names_variable_and_hints_vocab(saved):
  prefix, _, _ = saved
  with pytest.raises(ValueError) as error:
    checkpoint.load(prefix, BertModel(tiny_config(vocab_size=100)))
  message = str(error.value)
  assert "bert/embeddings/word_embeddings: checkpoint [99, 32] float32 vs variable [100, 32]" \
      in message
  assert "vocab_size=100" in message


def test_nothing_assigned_when_load_fails(saved):
  prefix, _, _ = saved
  model = BertModel(tiny_config(vocab_size=100))
  before = model.embeddings.position_embeddings.numpy()
  with pytest.raises(ValueError):
    checkpoint.load(prefix, model)
  np.testing.assert_array_equal(model.embeddings.position_embeddings, before)


def test_missing_checkpoint_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="nothing.ckpt"):
    checkpoint.load(tmp_path / "nothing.ckpt", BertModel(tiny_config()))
  with pytest.raises(FileNotFoundError, match="no checkpoint found in directory"):
    checkpoint.load(tmp_path, BertModel(tiny_config()))


def test_directory_resolves_to_latest(saved, tmp_path):
  prefix, model, _ = saved
  directory = os.path.dirname(prefix)
  tf.compat.v1.train.update_checkpoint_state(directory, prefix)
  assert checkpoint.load(directory, BertModel(tiny_config())).checkpoint == prefix


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "modeling.checkpoint", *map(str, args)],
                        capture_output=True, text=True)


def test_cli_check_accepts_a_fitting_checkpoint(saved):
  prefix, _, config_file = saved
  result = _cli("check", "--bert_config_file", config_file, prefix)
  assert result.returncode == 0, result.stdout + result.stderr
  assert "OK:" in result.stdout
  classifier = _cli("check", "--bert_config_file", config_file, prefix, "--task", "classifier")
  assert classifier.returncode == 0
  assert "initialised fresh: output_bias, output_weights" in classifier.stdout
  squad = _cli("check", "--bert_config_file", config_file, prefix, "--task", "squad")
  assert squad.returncode == 0, squad.stdout + squad.stderr
  assert "initialised fresh: cls/squad/output_bias, cls/squad/output_weights" in squad.stdout


def test_cli_check_rejects_vocab_mismatch(saved, tmp_path):
  prefix, _, _ = saved
  wrong = tmp_path / "wrong_config.json"
  wrong.write_text(json.dumps({**TINY_CONFIG, "vocab_size": 120}))
  result = _cli("check", "--bert_config_file", wrong, prefix)
  assert result.returncode == 1
  assert "INCOMPATIBLE" in result.stdout
  assert "vocab_size=120 disagrees with the checkpoint's 99 embedding rows" in result.stdout


def test_cli_check_rejects_truncated_data(saved):
  prefix, _, config_file = saved
  data_file = prefix + ".data-00000-of-00001"
  with open(data_file, "r+b") as f:
    f.truncate(os.path.getsize(data_file) // 2)
  result = _cli("check", "--bert_config_file", config_file, prefix)
  assert result.returncode == 1
  assert "corrupt" in result.stdout + result.stderr


def test_cli_check_reads_every_tensor_adam_slots_included(tmp_path):
  """A corrupt optimizer slot fails a resume, so check must find it too."""
  model = BertModel(tiny_config())
  slot = tf.Variable(tf.fill([32], 1234.5), name="bert/pooler/dense/bias/adam_m")
  prefix = checkpoint.save(tmp_path / "model.ckpt-7", [model, slot])
  config_file = tmp_path / "bert_config.json"
  config_file.write_text(json.dumps(TINY_CONFIG))
  assert _cli("check", "--bert_config_file", config_file, prefix).returncode == 0
  data_file = prefix + ".data-00000-of-00001"
  data = bytearray(open(data_file, "rb").read())
  offset = data.find(np.full([32], 1234.5, np.float32).tobytes())
  assert offset >= 0
  data[offset + 5] ^= 0xFF
  open(data_file, "wb").write(bytes(data))
  result = _cli("check", "--bert_config_file", config_file, prefix)
  assert result.returncode == 1
  assert "unreadable tensor bert/pooler/dense/bias/adam_m" in result.stdout


def test_cli_rejects_garbage_index(tmp_path):
  (tmp_path / "bad.ckpt.index").write_bytes(b"not a checkpoint index")
  result = _cli("inspect", tmp_path / "bad.ckpt")
  assert result.returncode == 1
  assert "bad.ckpt: unreadable checkpoint" in result.stderr


def test_cli_inspect_real_checkpoint(minilm_dir):
  result = _cli("inspect", os.path.join(minilm_dir, "bert_model.ckpt"))
  assert result.returncode == 0, result.stderr
  for line in ("vocab_size: 30522", "hidden_size: 384", "num_hidden_layers: 6",
               "intermediate_size: 1536", "max_position_embeddings: 512",
               "heads: none (encoder only)", "parameters (without optimizer slots): 22,713,216"):
    assert line in result.stdout


def test_cli_check_real_checkpoint(minilm_dir):
  result = _cli("check", "--bert_config_file", os.path.join(minilm_dir, "bert_config.json"),
                os.path.join(minilm_dir, "bert_model.ckpt"))
  assert result.returncode == 0, result.stdout + result.stderr
  assert "103 variables loaded" in result.stdout
