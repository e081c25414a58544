"""CoNLL column files for named-entity recognition: sentences, tag schemes, labels, features.

Input: one word a line, its columns separated by tabs or spaces; the word is the
first column and the tag the last (CoNLL-2003's 4 columns, WNUT's 2). Sentences
are separated by empty or whitespace-only lines; a `-DOCSTART-` line is a document
break, not a sentence. Files to predict may have the word column only.

Features follow the BERT paper's recipe: each word is split into word pieces (a
word left with none, e.g. only control characters or a lone combining mark,
becomes one [UNK]), its first piece carries its label and the others are ignored.
A sentence longer than the window (`max_seq_length - 2` pieces) becomes
overlapping windows (`ner_windows`), and each word is predicted from one window,
so every word of the input gets exactly one prediction, in order.

Every problem with a file is a `ValueError("file:line: ...")`.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from modeling.data import files, ner_windows
from modeling.data.graph_packing import pack_inputs
from modeling.data.ner_tags import OUTSIDE, split_tag

DOCSTART = "-DOCSTART-"
# Tag prefixes of each scheme ("auto" picks one from the training tags).
SCHEMES = {"iob1": "BI", "iob2": "BI", "bioes": "BIES"}


@dataclasses.dataclass
class Sentence:
  """One sentence of a CoNLL file.

  Attributes:
    words: the words (first column), as in the file.
    tags: their tags (last column), or None in a file without tags.
    path: the file.
    lines: the line number of each word.
  """
  words: list
  tags: list
  path: str
  lines: list


def _read_lines(path):
  """The lines of a UTF-8 file (a byte-order mark accepted), split at "\\n" only."""
  if not files.exists(path):
    raise FileNotFoundError(f"CoNLL file not found: {path}")
  text = files.read_utf8(path)
  # Not str.splitlines: it also breaks at U+2028, U+0085, ... which a word may hold.
  return [line.rstrip("\r") for line in text.split("\n")]


def read_conll(path, require_tags=True):
  """Reads the sentences of one CoNLL file.

  Args:
    path: the file.
    require_tags: every word line must have a tag column; otherwise the file may
      instead have the word column only (every line alike).

  Returns:
    A list of `Sentence`s, in file order.

  Raises:
    FileNotFoundError: no such file.
    ValueError: an empty file, a word without a tag, a file mixing lines with
      and without tags, or a line whose column count differs from the file's
      (a lost column would make another one the tag), as `file:line: ...`.
  """
  sentences = []
  words, tags, lines = [], [], []
  has_tags = width = None

  def end_sentence():
    if words:
      sentences.append(Sentence(list(words), list(tags) if has_tags else None, path,
                                list(lines)))
    words.clear(), tags.clear(), lines.clear()

  for number, line in enumerate(_read_lines(path), start=1):
    columns = line.replace("\t", " ").split(" ")
    columns = [column for column in columns if column]
    if not columns:
      end_sentence()
      continue
    if columns[0] == DOCSTART:
      end_sentence()
      continue
    tagged = len(columns) > 1
    if not tagged and require_tags:
      raise ValueError(f"{path}:{number}: the word {columns[0]!r} has no tag (expected "
                       "`word ... tag`, columns separated by tabs or spaces)")
    if has_tags is None:
      has_tags, width = tagged, (len(columns), number)
    elif tagged != has_tags:
      raise ValueError(f"{path}:{number}: {'a tag' if tagged else 'no tag'} after lines "
                       f"{'without' if tagged else 'with'} tags; tag every word or none")
    elif len(columns) != width[0]:
      raise ValueError(f"{path}:{number}: {len(columns)} columns ({line.strip()!r}), but "
                       f"line {width[1]} has {width[0]}: every word line of a file needs "
                       "the same columns, the tag last")
    words.append(columns[0])
    tags.append(columns[-1])
    lines.append(number)
  end_sentence()
  if not sentences:
    raise ValueError(f"{path}: no sentences (the file is empty)")
  return sentences


def read_files(paths, require_tags=True):
  """The sentences of a comma-separated list of CoNLL files, in order."""
  return [sentence for path in paths.split(",") if path
          for sentence in read_conll(path, require_tags)]


def detect_scheme(tag_sequences):
  """"bioes" if any tag starts E- or S-; else "iob1" if a chunk starts with I- and
  none with B- (CoNLL-2003 as published); else "iob2".

  Args:
    tag_sequences: lists of tags (e.g. the tags of each sentence).
  """
  if any(split_tag(tag)[0] in ("E", "S") for tags in tag_sequences for tag in tags):
    return "bioes"
  starts = {"B": False, "I": False}
  for tags in tag_sequences:
    previous = OUTSIDE
    for tag in tags:
      prefix, entity_type = split_tag(tag)
      if prefix in starts and (previous == OUTSIDE or split_tag(previous)[1] != entity_type):
        starts[prefix] = True
      previous = tag
  return "iob1" if starts["I"] and not starts["B"] else "iob2"


def check_tag(tag, scheme, where):
  """Refuses a tag that is not "O" or "<prefix>-<type>" with a prefix of `scheme`.

  Raises:
    ValueError: `where: ...` naming the tag.
  """
  prefixes = SCHEMES[scheme]
  prefix, entity_type = split_tag(tag)
  if tag != OUTSIDE and (len(prefix) != 1 or prefix not in prefixes or not entity_type):
    raise ValueError(f"{where}: {tag!r} is not a tag of the {scheme.upper()} scheme (O, or "
                     f"{', '.join(p + '-TYPE' for p in prefixes)})")


def check_tags(sentences, scheme, labels=None):
  """Refuses a tag that is not a tag of `scheme`, or (with `labels`) not among them.

  Raises:
    ValueError: `file:line: ...` naming the tag.
  """
  known = set(labels) if labels is not None else None
  for sentence in sentences:
    for tag, line in zip(sentence.tags or (), sentence.lines):
      check_tag(tag, scheme, f"{sentence.path}:{line}")
      if known is not None and tag not in known:
        raise ValueError(f"{sentence.path}:{line}: the tag {tag!r} is not among the "
                         f"{len(known)} labels ({', '.join(sorted(known))})")


def labels_of(sentences):
  """The sorted set of tags of `sentences`."""
  return sorted({tag for sentence in sentences for tag in sentence.tags})


def read_labels(path):
  """Labels, one per line (blank lines skipped), in the order of the file.

  Raises:
    ValueError: an empty file or a repeated label, as `file:line: ...`.
  """
  labels = []
  for number, line in enumerate(_read_lines(path), start=1):
    label = line.strip()
    if not label:
      continue
    if label in labels:
      raise ValueError(f"{path}:{number}: the label {label!r} is listed twice")
    labels.append(label)
  if not labels:
    raise ValueError(f"{path}: no labels (the file is empty)")
  return labels


def word_piece_ids(sentences, tokenizer):
  """Word-piece ids of every word: a list (sentences) of lists (words) of id lists."""
  unk = tokenizer.convert_tokens_to_ids([tokenizer.unk_token])
  return [[tokenizer.convert_tokens_to_ids(tokenizer.tokenize(word)) or unk
           for word in sentence.words] for sentence in sentences]


@dataclasses.dataclass
class Features:
  """Model inputs of the windows, and where each word is predicted.

  Attributes:
    arrays: {name: np.ndarray}: int32 [N, S] `input_ids`, `input_mask`,
      `segment_ids`, `label_ids` and float32 [N, S] `label_weights` (1 at the first
      piece of every labelled word a window holds, for training).
    word_window: int64 [W] the window (row of `arrays`) each word of the input,
      in order, is predicted from.
    word_column: int64 [W] its first piece's position in that window.
  """
  arrays: dict
  word_window: np.ndarray
  word_column: np.ndarray


def features(sentences, tokenizer, label_ids, max_seq_length, stride):
  """Windows of word pieces, packed as `[CLS] pieces [SEP]`, for training or prediction.

  Args:
    sentences: `Sentence`s (tags may be None).
    tokenizer: a `tokenization.FullTokenizer`.
    label_ids: {tag: id}; tags absent from it (and None tags) get weight 0.
    max_seq_length: S; each window holds up to S - 2 pieces.
    stride: pieces between the starts of consecutive windows of a sentence.

  Returns:
    `Features`.
  """
  pieces = word_piece_ids(sentences, tokenizer)
  word_lengths = tf.ragged.constant([[len(p) for p in words] for words in pieces],
                                    dtype=tf.int64, ragged_rank=1)
  windows = ner_windows.plan(word_lengths, max_seq_length - 2, stride)
  flat_pieces = tf.ragged.constant([[i for word in words for i in word] for words in pieces],
                                   dtype=tf.int64, ragged_rank=1)
  cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
  inputs = pack_inputs(ner_windows.window_pieces(flat_pieces, windows), None, max_seq_length,
                       cls_id, sep_id)
  arrays = {name: tensor.numpy() for name, tensor in
            zip(("input_ids", "input_mask", "segment_ids"), inputs)}

  # Every window labels the first pieces of the words it holds.
  label_array = np.zeros_like(arrays["input_ids"])
  weights = np.zeros(label_array.shape, np.float32)
  row, start, length = (t.numpy() for t in (windows.row, windows.start, windows.length))
  first_pieces = windows.first_piece.to_list()
  for window in range(len(row)):
    sentence = sentences[row[window]]
    if sentence.tags is None:
      continue
    firsts = np.array(first_pieces[row[window]])
    inside = np.nonzero((firsts >= start[window]) & (firsts < start[window] + length[window]))[0]
    for word in inside:
      if sentence.tags[word] in label_ids:
        column = 1 + firsts[word] - start[window]
        label_array[window, column] = label_ids[sentence.tags[word]]
        weights[window, column] = 1.0
  arrays["label_ids"], arrays["label_weights"] = label_array, weights
  return Features(arrays, windows.word_window.flat_values.numpy(),
                  windows.word_column.flat_values.numpy())


def training_arrays(features_):
  """The rows of `features_.arrays` that hold at least one labelled piece."""
  keep = features_.arrays["label_weights"].sum(axis=1) > 0
  return {name: value[keep] for name, value in features_.arrays.items()}


def split_by_sentence(values, sentences):
  """Cuts a flat per-word sequence into one list per sentence."""
  out, offset = [], 0
  for sentence in sentences:
    out.append(list(values[offset:offset + len(sentence.words)]))
    offset += len(sentence.words)
  return out
