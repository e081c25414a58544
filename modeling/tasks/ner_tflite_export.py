"""TFLite export of a fine-tuned NerModel that takes raw UTF-8 text and tags its words.

As the NER SavedModel (`ner_serving`): words are split at its whitespace (tab,
newline, carriage return, category Zs, U+2028, U+2029), each word is tokenized
alone (a word left with no piece becomes [UNK], as `ner_data`), long texts are cut
into the overlapping windows of `ner_windows` and each word is tagged from its
window by the same rule. In TFLite-capable ops: tensorflow-text's
whitespace split (`WhitespaceTokenizeWithOffsetsV2`, given the SavedModel's
whitespace), byte split (`ByteSplitWithOffsets`, `ByteSplitByOffsets`: the word
ends and character offsets) and `FastBertTokenizer` (`tflite_export.fast_tokenizer`),
then dense ops only (ragged tensors become their row splits and gathers). Outputs
are dense per-word and per-entity tensors (the entities are the SavedModel's,
`ner_chunks`):

  interpreter = InterpreterWithCustomOps(
      custom_op_registerers=SELECT_TFTEXT_OPS, model_path="ner.tflite")
  outputs = interpreter.get_signature_runner()(text=np.array(["John lives in Paris"]))
  outputs["tags"][0, :outputs["num_words"][0]]  # [b"B-PER", b"O", b"O", b"B-LOC"]

docs/deploy.md lists where this differs from the SavedModel.
"""

import unicodedata

import tensorflow as tf

from modeling.data import ner_windows
from modeling.data.graph_packing import pack_inputs
from modeling.data.tokenization import UNK
from modeling.tasks.ner_chunks import EntityChunks
from modeling.tasks.tflite_export import fast_tokenizer


def whitespace_config():
  """tensorflow-text's whitespace bitmap (bit c%8 of byte c//8 set: code point c splits
  words) of the SavedModel's word separators, `graph_tokenization.GRAPH_WHITESPACE`."""
  last = 0x3000  # The last Zs.
  bitmap = bytearray(last // 8 + 1)
  for code in range(last + 1):
    if chr(code) in "\t\n\r\u2028\u2029" or unicodedata.category(chr(code)) == "Zs":
      bitmap[code // 8] |= 1 << code % 8
  return bytes(bitmap)


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
  """Raw text in, the tag and character offsets of every word and the entities out, in
  TFLite-capable ops."""

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
    # pylint: disable-next=import-outside-toplevel
    from tensorflow_text.python.ops.whitespace_tokenizer import gen_whitespace_tokenizer_v2
    # The op, not `WhitespaceTokenizer`: that one splits at every ICU White_Space.
    self._whitespace_split = gen_whitespace_tokenizer_v2.tf_text_whitespace_tokenize_with_offsets_v2
    self._whitespace = tf.constant(whitespace_config())
    self.bytes = text.ByteSplitter()
    self.tokenizer, vocab = fast_tokenizer(vocab_file, do_lower_case)
    self.model = model
    self.max_seq_length = max_seq_length
    self.stride = stride
    self.cls_id, self.sep_id, self.unk_id = vocab["[CLS]"], vocab["[SEP]"], vocab[UNK]
    # Tag names, then "" for padding (TFLite cannot concatenate strings in the graph).
    self.tag_names = tf.constant(list(label_list) + [""], tf.string)
    self.entities = EntityChunks(label_list)
    self.type_names = tf.concat([self.entities.types, [""]], 0)

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

  def _words(self, text):
    """The whitespace-separated words of text string [B].

    Returns:
      (words: string [M], the words of all texts in order; word_splits: int32
      [B + 1] each text's first word; char_start, char_end: int32 [M] the words'
      character offsets in their text).
    """
    _, word_splits, begin, end = self._whitespace_split(input_values=text,
                                                        input_config=self._whitespace)  # [M]
    word_splits, begin, end = (tf.cast(t, tf.int32) for t in (word_splits, begin, end))
    text_bytes, _, _ = self.bytes.split_with_offsets(text)  # uint8 [B, (n)]
    byte_start = tf.cast(text_bytes.row_splits, tf.int32)  # [B + 1]
    code = tf.cast(text_bytes.flat_values, tf.int32)  # [T]
    continuation = (code >= 0x80) & (code < 0xC0)  # [T] the 10xxxxxx bytes
    num_words_total = tf.size(begin)
    # The text of each word: rows may be empty, so counted, not scattered.
    word_row = tf.reduce_sum(tf.cast(tf.range(num_words_total)[:, None]
                                     >= word_splits[None, 1:-1], tf.int32), axis=1)  # [M]
    first_byte = tf.gather(byte_start, word_row)  # [M]

    def continues(offset):
      """Whether the byte at offset [M] of each word's text is a continuation byte."""
      inside = (offset >= 0) & (offset < tf.gather(byte_start, word_row + 1) - first_byte)
      return _gather_padded(continuation, first_byte + offset, inside, False)

    # The split ends a word before whitespace of L bytes at that whitespace's start
    # plus L - 1: the continuation bytes at the reported end and before it are its own.
    after, before = continues(end), continues(end - 1)
    end -= tf.cast(after, tf.int32) + tf.cast(after & before, tf.int32)
    splits = tf.cast(word_splits, tf.int64)  # The op's type.
    words = self.bytes.split_by_offsets(
        text, tf.RaggedTensor.from_row_splits(begin, splits, validate=False),
        tf.RaggedTensor.from_row_splits(end, splits, validate=False))  # [B, (W)]
    # Characters before each byte: the bytes before it that start a character.
    starts_char = tf.concat([[0], tf.cumsum(1 - tf.cast(continuation, tf.int32))], 0)  # [T + 1]

    def chars(offset):
      return tf.gather(starts_char, first_byte + offset) - tf.gather(starts_char, first_byte)

    return words.flat_values, word_splits, word_row, chars(begin), chars(end)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
  def tag(self, text):
    """The tag of each whitespace-separated word of each text.

    Args:
      text: string [B] (B >= 1), UTF-8.

    Returns:
      tags: string [B, W] ("" padding), W the most words of a text (at least 1);
      tag_ids: int32 [B, W] label ids (-1 padding);
      scores: float32 [B, W] each tag's probability (0 padding);
      word_start, word_end: int32 [B, W] character offsets of each word in its
        text, `text[start:end]` (-1 padding);
      num_words: int32 [B];
      entity_type: string [B, E] ("" padding), E the most entities of a text (at
        least 1), the SavedModel's conlleval chunks (`ner_chunks`);
      entity_start, entity_end: int32 [B, E] character offsets (-1 padding);
      entity_score: float32 [B, E] the mean probability of the entity's tags;
      num_entities: int32 [B].
    """
    words, word_splits, word_row, char_start, char_end = self._words(text)  # [M], [B + 1]
    num_words = word_splits[1:] - word_splits[:-1]  # [B]
    ids, word_start = self._pieces(words)  # [P], [M + 1]
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

    word_index = tf.range(tf.size(label))  # [M]
    first, last, entity_type, entity_score = self.entities(
        label, score, word_index == tf.gather(word_splits, word_row),
        word_index + 1 == tf.gather(word_splits, word_row + 1))  # [E] each
    first, last = tf.cast(first, tf.int32), tf.cast(last, tf.int32)
    # Entities per text, counted against a sentinel row (no op on an empty tensor).
    entity_row = tf.concat([tf.gather(word_row, first), [-1]], 0)  # [E + 1]
    num_entities = tf.reduce_sum(tf.cast(
        entity_row[None, :] == tf.range(tf.size(num_words))[:, None], tf.int32), axis=1)  # [B]
    entity_splits = tf.concat([[0], tf.cumsum(num_entities)], 0)  # [B + 1]

    def per_text(values, splits, counts, padding):
      """values [K] of the texts in order -> [B, K_max] (K_max at least 1: the
      interpreter cannot read an empty output), `padding` after each text's own."""
      slot = tf.range(tf.maximum(tf.reduce_max(counts), 1))[None, :]  # [1, K]
      return _gather_padded(values, splits[:-1, None] + slot, slot < counts[:, None], padding)

    def per_word(values, padding):
      return per_text(values, word_splits, num_words, padding)

    def per_entity(values, padding):
      return per_text(values, entity_splits, num_entities, padding)

    return {
        "tags": tf.gather(self.tag_names, per_word(label, tf.size(self.tag_names) - 1)),
        "tag_ids": per_word(label, -1),
        "scores": per_word(score, 0.0),
        "word_start": per_word(char_start, -1),
        "word_end": per_word(char_end, -1),
        "num_words": num_words,
        "entity_type": tf.gather(self.type_names,
                                 per_entity(entity_type, tf.size(self.type_names) - 1)),
        "entity_start": per_entity(tf.gather(char_start, first), -1),
        "entity_end": per_entity(tf.gather(char_end, last), -1),
        "entity_score": per_entity(entity_score, 0.0),
        "num_entities": num_entities,
    }
