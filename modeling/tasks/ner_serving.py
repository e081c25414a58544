"""SavedModel export of a fine-tuned NerModel that takes raw text and returns entities.

The signature splits each text into words at whitespace (the words of a CoNLL
file are its whitespace-free tokens, so a sentence written as its words joined by
spaces gets exactly the training words; NUL characters are dropped first, as the
tokenizer drops them from every word), tokenizes each word in-graph
(`graph_tokenization.InGraphTokenizer`, or ALBERT's SentencePiece; a word left with
no piece becomes the unknown piece, as `ner_data`), cuts long texts into the windows
of `ner_windows`, and tags every word from its window. Entities are read from the
tags with the conlleval rules of `ner_tags` (`ner_chunks`).

Loading needs `import tensorflow_text` first (it registers the tokenizer's ops).
"""

import json

import tensorflow as tf

from modeling.data import ner_windows
from modeling.data.graph_packing import pack_inputs
from modeling.data.graph_tokenization import GRAPH_WHITESPACE, in_graph_tokenizer
from modeling.tasks import serving
from modeling.tasks.ner_chunks import EntityChunks

_WORD_SEPARATORS = GRAPH_WHITESPACE + "+"


def _without_nul(text):
  """Drops the NUL bytes of text string [B] (tensorflow-text's split stops at one).

  Returns:
    (the texts without NUL: string [B], the byte offset in `text` of each byte
    kept: int64 RaggedTensor [B, (kept bytes)]).
  """
  text_bytes = tf.strings.bytes_split(text)  # [B, (n)]
  kept = tf.not_equal(text_bytes, "\x00")  # [B, (n)]
  offsets = tf.ragged.range(text_bytes.row_lengths())  # [B, (n)] int64
  return (tf.strings.reduce_join(tf.ragged.boolean_mask(text_bytes, kept), axis=1),
          tf.ragged.boolean_mask(offsets, kept))


class NerServer(tf.Module):
  """Raw text in, tags and entities with character offsets out."""

  def __init__(self, model, vocab_file, do_lower_case, max_seq_length, stride, label_list,
               spm_model_file=None):
    """Args:
      model: a trained `ner.NerModel`.
      vocab_file, do_lower_case: as the tokenizer the model was trained with.
      spm_model_file: ALBERT's SentencePiece model, used instead of `vocab_file`
        when given (each word tokenized alone, as `ner_data` does).
      max_seq_length: the packed window length S (S - 2 pieces a window).
      stride: pieces between window starts.
      label_list: tag names in label-id order.
    """
    super().__init__()
    self.export_settings = json.dumps(serving.settings(
        "tagger", model, vocab_file, do_lower_case, max_seq_length, label_list, spm_model_file,
        stride=int(stride)))
    # Imported here, as graph_tokenization does: tensorflow-text takes seconds to load.
    import tensorflow_text  # pylint: disable=import-outside-toplevel
    self._split_with_offsets = tensorflow_text.regex_split_with_offsets
    self.tokenizer, vocab, unk = in_graph_tokenizer(vocab_file, do_lower_case, spm_model_file)
    self.model = model
    self.max_seq_length = max_seq_length
    self.stride = stride
    self.cls_id, self.sep_id, self.unk_id = vocab["[CLS]"], vocab["[SEP]"], vocab[unk]
    self.labels = tf.constant(label_list, tf.string)
    self.entities = EntityChunks(label_list)

  def _word_pieces(self, words):
    """Piece ids of words string [M]: int64 RaggedTensor [M, (pieces)], at least 1 each."""
    pieces = self.tokenizer(words)  # [M, (pieces)]
    empty = tf.cast(pieces.row_lengths() == 0, tf.int64)
    unknown = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(empty)], tf.constant(self.unk_id, tf.int64)), empty)
    return tf.concat([pieces, unknown], axis=1)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
  def tag(self, text):
    """Tags and entities of each text.

    Args:
      text: string [B], UTF-8 (invalid bytes are dropped first).

    Returns:
      tags: string [B, W] the tag of each whitespace-separated word ("" padding);
      num_words: int32 [B];
      entity_type: string [B, E] ("" padding);
      entity_start, entity_end: int32 [B, E] character offsets, `text[start:end]`
        (-1 padding);
      entity_score: float32 [B, E] the mean probability of the entity's tags;
      num_entities: int32 [B].
    """
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="ignore",
                                        replace_control_characters=False)
    cleaned, byte_offsets = _without_nul(text)
    words, byte_begin, byte_end = self._split_with_offsets(cleaned, _WORD_SEPARATORS,
                                                           "")  # [B, (W)]
    pieces = self._word_pieces(words.flat_values)  # [M, (pieces)]
    word_lengths = words.with_flat_values(pieces.row_lengths())  # [B, (W)]
    sentence_pieces = tf.RaggedTensor.from_row_lengths(
        pieces.flat_values, tf.reduce_sum(word_lengths, axis=1))  # [B, (n)]
    windows = ner_windows.plan(word_lengths, self.max_seq_length - 2, self.stride)
    input_ids, input_mask, segment_ids = pack_inputs(
        ner_windows.window_pieces(sentence_pieces, windows), None, self.max_seq_length,
        self.cls_id, self.sep_id)  # [N, S] each
    log_probs = self.model.log_probs({"input_ids": input_ids, "input_mask": input_mask,
                                      "segment_ids": segment_ids})  # [N, S, C]
    word_log_probs = tf.gather_nd(log_probs, tf.stack(
        [windows.word_window.flat_values, windows.word_column.flat_values], 1))  # [M, C]
    label = tf.argmax(word_log_probs, axis=-1, output_type=tf.int32)  # [M]
    score = tf.exp(tf.reduce_max(word_log_probs, axis=-1))  # [M]

    index = tf.range(tf.size(label, tf.int64))  # [M]
    first, last, entity_type, entity_score = self.entities(
        label, score, tf.equal(index, tf.gather(words.row_starts(), words.value_rowids())),
        tf.equal(index + 1, tf.gather(words.row_limits(), words.value_rowids())))  # [E] each
    row = tf.gather(words.value_rowids(), first)  # [E]
    texts_of_words = tf.gather(text, words.value_rowids())  # [M]
    row_starts = tf.gather(byte_offsets.row_starts(), words.value_rowids())  # [M]

    def char_offset(cleaned_bytes, after):
      """Characters of `text` before byte [M] of the cleaned text (after it, with `after`)."""
      original = tf.gather(byte_offsets.flat_values, row_starts + cleaned_bytes - after) + after
      return tf.strings.length(tf.strings.substr(texts_of_words, tf.zeros_like(original),
                                                 original), unit="UTF8_CHAR")

    char_begin = char_offset(byte_begin.flat_values, 0)  # [M]
    char_end = char_offset(byte_end.flat_values, 1)  # [M]
    batch_size = tf.shape(text, out_type=tf.int64)[0]

    def per_text(values, padding):
      return tf.RaggedTensor.from_value_rowids(values, row, nrows=batch_size).to_tensor(padding)

    return {
        "tags": words.with_flat_values(tf.gather(self.labels, label)).to_tensor(""),
        "num_words": tf.cast(words.row_lengths(), tf.int32),
        "entity_type": per_text(tf.gather(self.entities.types, entity_type), ""),
        "entity_start": per_text(tf.gather(char_begin, first), -1),
        "entity_end": per_text(tf.gather(char_end, last), -1),
        "entity_score": per_text(entity_score, 0.0),
        "num_entities": tf.math.bincount(tf.cast(row, tf.int32),
                                         minlength=tf.cast(batch_size, tf.int32),
                                         maxlength=tf.cast(batch_size, tf.int32)),
    }
