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


def _context_key(position, window, num_pieces, window_length, stride):
  """The key that ranks the windows of a word (the largest wins), -1 where the window
  does not hold its first piece.

  Args (broadcast together, one integer dtype): position, the word's first piece in
  its sentence; window, a window index of that sentence; num_pieces, the sentence's
  pieces; window_length L; stride.
  """
  window_start = window * stride
  window_end = tf.minimum(window_start + window_length, num_pieces)
  inside = (window_start <= position) & (position < window_end)
  context = tf.minimum(position - window_start, window_end - 1 - position)
  return tf.where(inside, context * _MAX_WINDOWS + (_MAX_WINDOWS - 1 - window), -1)


def _best_window(best_key):
  """The window index that the largest `_context_key` names."""
  return _MAX_WINDOWS - 1 - best_key % _MAX_WINDOWS


def num_windows_of(num_pieces, window_length, stride):
  """Windows of sentences of num_pieces [B] pieces: [B], at least 1 (an empty sentence
  gets one empty window)."""
  return 1 + (tf.maximum(num_pieces - window_length, 0) + stride - 1) // stride


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
  num_windows = num_windows_of(num_pieces, window_length, stride)  # [B]
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
  key = _context_key(position, window, tf.gather(num_pieces, tf.gather(word_rows, pair_word)),
                     window_length, stride)  # [M]
  best = _best_window(tf.reduce_max(candidates.with_flat_values(key), axis=1))  # [words]
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


def best_windows(first_piece, num_pieces, window_length, stride):
  """`plan`'s window of each word, in dense ops only (TFLite builtins).

  Only the windows that can hold a word's first piece are scored: at most
  ceil(L / stride) of them, from the first whose end passes it.

  Args:
    first_piece: int32 [M] each word's first piece in its sentence.
    num_pieces: int32 [M] the pieces of the word's sentence.
    window_length: L, as `plan`.
    stride: as `plan`.

  Returns:
    (window: int32 [M] the word's window among its sentence's,
     column: int32 [M] its first piece's position in that window's packed sequence).
  """
  num_windows = num_windows_of(num_pieces, window_length, stride)[:, None]  # [M, 1]
  lowest = tf.maximum((first_piece - window_length + stride) // stride, 0)  # [M]
  window = lowest[:, None] + tf.range((window_length + stride - 1) // stride)[None, :]  # [M, J]
  key = tf.where(window < num_windows,
                 _context_key(first_piece[:, None], window, num_pieces[:, None],
                              window_length, stride), -1)  # [M, J]
  best = _best_window(tf.reduce_max(key, axis=1))  # [M]
  return best, 1 + first_piece - best * stride
