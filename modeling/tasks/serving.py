"""SavedModel export of a fine-tuned classifier that takes raw text.

The serving signature tokenizes in-graph (`graph_tokenization.InGraphTokenizer`, or
for ALBERT `InGraphSentencePieceTokenizer`, on tensorflow-text) and packs the word
pieces exactly as `classifier_data.convert_example` does: `[CLS] a [SEP]` or
`[CLS] a [SEP] b [SEP]`, the longer segment truncated first, padded to `max_seq_length`.

Loading needs `import tensorflow_text` first (it registers the tokenizer's ops).
"""

import os

import tensorflow as tf

from modeling.data import files, length_buckets
from modeling.data.graph_tokenization import InGraphSentencePieceTokenizer, InGraphTokenizer
from modeling.data.sentencepiece_tokenization import SentencePieceTokenizer
from modeling.data.tokenization import UNK, load_vocab

SAVED_MODEL_FILE = "saved_model.pb"


def in_graph_tokenizer(vocab_file, do_lower_case, spm_model_file=None):
  """The in-graph tokenizer of the scripts' flags, and its vocabulary.

  Returns:
    (tokenizer: string [...] -> int64 RaggedTensor [..., (pieces)], {piece: id},
    the unknown piece): WordPiece of `vocab_file` ("[UNK]"), or with
    `spm_model_file` ALBERT's SentencePiece (its own unknown piece, e.g. "<unk>").
  """
  if spm_model_file:
    python_tokenizer = SentencePieceTokenizer(spm_model_file, do_lower_case)
    return (InGraphSentencePieceTokenizer(spm_model_file, do_lower_case),
            python_tokenizer.vocab, python_tokenizer.unk_token)
  return InGraphTokenizer(vocab_file, do_lower_case), load_vocab(vocab_file), UNK


def pack_inputs(ids_a, ids_b, max_seq_length, cls_id, sep_id, buckets=None):
  """Builds model inputs from word-piece ids, as the original `convert_single_example`.

  Args:
    ids_a: int64 RaggedTensor [B, (n)], first segment.
    ids_b: int64 RaggedTensor [B, (m)] second segment, or None. A row with no
      pieces is a single-segment row (as the original's `if tokens_b:`).
    max_seq_length: int, the padded length S.
    cls_id, sep_id: ids of [CLS] and [SEP].
    buckets: `length_buckets.parse_buckets` lengths: the batch is padded to the
      smallest that holds its longest row instead of `max_seq_length`.

  Returns:
    int32 [B, S] input_ids, input_mask, segment_ids (S the bucket's length with
    `buckets`).
  """
  length_a = ids_a.row_lengths()  # [B]
  if ids_b is None:
    ids_b = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int64),
                                             tf.zeros_like(length_a))
  length_b = ids_b.row_lengths()  # [B]
  has_b = tf.cast(length_b > 0, tf.int64)  # [B]
  budget = max_seq_length - 2 - has_b  # [B] pieces left after [CLS], [SEP]s
  # Popping one piece at a time from the longer segment (b on ties) keeps this many:
  keep_b = tf.minimum(length_b, tf.maximum(budget - length_a, budget // 2))
  keep_a = tf.minimum(length_a, budget - keep_b)

  def head(ids, keep):
    return tf.ragged.boolean_mask(ids, tf.ragged.range(ids.row_lengths()) < keep[:, None])

  def constant(value, counts):
    return tf.RaggedTensor.from_row_lengths(tf.fill([tf.reduce_sum(counts)], value), counts)

  ones = tf.ones_like(length_a)
  pieces = [constant(tf.constant(cls_id, tf.int64), ones), head(ids_a, keep_a),
            constant(tf.constant(sep_id, tf.int64), ones), head(ids_b, keep_b),
            constant(tf.constant(sep_id, tf.int64), has_b)]
  segments = [tf.zeros_like(p) if i < 3 else tf.ones_like(p) for i, p in enumerate(pieces)]
  packed = tf.concat(pieces, axis=1)
  shape = [None, max_seq_length]
  if buckets is not None:
    longest = tf.reduce_max(tf.concat([packed.row_lengths(), [0]], 0))
    shape = tf.stack([packed.nrows(), length_buckets.bucket_length(longest, buckets)])
  input_ids = packed.to_tensor(0, shape=shape)  # [B, S]
  segment_ids = tf.concat(segments, axis=1).to_tensor(0, shape=shape)  # [B, S]
  input_mask = tf.ones_like(packed).to_tensor(0, shape=shape)  # [B, S]
  return (tf.cast(input_ids, tf.int32), tf.cast(input_mask, tf.int32),
          tf.cast(segment_ids, tf.int32))


class ClassifierServer(tf.Module):
  """Raw text in, class probabilities (or regression values) out."""

  def __init__(self, model, vocab_file, do_lower_case, max_seq_length, label_list,
               spm_model_file=None, buckets=None):
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
    """
    super().__init__()
    self.tokenizer, vocab, _ = in_graph_tokenizer(vocab_file, do_lower_case, spm_model_file)
    self.model = model
    self.max_seq_length = max_seq_length
    self.buckets = None if buckets is None else tuple(buckets)
    self.cls_id, self.sep_id = vocab["[CLS]"], vocab["[SEP]"]
    self.labels = tf.constant(label_list or [], tf.string)

  def _predict(self, text_a, text_b):
    ids_b = self.tokenizer(text_b) if text_b is not None else None
    input_ids, input_mask, segment_ids = pack_inputs(
        self.tokenizer(text_a), ids_b, self.max_seq_length, self.cls_id, self.sep_id,
        self.buckets)
    batch = {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids,
             "label_ids": tf.zeros_like(input_ids[:, 0])}
    _, predictions = self.model.outputs(batch, training=False)
    if self.model.is_regression:
      return {"predictions": predictions}
    return {"probabilities": predictions,
            "label": tf.gather(self.labels, tf.argmax(predictions, axis=-1))}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text_a")])
  def classify(self, text_a):
    """text_a: string [B] -> probabilities float32 [B, C] and label string [B]."""
    return self._predict(text_a, None)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text_a"),
                                tf.TensorSpec([None], tf.string, name="text_b")])
  def classify_pair(self, text_a, text_b):
    """text_a, text_b: string [B] -> probabilities float32 [B, C] and label string [B]."""
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
  """`tf.saved_model.save` next to `export_dir`, then renamed into place (atomic)."""
  export_dir = os.fspath(export_dir).rstrip("/")
  with files.atomic_directory(export_dir, SAVED_MODEL_FILE, "--export_dir") as temp_dir:
    tf.saved_model.save(server, temp_dir, signatures=signatures)
  return export_dir
