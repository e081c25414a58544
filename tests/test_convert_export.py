"""convert_export.py and export_reading: an export directory read back (weights checked,
settings kept) and its refusals. The files it writes are tested against the training
runs' own in test_multi_label.py (classifier) and test_ner_tflite_export.py (tagger)."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from modeling.tasks import export_reading, ner, ner_serving, ner_tflite_export, serving
from tiny import tiny_config

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "rome", "john", "##s", "."]
LABELS = ["B-LOC", "B-PER", "O"]


def convert_export(*flags, check=True):
  result = subprocess.run([sys.executable, os.path.join(REPO_DIR, "convert_export.py"), *flags],
                          capture_output=True, text=True, cwd=REPO_DIR)
  if check:
    assert result.returncode == 0, result.stderr[-5000:]
  return result


@pytest.fixture(scope="module")
def tagger_export(tmp_path_factory):
  """A tiny NER SavedModel (stride 3, cased) and the model it was exported from."""
  root = tmp_path_factory.mktemp("convert")
  (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
  tf.random.set_seed(4)
  model = ner.NerModel(tiny_config(vocab_size=len(VOCAB), initializer_range=0.5), len(LABELS))
  server = ner_serving.NerServer(model, str(root / "vocab.txt"), False, 8, 3, LABELS)
  export_dir = serving.save(server, root / "export", {"serving_default": server.tag})
  return root, model, export_dir


def test_an_export_reads_back_with_its_weights_and_settings(tagger_export):
  root, model, export_dir = tagger_export
  export = export_reading.read_export(export_dir)
  assert export.settings["kind"] == "tagger" and export.settings["stride"] == 3
  assert export.settings["labels"] == LABELS and not export.settings["do_lower_case"]
  assert open(export.tokenizer_file, encoding="utf-8").read().split() == VOCAB
  names = sorted(v.name for v in model.variables)
  assert names == sorted(v.name for v in export.model.variables) and len(names) > 20
  for ours, read in zip(sorted(model.variables, key=lambda v: v.name),
                        sorted(export.model.variables, key=lambda v: v.name)):
    np.testing.assert_array_equal(ours.numpy(), read.numpy(), err_msg=ours.name)
  # Its TFLite server tags as the one built from the model (windows of 6, 3 apart).
  texts = tf.constant(["john the cat . rome the cats john rome", "Rome"])
  # (The servers are kept: a tf.function method holds its object weakly.)
  built = ner_tflite_export.TfliteTagger(model, str(root / "vocab.txt"), False, 8, 3, LABELS)
  read = export_reading.tflite_server(export)
  expected, served = built.tag(texts), read.tag(texts)
  for name in ("tags", "word_start", "word_end", "num_words"):
    np.testing.assert_array_equal(served[name].numpy(), expected[name].numpy(), err_msg=name)


def test_refusals(tagger_export, tmp_path):
  _, _, export_dir = tagger_export
  tflite = f"--export_tflite={tmp_path / 'x.tflite'}"
  old = tmp_path / "old"  # An export of an earlier version: no settings file.
  os.makedirs(old)
  (old / serving.SAVED_MODEL_FILE).write_bytes(b"")
  for flags, message in (
      ([f"--from_export_dir={tmp_path}", tflite], f"--from_export_dir={tmp_path} holds no "
                                                   "saved_model.pb"),
      ([f"--from_export_dir={old}", tflite], f"has no {serving.SETTINGS_FILE} .*export it "
                                             "again with --export_dir"),
      ([f"--from_export_dir={export_dir}"], "Nothing to write"),
      ([f"--from_export_dir={export_dir}", tflite, f"--export_dir={tmp_path / 's'}"],
       "--from_export_dir is a SavedModel already"),
      ([f"--from_export_dir={export_dir}", f"--export_tflite={tmp_path}"],
       f"--export_tflite={tmp_path} is a directory")):
    result = convert_export(*flags, check=False)
    assert result.returncode != 0
    assert any(re.search(message, line) for line in result.stderr.splitlines()), \
        result.stderr[-2000:]
  assert sorted(os.listdir(tmp_path)) == ["old"]  # Nothing written.
