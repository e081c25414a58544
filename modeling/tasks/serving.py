"""SavedModel export of a fine-tuned classifier that takes raw text.

The serving signature tokenizes in-graph (`graph_tokenization.InGraphTokenizer`, or
for ALBERT `InGraphSentencePieceTokenizer`, on tensorflow-text) and packs the word
pieces (`graph_packing.pack_inputs`) exactly as `classifier_data.convert_example`
does: `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, the longer segment truncated
first, padded to `max_seq_length`.

Loading needs `import tensorflow_text` first (it registers the tokenizer's ops).
"""

import json
import os

import numpy as np
import tensorflow as tf

from modeling.data import files
from modeling.data.graph_packing import pack_inputs
from modeling.data.graph_tokenization import in_graph_tokenizer

SAVED_MODEL_FILE = "saved_model.pb"
# Beside the SavedModel, for `convert_export`: how to rebuild its model and tokenizer
# (the graph holds the vocabulary as a constant, not as a file).
SETTINGS_FILE = os.path.join("assets.extra", "bert_export.json")


def settings(kind, model, vocab_file, do_lower_case, max_seq_length, label_list,
             spm_model_file=None, **extra):
  """What `convert_export` needs of an export: a JSON-able dict.

  Args:
    kind: "classifier" or "tagger".
    model: the exported `classifier.ClassifierModel` or `ner.NerModel`.
    extra: the server's other settings (buckets, thresholds, stride...).
  """
  return dict(kind=kind, bert_config=model.bert.config.to_dict(),
              multi_label=bool(getattr(model, "multi_label", False)),
              is_regression=bool(getattr(model, "is_regression", False)),
              tokenizer_file=spm_model_file or vocab_file, spm=bool(spm_model_file),
              do_lower_case=bool(do_lower_case), max_seq_length=int(max_seq_length),
              labels=list(label_list or []), **extra)


class ClassifierServer(tf.Module):
  """Raw text in, class probabilities (or regression values, or each label's
  probability and the labels above their thresholds) out."""

  def __init__(self, model, vocab_file, do_lower_case, max_seq_length, label_list,
               spm_model_file=None, buckets=None, thresholds=None, label_separator=","):
    """Args:
      model: a trained `classifier.ClassifierModel`.
      vocab_file: the vocabulary the model was trained with.
      do_lower_case: as the tokenizer the model was trained with.
      max_seq_length: the padded length.
      label_list: class names in class-id order, or None for regression.
      spm_model_file: ALBERT's SentencePiece model, used instead of `vocab_file`
        when given.
      buckets: `length_buckets.parse_buckets` lengths: each request batch is
        padded to the smallest holding its longest row (None: max_seq_length).
      thresholds: a multi-label model's thresholds, float [C] (or one float).
      label_separator: what joins a multi-label model's predicted labels.
    """
    super().__init__()
    per_label = None if thresholds is None else np.broadcast_to(thresholds, [len(label_list)])
    self.export_settings = json.dumps(settings(
        "classifier", model, vocab_file, do_lower_case, max_seq_length, label_list,
        spm_model_file, buckets=None if buckets is None else list(buckets),
        thresholds=None if per_label is None else per_label.tolist(),
        label_separator=label_separator))
    self.tokenizer, vocab, _ = in_graph_tokenizer(vocab_file, do_lower_case, spm_model_file)
    self.model = model
    self.max_seq_length = max_seq_length
    self.buckets = None if buckets is None else tuple(buckets)
    self.cls_id, self.sep_id = vocab["[CLS]"], vocab["[SEP]"]
    self.labels = tf.constant(label_list or [], tf.string)
    if model.multi_label:
      self.thresholds = tf.constant(per_label, tf.float32)
      self.label_separator = label_separator

  def _predict(self, text_a, text_b):
    ids_b = self.tokenizer(text_b) if text_b is not None else None
    input_ids, input_mask, segment_ids = pack_inputs(
        self.tokenizer(text_a), ids_b, self.max_seq_length, self.cls_id, self.sep_id,
        self.buckets)
    predictions = self.model.predictions(input_ids, input_mask, segment_ids)
    if self.model.is_regression:
      return {"predictions": predictions}
    if self.model.multi_label:
      above = predictions > self.thresholds  # [B, C]
      names = tf.ragged.boolean_mask(
          tf.broadcast_to(self.labels, tf.shape(above)), above)  # [B, (labels)]
      return {"probabilities": predictions, "above_threshold": above,
              "labels": tf.strings.reduce_join(names, axis=-1,
                                               separator=self.label_separator)}
    return {"probabilities": predictions,
            "label": tf.gather(self.labels, tf.argmax(predictions, axis=-1))}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text_a")])
  def classify(self, text_a):
    """text_a: string [B] -> probabilities float32 [B, C] and label string [B]
    (multi-label: above_threshold bool [B, C] and labels string [B], the labels
    above their thresholds joined by the separator)."""
    return self._predict(text_a, None)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text_a"),
                                tf.TensorSpec([None], tf.string, name="text_b")])
  def classify_pair(self, text_a, text_b):
    """text_a, text_b: string [B] -> as `classify`."""
    return self._predict(text_a, text_b)


def export(server, export_dir, pair):
  """Writes a SavedModel whose `serving_default` takes `text_a` (and `text_b` if pair).

  Both signatures are exported, `classify` and `classify_pair`; the default is the
  one matching the task. The directory is written next to its final name and
  renamed into place, so a crash never leaves a half-written model there; an
  existing `export_dir` is replaced only if it is an earlier SavedModel.
  """
  signatures = {"classify": server.classify, "classify_pair": server.classify_pair}
  signatures["serving_default"] = signatures["classify_pair" if pair else "classify"]
  return save(server, export_dir, signatures)


def save(server, export_dir, signatures):
  """`tf.saved_model.save` next to `export_dir`, then renamed into place (atomic).

  `server.export_settings` (JSON, `settings`) goes to `SETTINGS_FILE` and the
  tokenizer's file beside it, so that `convert_export` can rebuild the model.
  """
  export_dir = os.fspath(export_dir).rstrip("/")
  with files.atomic_directory(export_dir, SAVED_MODEL_FILE, "--export_dir") as temp_dir:
    tf.saved_model.save(server, temp_dir, signatures=signatures)
    export_settings = json.loads(server.export_settings)
    extra_dir = os.path.join(temp_dir, os.path.dirname(SETTINGS_FILE))
    tf.io.gfile.makedirs(extra_dir)
    tokenizer_file = os.path.basename(export_settings["tokenizer_file"])
    tf.io.gfile.copy(export_settings["tokenizer_file"], os.path.join(extra_dir, tokenizer_file))
    export_settings["tokenizer_file"] = tokenizer_file  # Now beside the settings.
    with tf.io.gfile.GFile(os.path.join(temp_dir, SETTINGS_FILE), "w") as writer:
      writer.write(json.dumps(export_settings, indent=2))
  return export_dir
