"""TFLite export of a fine-tuned classifier that takes raw UTF-8 text.

The model tokenizes inside the graph with tensorflow-text's TFLite-capable ops
(`FastBertTokenizer`: `FastBertNormalize` and `FastWordpieceTokenize`; for ALBERT's
SentencePiece, `tflite_sentencepiece.FastSentencePieceTokenizer`), packs the
pieces as `classifier_data.convert_example` does (`graph_packing.pack_inputs`,
dense ops only) and returns class probabilities and the label name. It runs in
`tf.lite.Interpreter` or LiteRT (`ai_edge_litert`) with tensorflow-text's op
registrar, `tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS`:

  interpreter = InterpreterWithCustomOps(
      custom_op_registerers=SELECT_TFTEXT_OPS, model_path="model.tflite")
  classify = interpreter.get_signature_runner("classify")
  classify(text_a=np.array(["some text"]))["probabilities"]  # [B, C]

docs/deploy.md lists where the fast tokenizers differ from `FullTokenizer` and
`SentencePieceTokenizer`.
"""

import numpy as np
import tensorflow as tf

from modeling.data import files
from modeling.data.graph_packing import pack_inputs
from modeling.data.tokenization import MAX_INPUT_CHARS_PER_WORD, UNK, load_vocab
from modeling.tasks.tflite_sentencepiece import FastSentencePieceTokenizer

QUANTIZATIONS = ("none", "dynamic")
# The custom ops of tensorflow-text that `SELECT_TFTEXT_OPS` registers and we use
# (the whitespace and byte splits: the NER tagger's, `ner_tflite_export`; SentencePiece:
# ALBERT's classifier).
TFTEXT_OPS = ("FastBertNormalize", "FastWordpieceTokenizeWithOffsets",
              "TFText>WhitespaceTokenizeWithOffsetsV2", "TFText>ByteSplitWithOffsets",
              "TFText>ByteSplitByOffsets", "TFText>FastSentencepieceTokenize")


def fast_tokenizer(vocab_file, do_lower_case):
  """tensorflow-text's `FastBertTokenizer` set up as `FullTokenizer`, and the vocab.

  Returns:
    (tokenizer: `tokenizer.tokenize(strings [B])` is an int32 RaggedTensor
    [B, (pieces)], {piece: id}).
  """
  # Imported here: tensorflow-text takes seconds to load, and only the export uses it.
  import tensorflow_text as text  # pylint: disable=import-outside-toplevel
  vocab = load_vocab(vocab_file)
  if UNK not in vocab:
    raise ValueError(f"vocab_file {vocab_file} has no {UNK} token")
  # FastWordpiece limits words in bytes, the original in characters: the same limit
  # agrees on ASCII words (docs/deploy.md lists the other differences).
  tokenizer = text.FastBertTokenizer(
      vocab=list(vocab), max_bytes_per_word=MAX_INPUT_CHARS_PER_WORD,
      token_out_type=tf.int32, unknown_token=UNK, lower_case_nfd_strip_accents=do_lower_case)
  return tokenizer, vocab


class TfliteClassifier(tf.Module):
  """Raw text in, class probabilities and label out (multi-label: each label's
  probability and whether it is above its threshold), in TFLite-capable ops."""

  SIGNATURES = ("classify", "classify_pair")  # The `tf.function`s `convert` writes.

  def __init__(self, model, vocab_file, do_lower_case, max_seq_length, label_list,
               spm_model_file=None, buckets=None, thresholds=None):
    """Args:
      model: a trained `classifier.ClassifierModel` (not regression).
      vocab_file: the WordPiece vocabulary the model was trained with.
      do_lower_case: as the tokenizer the model was trained with.
      max_seq_length: the padded length S.
      label_list: class names in class-id order.
      spm_model_file: ALBERT's SentencePiece model, used instead of `vocab_file`
        when given.
      buckets: `length_buckets.parse_buckets` lengths: each request batch is padded
        to the smallest holding its longest row (None: max_seq_length).
      thresholds: a multi-label model's thresholds, float [C] (or one float).
    """
    super().__init__()
    if model.is_regression:
      raise ValueError("the TFLite export takes a classifier; this task is a regression")
    if spm_model_file:
      self.tokenizer = FastSentencePieceTokenizer(spm_model_file, do_lower_case)
      vocab = self.tokenizer.vocab
    else:
      self.tokenizer, vocab = fast_tokenizer(vocab_file, do_lower_case)
    self.model = model
    self.max_seq_length = max_seq_length
    self.buckets = None if buckets is None else tuple(buckets)
    self.cls_id, self.sep_id = vocab["[CLS]"], vocab["[SEP]"]
    # Then "" for a label below its threshold (TFLite cannot join strings in the graph).
    self.labels = tf.constant(list(label_list) + [""], tf.string)
    if model.multi_label:
      self.thresholds = tf.constant(np.broadcast_to(thresholds, [len(label_list)]), tf.float32)

  def _predict(self, text_a, text_b):
    ids_b = self.tokenizer.tokenize(text_b) if text_b is not None else None
    input_ids, input_mask, segment_ids = pack_inputs(
        self.tokenizer.tokenize(text_a), ids_b, self.max_seq_length, self.cls_id, self.sep_id,
        self.buckets)  # [B, S] each
    probabilities = self.model.predictions(input_ids, input_mask, segment_ids)  # [B, C]
    if self.model.multi_label:
      above = probabilities > self.thresholds  # [B, C]
      label_ids = tf.range(tf.size(self.thresholds))[None, :]  # [1, C]
      return {"probabilities": probabilities, "above_threshold": above,
              "labels": tf.gather(self.labels, tf.where(above, label_ids, tf.size(label_ids)))}
    return {"probabilities": probabilities,
            "label": tf.gather(self.labels, tf.argmax(probabilities, axis=-1))}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text_a")])
  def classify(self, text_a):
    """text_a: string [B] -> probabilities float32 [B, C] and label string [B]
    (multi-label: above_threshold bool [B, C] and labels string [B, C], each label's
    name where it is above its threshold, else "")."""
    return self._predict(text_a, None)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text_a"),
                                tf.TensorSpec([None], tf.string, name="text_b")])
  def classify_pair(self, text_a, text_b):
    """text_a, text_b: string [B] -> as `classify`."""
    return self._predict(text_a, text_b)


def convert(server, quantization="none"):
  """The .tflite flatbuffer (bytes) of `server`'s signatures.

  Args:
    server: a `TfliteClassifier` or `ner_tflite_export.TfliteTagger` (any `tf.Module`
      naming its `tf.function`s in `SIGNATURES`).
    quantization: "none" (fp32) or "dynamic" (int8 weights, activations quantized
      on the fly: TFLite's dynamic-range quantization).
  """
  if quantization not in QUANTIZATIONS:
    raise ValueError(f"--tflite_quantization={quantization!r}: expected one of "
                     f"{', '.join(QUANTIZATIONS)}")
  functions = [getattr(server, name).get_concrete_function() for name in server.SIGNATURES]
  converter = tf.lite.TFLiteConverter.from_concrete_functions(functions, server)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  # The tokenizer's ops are tensorflow-text's TFLite kernels, registered at load time.
  converter.allow_custom_ops = True
  if quantization == "dynamic":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  model = converter.convert()
  unresolved = sorted(set(custom_ops(model)) - set(TFTEXT_OPS))
  if unresolved:
    raise ValueError(f"the TFLite model needs ops no TFLite runtime has: {unresolved}")
  return model


def export(server, path, quantization="none"):
  """Writes `server` converted to TFLite to `path`, whole or not at all."""
  model = convert(server, quantization)
  with files.atomic_open(path, "wb") as writer:
    writer.write(model)
  return path


def custom_ops(model):
  """The custom op names a .tflite flatbuffer (bytes) calls."""
  # pylint: disable-next=import-outside-toplevel
  from tensorflow.lite.python import schema_py_generated as schema
  root = schema.Model.GetRootAsModel(model, 0)  # Reads the operator table only.
  codes = [root.OperatorCodes(i) for i in range(root.OperatorCodesLength())]
  return [code.CustomCode().decode() for code in codes
          if code.BuiltinCode() == schema.BuiltinOperator.CUSTOM and code.CustomCode()]
