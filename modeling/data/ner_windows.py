"""Overlapping windows over long sentences, and the one window each word is predicted from.

One rule, in TensorFlow ops, for the training data (run eagerly) and the serving
graph, so both cut sentences the same way:

- a sentence of n word pieces gets windows of up to L pieces starting at 0,
  stride, 2 * stride, ... until a window reaches its end (one window if n <= L;
  a window never starts past n - L + stride - 1, so no piece is left out);
- a word is predicted from the window where its first piece has the most
  context on its poorer side, min(pieces before it, pieces after it) inside the
  window, the earlier window on ties (as SQuAD's "max context" rule, without
  its length bonus).

Shape legend: B sentences, W words of a sentence, N windows of the batch.
"""

import collections

import tensorflow as tf

# More windows than any sentence has: the tie-breaking key is context * this - window.
_MAX_WINDOWS = 1 << 20

Windows = collections.namedtuple(
    "Windows", ["row", "start", "length", "first_piece", "word_window", "word_column"])
Windows.__doc__ = """The windows of a batch of sentences.

Attributes:
  row: int64 [N] the sentence of each window.
  start: int64 [N] the window's first piece in its sentence.
  length: int64 [N] its number of pieces (at most L).
  first_piece: int64 RaggedTensor [B, (W)] each word's first piece in its sentence.
  word_window: int64 RaggedTensor [B, (W)] the window (index into N) each word is
    predicted from.
  word_column: int64 RaggedTensor [B, (W)] the word's first piece's position in
    that window's packed sequence (1 + offset: [CLS] comes first).
"""


def plan(word_lengths, window_length, stride):
  """The windows of sentences given each word's number of pieces.

  Args:
    word_lengths: int64 RaggedTensor [B, (W)], pieces of each word (at least 1).
    window_length: L, the most pieces a window holds (max_seq_length - 2).
    stride: pieces between window starts, 1 <= stride <= L.

  Returns:
    `Windows`.
  """
  window_length = tf.constant(window_length, tf.int64)
  stride = tf.constant(stride, tf.int64)
  num_pieces = tf.reduce_sum(word_lengths, axis=1)  # [B]
  num_windows = 1 + (tf.maximum(num_pieces - window_length, 0) + stride - 1) // stride  # [B]
  first_window = tf.cumsum(num_windows, exclusive=True)  # [B]
  row = tf.repeat(tf.range(tf.size(num_pieces, tf.int64), dtype=tf.int64), num_windows)  # [N]
  start = tf.ragged.range(num_windows).flat_values * stride  # [N]
  length = tf.minimum(window_length, tf.gather(num_pieces, row) - start)  # [N]

  # Each word's first piece: the pieces of the words before it in its sentence.
  first_piece = word_lengths.with_flat_values(
      tf.cumsum(word_lengths.flat_values, exclusive=True)
      - tf.gather(tf.cumsum(num_pieces, exclusive=True), word_lengths.value_rowids()))
  # Every (word, window of its sentence) pair, flat: M pairs.
  word_rows = word_lengths.value_rowids()  # [words]
  candidates = tf.ragged.range(tf.gather(num_windows, word_rows))  # [words, (k)]
  pair_word = candidates.value_rowids()  # [M]
  window = candidates.flat_values  # [M] window index within the sentence
  position = tf.gather(first_piece.flat_values, pair_word)  # [M]
  window_start = window * stride  # [M]
  window_end = tf.minimum(window_start + window_length,
                          tf.gather(num_pieces, tf.gather(word_rows, pair_word)))  # [M]
  inside = (window_start <= position) & (position < window_end)
  context = tf.minimum(position - window_start, window_end - 1 - position)
  key = tf.where(inside, context * _MAX_WINDOWS + (_MAX_WINDOWS - 1 - window), -1)  # [M]
  best_key = tf.reduce_max(candidates.with_flat_values(key), axis=1)  # [words]
  best = _MAX_WINDOWS - 1 - best_key % _MAX_WINDOWS  # [words]
  word_window = tf.gather(first_window, word_rows) + best
  word_column = 1 + first_piece.flat_values - best * stride
  return Windows(row, start, length, first_piece, first_piece.with_flat_values(word_window),
                 first_piece.with_flat_values(word_column))


def window_pieces(piece_ids, windows):
  """The pieces of each window.

  Args:
    piece_ids: int64 RaggedTensor [B, (n)], the word pieces of each sentence.
    windows: the sentences' `Windows`.

  Returns:
    int64 RaggedTensor [N, (length)].
  """
  sentence_offset = tf.gather(piece_ids.row_starts(), windows.row)  # [N]
  positions = tf.ragged.range(windows.start, windows.start + windows.length)  # [N, (length)]
  return positions.with_flat_values(tf.gather(
      piece_ids.flat_values, positions.flat_values
      + tf.gather(sentence_offset, positions.value_rowids())))
