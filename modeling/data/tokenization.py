"""WordPiece tokenization as in the original BERT.

`FullTokenizer` gives exactly the tokens of the original `tokenization.FullTokenizer`
(BasicTokenizer, then WordpieceTokenizer) for any Unicode text:

- text is cleaned: U+0000, U+FFFD and control characters (categories Cc and Cf,
  except tab, newline and carriage return) are dropped, and whitespace (space, tab,
  newline, carriage return, category Zs) becomes a space;
- every CJK Unified Ideograph is made a word of its own;
- with `do_lower_case`, each word is lower-cased (`str.lower`) and its accents are
  stripped (NFD, then category Mn dropped);
- words are split around punctuation: every non-letter, non-digit printable ASCII
  character and every character of a Unicode category P*;
- each word is split greedily, longest match first, into vocabulary pieces, later
  pieces prefixed with "##"; a word of more than 200 characters, or one that cannot be
  split, becomes "[UNK]";
- with `preserve_unused_tokens` (bert-tensorflow 1.0.4), a cleaned word that is a
  vocabulary entry of the form "[unusedN]" is kept whole: not lower-cased, not split.

It is fast on large corpora: cleaning is one `str.translate` through a lazily filled
per-character table, and the pieces of each whitespace-separated word are cached.

This module does not import TensorFlow (create_pretraining_data starts faster
without it). `graph_tokenization.InGraphTokenizer` does the same in TensorFlow ops.
"""

import collections
import functools
import re
import unicodedata

from modeling.data import files

UNK = "[UNK]"
_UNUSED_TOKEN_RE = re.compile(r"^\[unused\d+\]$")
MAX_INPUT_CHARS_PER_WORD = 200
_WORD_CACHE_SIZE = 1 << 16

# Checkpoint directory names of Google's released models, by casing.
_LOWER_CASED_MODELS = ("uncased_L-24_H-1024_A-16", "uncased_L-12_H-768_A-12",
                       "multilingual_L-12_H-768_A-12", "chinese_L-12_H-768_A-12")
_CASED_MODELS = ("cased_L-12_H-768_A-12", "cased_L-24_H-1024_A-16",
                 "multi_cased_L-12_H-768_A-12")

# CJK Unified Ideographs blocks, as the original defines "Chinese characters"
# (Hangul, Hiragana and Katakana are not among them).
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def validate_case_matches_checkpoint(do_lower_case, init_checkpoint):
  """Checks `do_lower_case` against the casing of a known Google checkpoint.

  As the original, this recognises the released models by the directory name in
  `init_checkpoint` (".../uncased_L-12_H-768_A-12/bert_model.ckpt") and does nothing
  for any other path.

  Raises:
    ValueError: the flag contradicts the casing of the named model.
  """
  if not init_checkpoint:
    return
  match = re.match(r"^.*?([A-Za-z0-9_-]+)/bert_model.ckpt", init_checkpoint)
  if match is None:
    return
  model_name = match.group(1)
  if model_name in _LOWER_CASED_MODELS and not do_lower_case:
    actual_flag, case_name, opposite_flag = "False", "lowercased", "True"
  elif model_name in _CASED_MODELS and do_lower_case:
    actual_flag, case_name, opposite_flag = "True", "cased", "False"
  else:
    return
  raise ValueError(
      f"You passed in `--do_lower_case={actual_flag}` with `--init_checkpoint="
      f"{init_checkpoint}`. However, `{model_name}` seems to be a {case_name} model, so "
      f"you should pass in `--do_lower_case={opposite_flag}` so that the fine-tuning "
      "matches how the model was pre-training. If this error is wrong, please just "
      "comment out this check.")


def convert_to_unicode(text):
  """Returns `text` as `str`, decoding `bytes` as UTF-8 and dropping invalid bytes."""
  if isinstance(text, str):
    return text
  if isinstance(text, bytes):
    return text.decode("utf-8", "ignore")
  raise ValueError(f"Unsupported string type: {type(text)}")


# On Python 3 the original's `printable_text` is `convert_to_unicode`.
printable_text = convert_to_unicode


def load_vocab(vocab_file):
  """Reads a vocabulary file, one token a line, into an ordered {token: id} dict.

  As the original: tokens are stripped of surrounding whitespace and a repeated
  token keeps its first id, so ids are 0..len-1 in order of first appearance.

  Raises:
    FileNotFoundError: `vocab_file` does not exist.
    ValueError: the file holds no token.
  """
  if not files.exists(vocab_file):
    raise FileNotFoundError(f"vocab_file not found: {vocab_file}")
  vocab = collections.OrderedDict()
  with files.open(vocab_file, "rb") as reader:
    for line in reader:
      vocab.setdefault(convert_to_unicode(line).strip(), len(vocab))
  if not vocab:
    raise ValueError(f"vocab_file {vocab_file} is empty")
  return vocab


def convert_by_vocab(vocab, items):
  """Maps each item through `vocab` (a dict); raises KeyError for an unknown item."""
  return [vocab[item] for item in items]


def convert_tokens_to_ids(vocab, tokens):
  """Token -> id through `vocab` {token: id}, as `convert_by_vocab`."""
  return convert_by_vocab(vocab, tokens)


def convert_ids_to_tokens(inv_vocab, ids):
  """Id -> token through `inv_vocab` {id: token}, as `convert_by_vocab`."""
  return convert_by_vocab(inv_vocab, ids)


def whitespace_tokenize(text):
  """Splits `text` on whitespace (`str.split`)."""
  return text.split()


def is_whitespace(char):
  """True for space, tab, newline, carriage return and category Zs."""
  return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def is_control(char):
  """True for categories Cc and Cf, except tab, newline and carriage return."""
  return char not in "\t\n\r" and unicodedata.category(char) in ("Cc", "Cf")


def is_punctuation(char):
  """True for non-letter, non-digit printable ASCII and for categories P*."""
  cp = ord(char)
  if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
    return True
  return unicodedata.category(char).startswith("P")


def is_cjk_character(cp):
  """True when code point `cp` is in a CJK Unified Ideographs block."""
  return any(low <= cp <= high for low, high in CJK_RANGES)


# The original's private names, which SQuAD and NER code derived from it calls.
_is_whitespace = is_whitespace
_is_control = is_control
_is_punctuation = is_punctuation


def strip_accents(text):
  """NFD, then characters of category Mn dropped."""
  text = unicodedata.normalize("NFD", text)
  return "".join(char for char in text if unicodedata.category(char) != "Mn")


def split_on_punctuation(text):
  """Splits `text` into runs of non-punctuation and single punctuation characters."""
  pieces = []
  start_new_piece = True
  for char in text:
    if is_punctuation(char):
      pieces.append(char)
      start_new_piece = True
    elif start_new_piece:
      pieces.append(char)
      start_new_piece = False
    else:
      pieces[-1] += char
  return pieces


class _CleaningTable(dict):
  """`str.translate` table: drop invalid and control characters, whitespace -> " ",
  CJK ideograph -> the ideograph between spaces; other characters are unchanged.

  Entries are computed on first use, so only characters met in the text cost a
  Unicode database look-up, once.
  """

  def __missing__(self, cp):
    char = chr(cp)
    if cp == 0 or cp == 0xFFFD or is_control(char):
      value = None
    elif is_whitespace(char):
      value = " "
    elif is_cjk_character(cp):
      value = f" {char} "
    else:
      value = cp
    self[cp] = value
    return value


_CLEANING_TABLE = _CleaningTable()


def _clean_words(text):
  """Cleans `text` (str or UTF-8 bytes) and splits it into whitespace-separated words."""
  return convert_to_unicode(text).translate(_CLEANING_TABLE).split()


class BasicTokenizer:
  """Cleaning, CJK splitting, optional lower-casing and accent stripping, and
  punctuation splitting, as the original BasicTokenizer.

  Args:
    do_lower_case: lower-case and strip accents.
    vocab: the vocabulary whose "[unusedN]" entries a word equal to one of them
      keeps whole (the original's "tokens to not mutate"); FullTokenizer passes it
      with `preserve_unused_tokens`, the default () preserves nothing.
  """

  def __init__(self, do_lower_case=True, vocab=()):
    self.do_lower_case = do_lower_case
    self.vocab = vocab
    self._preserved = frozenset(token for token in vocab if _UNUSED_TOKEN_RE.match(token))

  def tokenize(self, text):
    """Returns the list of basic tokens of `text` (str or UTF-8 bytes)."""
    return [token for word in _clean_words(text) for token in self.split_word(word)]

  def split_word(self, word):
    """Lower-cases and strips accents (with `do_lower_case`) and splits punctuation
    off one cleaned, whitespace-free word; returns a list of tokens."""
    if word in self._preserved:
      return [word]
    if self.do_lower_case:
      word = strip_accents(word.lower())
    # Lower-casing can, in principle, produce whitespace; split as the original does.
    return " ".join(split_on_punctuation(word)).split()

  # The original's private helpers, for code that calls them.
  _run_strip_accents = staticmethod(strip_accents)
  _run_split_on_punc = staticmethod(split_on_punctuation)
  _is_chinese_char = staticmethod(is_cjk_character)


class WordpieceTokenizer:
  """Greedy longest-match-first WordPiece splitting, as the original."""

  def __init__(self, vocab, unk_token=UNK, max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD):
    self.vocab = vocab
    self.unk_token = unk_token
    self.max_input_chars_per_word = max_input_chars_per_word
    # No vocabulary entry is longer than this, so longer candidates need no look-up.
    self._max_piece_chars = max(map(len, vocab), default=0)

  def tokenize(self, text):
    """Splits each whitespace-separated word of `text` into word pieces.

    For example "unaffable" -> ["un", "##aff", "##able"].
    """
    return [piece for word in text.split() for piece in self.split_word(word)]

  def split_word(self, word):
    """Returns the word pieces of one whitespace-free `word`, or [unk_token]."""
    if len(word) > self.max_input_chars_per_word:
      return [self.unk_token]
    pieces = []
    start = 0
    while start < len(word):
      prefix = "##" if start > 0 else ""
      end = min(len(word), start + self._max_piece_chars - len(prefix))
      while end > start and prefix + word[start:end] not in self.vocab:
        end -= 1
      if end == start:
        return [self.unk_token]
      pieces.append(prefix + word[start:end])
      start = end
    return pieces


def create_tokenizer(vocab_file=None, do_lower_case=True, preserve_unused_tokens=False,
                     spm_model_file=None):
  """The scripts' tokenizer: `FullTokenizer` (BERT's WordPiece), or with
  `spm_model_file` ALBERT's `SentencePieceTokenizer` (`vocab_file` then unused, as
  in ALBERT's scripts).

  Raises:
    ValueError: neither file is given, or `preserve_unused_tokens` with
      `spm_model_file`.
  """
  if spm_model_file:
    if preserve_unused_tokens:
      raise ValueError("--preserve_unused_tokens is for WordPiece vocabularies, not "
                       "--spm_model_file")
    from modeling.data.sentencepiece_tokenization import SentencePieceTokenizer  # noqa: PLC0415
    return SentencePieceTokenizer(spm_model_file, do_lower_case)
  if not vocab_file:
    raise ValueError("--vocab_file (BERT's WordPiece vocabulary) or --spm_model_file "
                     "(ALBERT's SentencePiece model) is required")
  return FullTokenizer(vocab_file, do_lower_case, preserve_unused_tokens)


class FullTokenizer:
  """The original FullTokenizer: basic tokenization, then WordPiece.

  Args:
    vocab_file: the vocabulary file, one token a line.
    do_lower_case: lower-case and strip accents.
    preserve_unused_tokens: keep a word that is an "[unusedN]" entry of the
      vocabulary whole, as bert-tensorflow 1.0.4 with its absl flag
      `--preserve_unused_tokens`; here a plain argument, no flag parsing needed.

  Attributes:
    vocab_file: the vocabulary file read.
    vocab: ordered {token: id}.
    inv_vocab: {id: token}.
    unk_token: "[UNK]", the token of a word with no piece (as `SentencePieceTokenizer`'s).
    basic_tokenizer: the `BasicTokenizer`.
    wordpiece_tokenizer: the `WordpieceTokenizer`.
  """

  unk_token = UNK

  def __init__(self, vocab_file, do_lower_case=True, preserve_unused_tokens=False):
    self.vocab_file = vocab_file
    self.vocab = load_vocab(vocab_file)
    self.inv_vocab = {index: token for token, index in self.vocab.items()}
    self.do_lower_case = do_lower_case
    self.preserve_unused_tokens = preserve_unused_tokens
    # A preserved "[unusedN]" is a vocabulary entry, so WordPiece keeps it whole.
    self.basic_tokenizer = BasicTokenizer(
        do_lower_case=do_lower_case, vocab=self.vocab if preserve_unused_tokens else ())
    self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)
    self._word_pieces = functools.lru_cache(maxsize=_WORD_CACHE_SIZE)(self._split_word)

  def _split_word(self, word):
    """The word pieces of one cleaned, whitespace-free word, as a tuple."""
    return tuple(piece for token in self.basic_tokenizer.split_word(word)
                 for piece in self.wordpiece_tokenizer.split_word(token))

  def tokenize(self, text):
    """Returns the list of word pieces of `text` (str or UTF-8 bytes)."""
    return [piece for word in _clean_words(text) for piece in self._word_pieces(word)]

  def convert_tokens_to_ids(self, tokens):
    """Maps tokens to ids; raises KeyError for a token not in the vocabulary."""
    return convert_by_vocab(self.vocab, tokens)

  def convert_ids_to_tokens(self, ids):
    """Maps ids to tokens; raises KeyError for an id not in the vocabulary."""
    return convert_by_vocab(self.inv_vocab, ids)
