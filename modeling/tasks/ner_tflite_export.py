"""TFLite export of a fine-tuned NerModel that takes raw UTF-8 text and tags its words.

As the NER SavedModel (`ner_serving`): words are split at whitespace, each word is
tokenized alone (a word left with no piece becomes [UNK], as `ner_data`), long
texts are cut into the overlapping windows of `ner_windows` and each word is
tagged from its window by the same rule. In TFLite-capable ops: tensorflow-text's
`WhitespaceTokenizer` (the split, with byte offsets) and `FastBertTokenizer`
(`tflite_export.fast_tokenizer`), then dense ops only (ragged tensors become
their row splits and gathers). Outputs are dense per-word tensors; the entities
are left to the caller (`ner_metrics.entities` reads them from the tags):

  interpreter = InterpreterWithCustomOps(
      custom_op_registerers=SELECT_TFTEXT_OPS, model_path="ner.tflite")
  outputs = interpreter.get_signature_runner()(text=np.array(["John lives in Paris"]))
  outputs["tags"][0, :outputs["num_words"][0]]  # [b"B-PER", b"O", b"O", b"B-LOC"]

docs/deploy.md lists where this differs from the SavedModel.
"""

import tensorflow as tf

from modeling.data import ner_windows
from modeling.data.graph_packing import pack_inputs
from modeling.data.tokenization import UNK
from modeling.tasks.tflite_export import fast_tokenizer


def _owners(starts, size):
  """Which of the consecutive non-empty ranges starting at starts int32 [R] (the first
  at 0, strictly increasing) holds each of `size` positions: int32 [size]."""
  # One place more: TFLite's ScatterNd crashes (SIGFPE) on an empty output.
  marks = tf.scatter_nd(starts[1:, None], tf.ones_like(starts[1:]), [size + 1])
  return tf.cumsum(marks)[:size]


def _gather_padded(values, index, valid, padding):
  """values [K] at index [...] where valid [...], else `padding` (values may be empty)."""
  values = tf.concat([values, tf.fill([1], tf.cast(padding, values.dtype))], 0)
  return tf.gather(values, tf.where(valid, index, tf.size(values) - 1))


class TfliteTagger(tf.Module):
  """Raw text in, the tag and byte offsets of every word out, in TFLite-capable ops."""

  # The `tf.function`s `tflite_export.convert` writes: one, so TFLite names it
  # "serving_default".
  SIGNATURES = ("tag",)

  def __init__(self, model, vocab_file, do_lower_case, max_seq_length, stride, label_list):
    """Args:
      model: a trained `ner.NerModel`.
      vocab_file, do_lower_case: as the tokenizer the model was trained with.
      max_seq_length: the packed window length S (S - 2 pieces a window).
      stride: pieces between window starts.
      label_list: tag names in label-id order.
    """
    super().__init__()
    # Imported here: tensorflow-text takes seconds to load, and only the export uses it.
    import tensorflow_text as text  # pylint: disable=import-outside-toplevel
    self.whitespace = text.WhitespaceTokenizer()
    self.tokenizer, vocab = fast_tokenizer(vocab_file, do_lower_case)
    self.model = model
    self.max_seq_length = max_seq_length
    self.stride = stride
    self.cls_id, self.sep_id, self.unk_id = vocab["[CLS]"], vocab["[SEP]"], vocab[UNK]
    # Tag names, then "" for padding (TFLite cannot concatenate strings in the graph).
    self.tag_names = tf.constant(list(label_list) + [""], tf.string)

  def _pieces(self, words):
    """Piece ids of words string [M] (at least one each, [UNK] for none), flat.

    Returns:
      (ids: int32 [P], word_start: int32 [M + 1] each word's first index in `ids`,
      then P).
    """
    pieces = self.tokenizer.tokenize(words)  # [M, (pieces)]
    splits = tf.cast(pieces.row_splits, tf.int32)  # [M + 1]
    found = splits[1:] - splits[:-1]  # [M]
    counts = tf.maximum(found, 1)
    word_start = tf.concat([[0], tf.cumsum(counts)], 0)  # [M + 1]
    word = _owners(word_start[:-1], word_start[-1])  # [P]
    within = tf.range(word_start[-1]) - tf.gather(word_start, word)  # [P]
    ids = _gather_padded(pieces.flat_values, tf.gather(splits, word) + within,
                         within < tf.gather(found, word), self.unk_id)
    return ids, word_start

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
  def tag(self, text):
    """The tag of each whitespace-separated word of each text.

    Args:
      text: string [B] (B >= 1), UTF-8.

    Returns:
      tags: string [B, W] ("" padding), W the most words of a text (at least 1);
      tag_ids: int32 [B, W] label ids (-1 padding);
      scores: float32 [B, W] each tag's probability (0 padding);
      word_start, word_end: int32 [B, W] byte offsets of each word in its text,
        `text.encode()[start:end]` (-1 padding);
      num_words: int32 [B].
    """
    words, begin, end = self.whitespace.tokenize_with_offsets(text)  # [B, (W)]
    word_splits = tf.cast(words.row_splits, tf.int32)  # [B + 1]
    num_words = word_splits[1:] - word_splits[:-1]  # [B]
    ids, word_start = self._pieces(words.flat_values)  # [P], [M + 1]
    num_words_total = tf.size(words.flat_values)
    # The text of each word: rows may be empty, so counted, not scattered.
    word_row = tf.reduce_sum(tf.cast(tf.range(num_words_total)[:, None]
                                     >= word_splits[None, 1:-1], tf.int32), axis=1)  # [M]
    text_start = tf.gather(word_start, word_splits)  # [B + 1] each text's first piece
    num_pieces = text_start[1:] - text_start[:-1]  # [B]

    # The windows, text after text, as `ner_windows.plan` cuts them: N in all.
    window_length = self.max_seq_length - 2
    num_windows = ner_windows.num_windows_of(num_pieces, window_length, self.stride)  # [B]
    first_window = tf.concat([[0], tf.cumsum(num_windows)], 0)  # [B + 1]
    window_row = _owners(first_window[:-1], first_window[-1])  # [N]
    window_start = (tf.range(first_window[-1]) - tf.gather(first_window, window_row)) * self.stride
    position = window_start[:, None] + tf.range(window_length)[None, :]  # [N, L] in the text
    inside = position < tf.gather(num_pieces, window_row)[:, None]  # [N, L]
    window_ids = _gather_padded(ids, tf.gather(text_start, window_row)[:, None] + position,
                                inside, 0)  # [N, L]
    # `inside` is a prefix of each row, so the masked ids are the windows' pieces in order.
    window_pieces = tf.RaggedTensor.from_row_lengths(
        tf.boolean_mask(window_ids, inside), tf.reduce_sum(tf.cast(inside, tf.int32), axis=1),
        validate=False)  # [N, (length)]
    input_ids, input_mask, segment_ids = pack_inputs(
        window_pieces, None, self.max_seq_length, self.cls_id, self.sep_id)  # [N, S] each
    log_probs = self.model.log_probs({"input_ids": input_ids, "input_mask": input_mask,
                                      "segment_ids": segment_ids})  # [N, S, C]

    first_piece = word_start[:-1] - tf.gather(text_start, word_row)  # [M]
    window, column = ner_windows.best_windows(first_piece, tf.gather(num_pieces, word_row),
                                              window_length, self.stride)  # [M] each
    word_log_probs = tf.gather_nd(log_probs, tf.stack(
        [tf.gather(first_window, word_row) + window, column], 1))  # [M, C]
    label = tf.argmax(word_log_probs, axis=-1, output_type=tf.int32)  # [M]
    score = tf.exp(tf.reduce_max(word_log_probs, axis=-1))  # [M]

    # Per text: [B, W], W at least 1 (the interpreter cannot read an empty output).
    slot = tf.range(tf.maximum(tf.reduce_max(num_words), 1))[None, :]  # [1, W]
    index = word_splits[:-1, None] + slot  # [B, W]
    valid = slot < num_words[:, None]

    def per_word(values, padding):
      return _gather_padded(values, index, valid, padding)

    return {
        "tags": tf.gather(self.tag_names, per_word(label, tf.size(self.tag_names) - 1)),
        "tag_ids": per_word(label, -1),
        "scores": per_word(score, 0.0),
        "word_start": per_word(tf.cast(begin.flat_values, tf.int32), -1),
        "word_end": per_word(tf.cast(end.flat_values, tf.int32), -1),
        "num_words": num_words,
    }
