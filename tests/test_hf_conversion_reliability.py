"""The Hugging Face bridge on careless input: whole output directories, heads that mean
what they meant, vocabularies that fit, complete and finite weights (issue 28: 2, 3, 4,
6, 7 and 10)."""

import json
import os

import numpy as np
import pytest
from safetensors.numpy import load_file

from modeling import BertModel, checkpoint
from modeling.checkpoint import hf_import
from modeling.checkpoint.layout import is_training_state
from modeling.model.heads import ClassifierHead
from modeling.model.model import variables_except_pooler
from modeling.training import optimization
from test_hf_albert import save_albert
from test_hf_checkpoint import copy_of, hf_dir, save_ours  # noqa: F401  (hf_dir: a fixture)
from tiny import tiny_config


@pytest.fixture(name="classifier_hf_dir")
def fixture_classifier_hf_dir(tmp_path):
  """A tiny BertForSequenceClassification directory of 3 labels."""
  prefix, config_file, _ = save_ours(str(tmp_path / "ours"), "classifier")
  (tmp_path / "labels.txt").write_text("a\nb\nc\n")
  checkpoint.to_hf(prefix, config_file, tmp_path / "classifier_hf",
                   labels_file=tmp_path / "labels.txt")
  return tmp_path / "classifier_hf"


# ----------------------------------------------------------------------------
# 2, 3: an output directory holds one conversion, whole.

def test_to_hf_replaces_an_earlier_directory_whole(tmp_path):
  prefix, config_file, _ = save_ours(str(tmp_path / "ours"), "encoder")
  (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
  out = tmp_path / "hf"
  checkpoint.to_hf(prefix, config_file, out)
  (out / "tokenizer.json").write_text("{}")  # An earlier tokenizer, which AutoTokenizer prefers.
  checkpoint.to_hf(prefix, config_file, out, vocab_file=tmp_path / "vocab.txt")
  assert sorted(os.listdir(out)) == ["config.json", "model.safetensors",
                                     "tokenizer_config.json", "vocab.txt"]


def test_from_hf_leaves_no_labels_of_an_earlier_conversion(classifier_hf_dir, hf_dir, tmp_path):
  out = tmp_path / "ours_back"
  checkpoint.from_hf(classifier_hf_dir, out)
  assert (out / "labels.txt").exists()
  checkpoint.from_hf(hf_dir, out)  # A pretraining model: no classes.
  assert not (out / "labels.txt").exists()
  assert "output_bias" not in checkpoint.open_checkpoint(str(out / "bert_model.ckpt"))[2]


def test_a_directory_of_other_files_is_refused_and_kept(hf_dir, tmp_path):
  prefix, config_file, _ = save_ours(str(tmp_path / "ours"), "encoder")
  clone = tmp_path / "clone"
  clone.mkdir()
  (clone / "config.json").write_text("{}")
  (clone / "README.md").write_text("my notes")
  with pytest.raises(ValueError, match=r"output_dir=.*clone holds README\.md, which an "
                                       r"earlier output does not"):
    checkpoint.to_hf(prefix, config_file, clone)
  assert sorted(os.listdir(clone)) == ["README.md", "config.json"]
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  (run_dir / "model.ckpt-10.index").write_text("")
  with pytest.raises(ValueError, match=r"output_dir=.*run exists and is not an earlier "
                                       r"export \(no \*config\.json\)"):
    checkpoint.from_hf(hf_dir, run_dir)
  assert os.listdir(run_dir) == ["model.ckpt-10.index"]


def test_a_failure_between_files_leaves_the_earlier_directory(classifier_hf_dir, tmp_path,
                                                              monkeypatch):
  out = tmp_path / "ours_back"
  checkpoint.from_hf(classifier_hf_dir, out)
  before = {name: (out / name).read_bytes() for name in os.listdir(out)}
  # A second classifier with other class names, killed after its weights are written.
  renamed = copy_of(classifier_hf_dir, tmp_path, {"id2label": {"0": "x", "1": "y", "2": "z"}})
  written = []

  def write_text(path, text):
    if path.endswith("labels.txt"):
      raise OSError("killed")
    written.append(path)
    with open(path, "w", encoding="utf-8") as writer:
      writer.write(text)

  monkeypatch.setattr(hf_import, "write_text", write_text)
  with pytest.raises(OSError, match="killed"):
    checkpoint.from_hf(renamed, out)
  assert written  # bert_config.json reached the disk, in the temporary directory.
  assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
  assert [name for name in os.listdir(tmp_path) if name.startswith(".ours_back")] == []


# ----------------------------------------------------------------------------
# 4: problem_type.

def test_regression_converts_to_the_sts_b_head(classifier_hf_dir, tmp_path):
  tensors = load_file(classifier_hf_dir / "model.safetensors")
  regression = copy_of(classifier_hf_dir, tmp_path,
                       {"problem_type": "regression", "id2label": None, "label2id": None},
                       {"classifier.weight": tensors["classifier.weight"][:1],
                        "classifier.bias": tensors["classifier.bias"][:1]})
  conversion = checkpoint.from_hf(regression, tmp_path / "back")
  assert not (tmp_path / "back" / "labels.txt").exists()
  assert any("regression head" in note and "--task_name=sts-b" in note
             for note in conversion.notes)
  checkpoint.to_hf(str(tmp_path / "back" / "bert_model.ckpt"),
                   tmp_path / "back" / "bert_config.json", tmp_path / "hf_again")
  config = json.loads((tmp_path / "hf_again" / "config.json").read_text())
  assert config["problem_type"] == "regression"


def test_multi_label_converts_both_ways(classifier_hf_dir, tmp_path):
  multi = copy_of(classifier_hf_dir, tmp_path, {"problem_type": "multi_label_classification"})
  conversion = checkpoint.from_hf(multi, tmp_path / "back")
  assert (tmp_path / "back" / "labels.txt").read_text() == "a\nb\nc\n"
  assert any("multi-label head" in note and "--multi_label" in note
             for note in conversion.notes)
  checkpoint.to_hf(str(tmp_path / "back" / "bert_model.ckpt"),
                   tmp_path / "back" / "bert_config.json", tmp_path / "hf_again",
                   labels_file=tmp_path / "back" / "labels.txt", multi_label=True)
  config = json.loads((tmp_path / "hf_again" / "config.json").read_text())
  assert config["problem_type"] == "multi_label_classification"
  assert config["id2label"] == {"0": "a", "1": "b", "2": "c"}


@pytest.mark.parametrize("changes, message", [
    ({"problem_type": "multi_label"},
     r"problem_type='multi_label' which no head of the original layout computes"),
    ({"problem_type": "regression"}, r"problem_type='regression' but the classifier has 3 "
                                     r"outputs"),
])
def test_problem_types_without_a_head_are_refused(classifier_hf_dir, tmp_path, changes, message):
  changed = copy_of(classifier_hf_dir, tmp_path, changes)
  with pytest.raises(ValueError, match=message):
    checkpoint.from_hf(changed, tmp_path / "back")
  assert not (tmp_path / "back").exists()


# ----------------------------------------------------------------------------
# 6: the vocabulary must fit the config.

def test_to_hf_refuses_a_vocabulary_the_embeddings_lack(tmp_path):
  prefix, config_file, _ = save_ours(str(tmp_path / "ours"), "encoder")  # vocab_size 99
  (tmp_path / "vocab.txt").write_text("".join(f"w{i}\n" for i in range(199)))
  with pytest.raises(ValueError, match=r"--vocab_file=.*vocab\.txt has 199 entries but .* "
                                       r"has vocab_size=99"):
    checkpoint.to_hf(prefix, config_file, tmp_path / "hf", vocab_file=tmp_path / "vocab.txt")
  albert_prefix, albert_config, _ = save_albert(str(tmp_path / "albert"), "encoder")
  (tmp_path / "small.txt").write_text("[PAD]\n[UNK]\nhello\n")
  with pytest.raises(ValueError, match=r"is an ALBERT config, whose transformers tokenizer "
                                       r"\(AlbertTokenizer\) reads a SentencePiece model: "
                                       r"give --spm_model_file"):
    checkpoint.to_hf(albert_prefix, albert_config, tmp_path / "hf",
                     vocab_file=tmp_path / "small.txt")
  assert not (tmp_path / "hf").exists()


# ----------------------------------------------------------------------------
# 7: complete and finite weights.

@pytest.mark.parametrize("config_changes, tensor_changes, message", [
    ({"num_hidden_layers": 3}, None,
     r"BertForPreTraining with this config has 16 tensors that the weights lack: "
     r"bert/encoder/layer_2/"),
    (None, {"bert.encoder.layer.1.output.dense.bias": None},
     r"has 1 tensors that the weights lack: bert/encoder/layer_1/output/dense/bias"),
    (None, {"bert.pooler.dense.bias": np.full([32], np.nan, np.float32)},
     r"the weights' bert/pooler/dense/bias holds NaN or Inf"),
])
def test_incomplete_or_non_finite_weights_are_refused(hf_dir, tmp_path, config_changes,
                                                      tensor_changes, message):
  changed = copy_of(hf_dir, tmp_path, config_changes, tensor_changes)
  with pytest.raises(ValueError, match=message):
    checkpoint.from_hf(changed, tmp_path / "back")
  assert not (tmp_path / "back").exists()


# ----------------------------------------------------------------------------
# 10: run_ner's checkpoints are token classifiers.

def _ner_checkpoint(directory):
  """A checkpoint as run_ner writes it: the pooler exists but is not trained."""
  config = tiny_config()
  model, head = BertModel(config), ClassifierHead(config, 5)
  trained = variables_except_pooler(model) + list(head.trainable_variables)  # as run_ner
  optimizer = optimization.create_optimizer("adamw", trained, 1e-4, 10, 1)
  with open(os.path.join(directory, "bert_config.json"), "w", encoding="utf-8") as writer:
    writer.write(config.to_json_string())
  prefix = checkpoint.save(os.path.join(directory, "model.ckpt-1"), [model, head, optimizer])
  return prefix, os.path.join(directory, "bert_config.json")


def test_a_run_ner_checkpoint_converts_to_a_token_classifier(tmp_path):
  (tmp_path / "run").mkdir()
  prefix, config_file = _ner_checkpoint(str(tmp_path / "run"))
  (tmp_path / "labels.txt").write_text("O\nB-PER\nI-PER\nB-LOC\nI-LOC\n")
  conversion = checkpoint.to_hf(prefix, config_file, tmp_path / "hf",
                                labels_file=tmp_path / "labels.txt")
  assert (conversion.task, conversion.architecture) == ("ner", "BertForTokenClassification")
  # Without the training state, tags as labels are refused rather than guessed.
  stripped = checkpoint.save(str(tmp_path / "stripped" / "model.ckpt"), [
      v for v in _variables_of(prefix) if not is_training_state(v.name[:-2])])
  with pytest.raises(ValueError, match=r"holds NER tags, .*: give --task ner or --task "
                                       r"classifier"):
    checkpoint.to_hf(stripped, config_file, tmp_path / "hf2",
                     labels_file=tmp_path / "labels.txt")
  assert checkpoint.to_hf(stripped, config_file, tmp_path / "hf2", task="ner",
                          labels_file=tmp_path / "labels.txt").task == "ner"


def _variables_of(prefix):
  import tensorflow as tf  # noqa: PLC0415
  reader = tf.train.load_checkpoint(prefix)
  return [tf.Variable(reader.get_tensor(name), name=name)
          for name in reader.get_variable_to_shape_map()]
