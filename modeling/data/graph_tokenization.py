"""Tokenizers in TensorFlow ops (tensorflow-text), for tf.data and SavedModels.

`InGraphTokenizer` is `tokenization.FullTokenizer` (WordPiece);
`InGraphSentencePieceTokenizer` is `sentencepiece_tokenization.SentencePieceTokenizer`
(ALBERT); `in_graph_tokenizer` picks one as the scripts' flags do. README.md lists
where each differs from its Python counterpart.
"""

import unicodedata

import tensorflow as tf

from modeling.data import sentencepiece_tokenization
from modeling.data.tokenization import CJK_RANGES, MAX_INPUT_CHARS_PER_WORD, UNK, load_vocab

# Cleaning, as `tokenization._CleaningTable`, in RE2 syntax. Python's `str.split`, which
# the original uses, also splits on U+2028 and U+2029, so they count as whitespace.
GRAPH_WHITESPACE = r"[\t\n\r\p{Zs}\x{2028}\x{2029}]"
_GRAPH_DROPPED = r"[\p{Cc}\p{Cf}\x{FFFD}]"
# Words are split at spaces (dropped) and around punctuation and CJK ideographs (kept).
_GRAPH_KEPT_DELIMITERS = "[!-/:-@\\[-`{-~\\p{P}%s]" % "".join(
    r"\x{%X}-\x{%X}" % bounds for bounds in CJK_RANGES)
_GRAPH_DELIMITERS = f" +|{_GRAPH_KEPT_DELIMITERS}"


class InGraphTokenizer(tf.Module):
  """`FullTokenizer` in TensorFlow ops (tensorflow-text), for tf.data and SavedModels.

  `tokenizer(strings)` maps a string tensor of any shape [...] (UTF-8) to an int64
  RaggedTensor [..., (pieces)] of word-piece ids. It runs the original's steps as
  graph ops: invalid UTF-8 dropped, cleaning, then (with `do_lower_case`)
  `tf.strings.lower`, NFD and removal of category Mn, then a split at spaces and
  around punctuation and CJK ideographs (`tensorflow_text.regex_split`), then "[UNK]"
  for words over 200 characters, then WordPiece. README.md lists the remaining
  differences from `FullTokenizer`. A SavedModel holding it needs
  `import tensorflow_text` before `tf.saved_model.load`, to register its ops.

  Attributes:
    vocab_table: the tf.lookup table {token: id}.
    do_lower_case: whether text is lower-cased and stripped of accents.
  """

  def __init__(self, vocab_file, do_lower_case=True):
    super().__init__()
    # Imported here: tensorflow-text takes seconds to load, and only this class uses it.
    import tensorflow_text as text  # pylint: disable=import-outside-toplevel
    vocab = load_vocab(vocab_file)
    if UNK not in vocab:
      raise ValueError(f"vocab_file {vocab_file} has no {UNK} token")
    self.do_lower_case = do_lower_case
    self.vocab_table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(vocab), tf.string), tf.constant(list(vocab.values()), tf.int64)),
        default_value=-1)
    self._text = text
    # Words are limited in characters below, so the byte limit must never bite.
    self._wordpiece = text.WordpieceTokenizer(
        self.vocab_table, max_bytes_per_word=4 * MAX_INPUT_CHARS_PER_WORD,
        token_out_type=tf.int64, unknown_token=UNK)

  def normalize(self, strings):
    """Cleans, and with `do_lower_case` lower-cases and strips accents: string [...]."""
    strings = tf.strings.unicode_transcode(strings, "UTF-8", "UTF-8", errors="ignore",
                                           replace_control_characters=False)
    strings = tf.strings.regex_replace(strings, GRAPH_WHITESPACE, " ")
    strings = tf.strings.regex_replace(strings, _GRAPH_DROPPED, "")
    if self.do_lower_case:
      strings = tf.strings.lower(strings, encoding="utf-8")
      strings = self._text.normalize_utf8(strings, "NFD")
      strings = tf.strings.regex_replace(strings, r"\p{Mn}", "")
    return strings

  def words(self, strings):
    """The basic tokens of string [...] as a string RaggedTensor [..., (words)]."""
    words = self._text.regex_split(self.normalize(strings), _GRAPH_DELIMITERS,
                                   _GRAPH_KEPT_DELIMITERS)
    lengths = tf.strings.length(words.flat_values, unit="UTF8_CHAR")
    too_long = lengths > MAX_INPUT_CHARS_PER_WORD
    return words.with_flat_values(tf.where(too_long, UNK, words.flat_values))

  def word_pieces(self, strings):
    """Word-piece ids of string [...] by word: int64 RaggedTensor [..., (words), (pieces)]."""
    return self._wordpiece.tokenize(self.words(tf.convert_to_tensor(strings, tf.string)))

  def __call__(self, strings):
    """Word-piece ids of string [...] as an int64 RaggedTensor [..., (pieces)]."""
    return self.word_pieces(strings).merge_dims(-2, -1)  # [..., (w), (p)] -> [..., (pieces)]


def _combining_class_pattern():
  """An RE2 class of the characters `unicodedata.combining` gives a non-zero class,
  the characters ALBERT's `preprocess_text` drops after NFKD."""
  ranges, start = [], None
  for cp in range(0x110000 + 1):
    combining = cp < 0x110000 and unicodedata.combining(chr(cp)) != 0
    if combining and start is None:
      start = cp
    elif not combining and start is not None:
      ranges.append(r"\x{%X}-\x{%X}" % (start, cp - 1))
      start = None
  return "[" + "".join(ranges) + "]"


# Python's `str.split` whitespace (which ALBERT's preprocess_text collapses), in RE2.
_PYTHON_WHITESPACE = r"[\t\n\x{0B}\f\r\x{1C}-\x{1F}\x{85}\p{Z}]+"


class InGraphSentencePieceTokenizer(tf.Module):
  """`sentencepiece_tokenization.SentencePieceTokenizer` in TensorFlow ops.

  `tokenizer(strings)` maps a string tensor [...] to int64 RaggedTensor
  [..., (pieces)] of piece ids: ALBERT's `preprocess_text` (whitespace collapsed,
  NFKD, combining characters dropped, `tf.strings.lower` with `do_lower_case`),
  then tensorflow-text's `SentencepieceTokenizer` on the same model, then ALBERT's
  re-encoding of pieces that end in a digit and a comma. README.md lists where it
  can differ from the Python tokenizer. A SavedModel holding it needs
  `import tensorflow_text` before `tf.saved_model.load`.
  """

  def __init__(self, spm_model_file, do_lower_case=True):
    super().__init__()
    import tensorflow_text as text  # pylint: disable=import-outside-toplevel
    self.do_lower_case = do_lower_case
    self._text = text
    self._sentencepiece = text.SentencepieceTokenizer(
        model=sentencepiece_tokenization.model_proto(spm_model_file), out_type=tf.string)
    self._combining = _combining_class_pattern()

  def vocab_id(self, piece):
    """The id of one piece (e.g. "[CLS]"), an int64 scalar."""
    return tf.cast(self._sentencepiece.string_to_id(piece), tf.int64)

  def normalize(self, strings):
    """ALBERT's `preprocess_text` of string [...]."""
    strings = tf.strings.unicode_transcode(strings, "UTF-8", "UTF-8", errors="ignore",
                                           replace_control_characters=False)
    strings = tf.strings.strip(tf.strings.regex_replace(strings, _PYTHON_WHITESPACE, " "))
    strings = self._text.normalize_utf8(strings, "NFKD")
    strings = tf.strings.regex_replace(strings, self._combining, "")
    if self.do_lower_case:
      strings = tf.strings.lower(strings, encoding="utf-8")
    return strings

  def pieces(self, strings):
    """The pieces of string [...] as a string RaggedTensor [..., (pieces)]."""
    pieces = self._sentencepiece.tokenize(self.normalize(strings))  # [..., (p)]
    flat = pieces.flat_values  # [P]
    # "▁1999," -> "▁1999", ","; see `SentencePieceTokenizer.encode_pieces`.
    split = tf.strings.regex_full_match(flat, r".*\p{Nd},")  # [P]
    number = tf.strings.regex_replace(tf.strings.regex_replace(flat, ",$", ""),
                                      sentencepiece_tokenization.PIECE_PREFIX, "")
    number = self._sentencepiece.tokenize(tf.where(split, number, ""))  # [P, (q)]
    comma = tf.RaggedTensor.from_row_lengths(tf.fill(tf.shape(flat), ","),
                                             tf.ones_like(flat, tf.int64))  # [P, (1)]
    whole = tf.RaggedTensor.from_row_lengths(flat, tf.ones_like(flat, tf.int64))  # [P, (1)]
    keep = lambda rows, mask: tf.ragged.boolean_mask(  # noqa: E731
        rows, tf.ones_like(rows, tf.bool) & mask[:, tf.newaxis])
    replaced = tf.concat([keep(number, split), keep(comma, split), keep(whole, ~split)],
                         axis=1)  # [P, (r)]
    return pieces.with_flat_values(replaced).merge_dims(-2, -1)  # [..., (pieces)]

  def __call__(self, strings):
    """Piece ids of string [...] as an int64 RaggedTensor [..., (pieces)]."""
    pieces = self.pieces(tf.convert_to_tensor(strings, tf.string))
    return tf.cast(self._sentencepiece.string_to_id(pieces), tf.int64)


def in_graph_tokenizer(vocab_file, do_lower_case, spm_model_file=None):
  """The in-graph tokenizer of the scripts' flags, and its vocabulary.

  Returns:
    (tokenizer: string [...] -> int64 RaggedTensor [..., (pieces)], {piece: id},
    the unknown piece): WordPiece of `vocab_file` ("[UNK]"), or with
    `spm_model_file` ALBERT's SentencePiece (its own unknown piece, e.g. "<unk>").
  """
  if spm_model_file:
    python_tokenizer = sentencepiece_tokenization.SentencePieceTokenizer(spm_model_file,
                                                                         do_lower_case)
    return (InGraphSentencePieceTokenizer(spm_model_file, do_lower_case),
            python_tokenizer.vocab, python_tokenizer.unk_token)
  return InGraphTokenizer(vocab_file, do_lower_case), load_vocab(vocab_file), UNK
