"""Reads a model back from an export directory (`serving.save`'s SavedModel), so that
an existing export converts to TFLite or ONNX without its training run
(`convert_export.py`).

The SavedModel's variables are the server's; its `model` is ours, so the rebuilt
model (from `serving.SETTINGS_FILE`: the BertConfig, labels, task and tokenizer
settings) restores them by object path, every variable checked.

  export = read_export("/tmp/topics_export")
  tflite_export.export(tflite_server(export), "/tmp/topics.tflite")
"""

import collections
import json
import os

import tensorflow as tf

from modeling.model.config import BertConfig
from modeling.tasks import ner_tflite_export, serving, tflite_export
from modeling.tasks.classifier import ClassifierModel
from modeling.tasks.ner import NerModel

# settings: `serving.settings`' dict; model: a ClassifierModel or NerModel with the
# export's weights; tokenizer_file: the vocabulary (or SentencePiece model) beside it.
Export = collections.namedtuple("Export", ["settings", "model", "tokenizer_file"])


def read_export(export_dir, flag="--from_export_dir"):
  """The settings, model and tokenizer file of an export directory.

  Raises:
    ValueError: `export_dir` is no SavedModel, or one without the settings file
      (written by an earlier version: export it again), naming `flag`.
  """
  if not tf.io.gfile.exists(os.path.join(export_dir, serving.SAVED_MODEL_FILE)):
    raise ValueError(f"{flag}={export_dir} holds no {serving.SAVED_MODEL_FILE}")
  path = os.path.join(export_dir, serving.SETTINGS_FILE)
  if not tf.io.gfile.exists(path):
    raise ValueError(f"{flag}={export_dir} has no {serving.SETTINGS_FILE} (SavedModels of "
                     "earlier versions lack it): export it again with --export_dir")
  with tf.io.gfile.GFile(path) as reader:
    settings = json.loads(reader.read())
  config = BertConfig.from_dict(settings["bert_config"], source=path)
  if settings["kind"] == "classifier":
    model = ClassifierModel(config, len(settings["labels"]), settings["is_regression"],
                            multi_label=settings["multi_label"])
  elif settings["kind"] == "tagger":
    model = NerModel(config, len(settings["labels"]))
  else:
    raise ValueError(f"{path}: kind {settings['kind']!r} is neither classifier nor tagger")
  status = tf.train.Checkpoint(model=model).read(
      os.path.join(export_dir, "variables", "variables"))
  status.expect_partial()  # The tokenizer's tables are the server's, not the model's.
  status.assert_existing_objects_matched()
  return Export(settings, model, os.path.join(os.path.dirname(path), settings["tokenizer_file"]))


def tflite_server(export):
  """The TFLite server of an `Export` (`tflite_export.TfliteClassifier` or
  `ner_tflite_export.TfliteTagger`), as its training run builds it."""
  settings = export.settings
  if settings["kind"] == "tagger":
    return ner_tflite_export.TfliteTagger(
        export.model, export.tokenizer_file, settings["do_lower_case"],
        settings["max_seq_length"], settings["stride"], settings["labels"])
  spm = settings["spm"]
  return tflite_export.TfliteClassifier(
      export.model, None if spm else export.tokenizer_file, settings["do_lower_case"],
      settings["max_seq_length"], settings["labels"], export.tokenizer_file if spm else None,
      settings["buckets"], settings["thresholds"])
