"""SavedModel export of a fine-tuned NerModel that takes raw text and returns entities.

The signature splits each text into words at whitespace (the words of a CoNLL
file are its whitespace-free tokens, so a sentence written as its words joined by
spaces gets exactly the training words; NUL characters are dropped first, as the
tokenizer drops them from every word), tokenizes each word in-graph
(`graph_tokenization.InGraphTokenizer`, or ALBERT's SentencePiece; a word left with
no piece becomes the unknown piece, as `ner_data`), cuts long texts into the windows
of `ner_windows`, and tags every word from its window. Entities are read from the
tags with the conlleval rules of `ner_tags` (the tables `ner_metrics` reads).

Loading needs `import tensorflow_text` first (it registers the tokenizer's ops).
"""

import json

import tensorflow as tf

from modeling.data import ner_tags, ner_windows
from modeling.data.graph_packing import pack_inputs
from modeling.data.graph_tokenization import GRAPH_WHITESPACE, in_graph_tokenizer
from modeling.tasks import serving

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


def _shift(values, is_edge, fill, forward):
  """values [M] moved one place back (forward=True: v[i-1] at i) or ahead, `fill`
  where `is_edge` [M] (the first, or last, word of a text)."""
  padding = tf.fill([1], fill)
  shifted = (tf.concat([padding, values[:-1]], 0) if forward
             else tf.concat([values[1:], padding], 0))
  return tf.where(is_edge, fill, shifted)


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
    parts = [ner_tags.split_tag(label) for label in label_list]
    types = sorted({entity_type for _, entity_type in parts if entity_type})
    self.types = tf.constant(types or [""], tf.string)
    self.label_prefix = tf.constant([ner_tags.PREFIXES.index(p) for p, _ in parts], tf.int32)
    self.label_type = tf.constant([types.index(t) if t else -1 for _, t in parts], tf.int32)
    self.chunk_ends = tf.constant(ner_tags.CHUNK_ENDS)
    self.chunk_starts = tf.constant(ner_tags.CHUNK_STARTS)

  def _word_pieces(self, words):
    """Piece ids of words string [M]: int64 RaggedTensor [M, (pieces)], at least 1 each."""
    pieces = self.tokenizer(words)  # [M, (pieces)]
    empty = tf.cast(pieces.row_lengths() == 0, tf.int64)
    unknown = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(empty)], tf.constant(self.unk_id, tf.int64)), empty)
    return tf.concat([pieces, unknown], axis=1)

  def _entities(self, label, score, words):
    """Entity chunks of the tagged words.

    Args:
      label: int [M] label id of every word of the batch, text after text.
      score: float32 [M] its probability.
      words: RaggedTensor [B, (W)] whose flat values are those M words.

    Returns:
      (row, first, last, type, mean score), [E] each: the text and the flat
      indexes of the first and last word of each entity.
    """
    is_first = tf.equal(tf.range(tf.size(label, tf.int64)),
                        tf.gather(words.row_starts(), words.value_rowids()))
    is_last = tf.equal(tf.range(tf.size(label, tf.int64)) + 1,
                       tf.gather(words.row_limits(), words.value_rowids()))
    prefix = tf.gather(self.label_prefix, label)  # [M] 0 for O
    entity_type = tf.gather(self.label_type, label)  # [M] -1 for O
    previous_prefix = _shift(prefix, is_first, 0, forward=True)
    previous_type = _shift(entity_type, is_first, -1, forward=True)
    next_prefix = _shift(prefix, is_last, 0, forward=False)
    next_type = _shift(entity_type, is_last, -1, forward=False)
    starts = (tf.gather_nd(self.chunk_starts, tf.stack([previous_prefix, prefix], 1))
              | ((entity_type != previous_type) & (prefix != 0)))
    ends = (tf.gather_nd(self.chunk_ends, tf.stack([prefix, next_prefix], 1))
            | ((entity_type != next_type) & (prefix != 0)))
    first = tf.where(starts)[:, 0]  # [E] each chunk has one start and one end, in order.
    last = tf.where(ends)[:, 0]  # [E]
    cumulative = tf.cumsum(score)
    total = tf.gather(cumulative, last) - tf.gather(cumulative, first) + tf.gather(score, first)
    mean_score = total / tf.cast(last - first + 1, tf.float32)
    return (tf.gather(words.value_rowids(), first), first, last,
            tf.gather(entity_type, first), mean_score)

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

    row, first, last, entity_type, entity_score = self._entities(label, score, words)
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
        "entity_type": per_text(tf.gather(self.types, entity_type), ""),
        "entity_start": per_text(tf.gather(char_begin, first), -1),
        "entity_end": per_text(tf.gather(char_end, last), -1),
        "entity_score": per_text(entity_score, 0.0),
        "num_entities": tf.math.bincount(tf.cast(row, tf.int32),
                                         minlength=tf.cast(batch_size, tf.int32),
                                         maxlength=tf.cast(batch_size, tf.int32)),
    }
