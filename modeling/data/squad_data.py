"""SQuAD 1.1 / 2.0 data, as the original run_squad.py: examples and features.

Reading (`read_squad_examples`): a paragraph's context is split into words at
space, tab, CR, LF and U+202F only; the answer's `answer_start` (a character
offset) becomes word positions. In training each question must have exactly
one answer (or, with `version_2_with_negative`, `is_impossible` true). As the
original, a training question whose answer cannot be recovered from the words
(e.g. a no-break space inside the answer) is skipped with a warning; an answer
whose `text` is not at `answer_start` of the context at all is an error naming
the question id.

Features (`convert_examples_to_features`): `[CLS] question [SEP] document span
[SEP]`, the question cut to `max_query_length` pieces, the document cut into
spans of at most `max_seq_length - len(question) - 3` pieces that start
`doc_stride` pieces apart. A piece in several spans is scored only in its "max
context" span: where min(left, right) context + 0.01 * span length is largest.
Answer positions are refined to the WordPiece tokens of the answer text
(`improve_answer_span`); a span without the whole answer, and an unanswerable
question, point at [CLS] (position 0).
"""

import collections
import dataclasses
import json
import logging

import numpy as np

from modeling.data import files
from modeling.data.tokenization import whitespace_tokenize

logger = logging.getLogger(__name__)

# The characters at which the original splits a context into words.
_CONTEXT_WHITESPACE = frozenset(" \t\r\n\u202f")
# The first feature's unique_id, as the original's.
FIRST_UNIQUE_ID = 1000000000


@dataclasses.dataclass
class SquadExample:
  """One question on a paragraph.

  Attributes:
    qas_id: the question id.
    question_text: the question.
    doc_tokens: the context's whitespace-separated words.
    orig_answer_text: the answer text (training), "" when impossible, else None.
    start_position, end_position: the answer's first and last word (training);
      -1 when impossible; None when not training.
    is_impossible: an unanswerable SQuAD 2.0 training question.
  """
  qas_id: str
  question_text: str
  doc_tokens: list
  orig_answer_text: str = None
  start_position: int = None
  end_position: int = None
  is_impossible: bool = False


@dataclasses.dataclass
class InputFeatures:
  """One document span of an example, padded to max_seq_length.

  Attributes:
    unique_id: FIRST_UNIQUE_ID, FIRST_UNIQUE_ID + 1, ... in feature order.
    example_index: index of the example in the list converted.
    doc_span_index: index of the span within the example.
    tokens: the word pieces, [CLS] and [SEP] included (unpadded).
    token_to_orig_map: {position in tokens: word index in doc_tokens}, for
      the document's pieces.
    token_is_max_context: {position in tokens: whether this span is the piece's
      max-context span}, for the document's pieces.
    input_ids, input_mask, segment_ids: int lists of length max_seq_length.
    start_position, end_position: answer positions in tokens (0 when absent or
      impossible) in training; None otherwise.
    is_impossible: the example's.
  """
  unique_id: int
  example_index: int
  doc_span_index: int
  tokens: list
  token_to_orig_map: dict
  token_is_max_context: dict
  input_ids: list
  input_mask: list
  segment_ids: list
  start_position: int = None
  end_position: int = None
  is_impossible: bool = False


# ----------------------------------------------------------------------------
# Reading SQuAD JSON.


def load_squad_json(input_file):
  """The list of articles (the "data" entry) of a SQuAD JSON file.

  Raises:
    FileNotFoundError: no such file.
    ValueError: not JSON, or no "data" list (the message names the file).
  """
  if not files.exists(input_file):
    raise FileNotFoundError(f"SQuAD file not found: {input_file}")
  with files.open(input_file, "r") as reader:
    try:
      contents = json.load(reader)
    except json.JSONDecodeError as error:
      raise ValueError(f"{input_file}: not valid JSON: {error.msg} at line {error.lineno} "
                       f"column {error.colno}") from None
  if not isinstance(contents, dict) or not isinstance(contents.get("data"), list):
    raise ValueError(f"{input_file}: expected a SQuAD JSON object with a \"data\" list of "
                     "articles")
  return contents["data"]


def _field(mapping, key, where, kind):
  """mapping[key], checked to be a `kind`; errors name `where`."""
  if not isinstance(mapping, dict) or key not in mapping:
    raise ValueError(f"{where}: missing {key!r}")
  value = mapping[key]
  if not isinstance(value, kind):
    raise ValueError(f"{where}: {key!r} is {value!r}, expected {kind.__name__}")
  return value


def _paragraphs(input_file, articles):
  """Yields (context, qas, where) of every paragraph."""
  for article_index, article in enumerate(articles):
    where = f"{input_file}: data[{article_index}]"
    for paragraph_index, paragraph in enumerate(_field(article, "paragraphs", where, list)):
      paragraph_where = f"{where}.paragraphs[{paragraph_index}]"
      yield (_field(paragraph, "context", paragraph_where, str),
             _field(paragraph, "qas", paragraph_where, list), paragraph_where)


def _question_id(qa, paragraph_where, input_file):
  """(question id, "file: question <id>" for error messages)."""
  if not isinstance(qa, dict) or "id" not in qa:
    raise ValueError(f"{paragraph_where}: a question without an 'id'")
  return qa["id"], f"{input_file}: question {qa['id']}"


def split_context(context):
  """The original's word split of a context.

  Returns:
    (words, char_to_word): the words, and for each character of `context` the
    index of the word it belongs to (for whitespace: the preceding word, -1
    before the first).
  """
  words = []
  char_to_word = []
  follows_space = True
  for char in context:
    if char in _CONTEXT_WHITESPACE:
      follows_space = True
    elif follows_space:
      words.append(char)
      follows_space = False
    else:
      words[-1] += char
    char_to_word.append(len(words) - 1)
  return words, char_to_word


def _check_answer_in_context(context, text, answer_start, where):
  """Raises ValueError unless `text` is at character `answer_start` of `context`."""
  if not text:
    raise ValueError(f"{where}: the answer text is empty")
  if isinstance(answer_start, bool) or not isinstance(answer_start, int) or not (
      0 <= answer_start <= len(context) - len(text)):
    raise ValueError(f"{where}: answer_start={answer_start!r} is not a character offset "
                     f"of the answer {text!r} in a context of {len(context)} characters")
  found = context[answer_start:answer_start + len(text)]
  if found != text:
    raise ValueError(f"{where}: the answer {text!r} is not at answer_start={answer_start} "
                     f"of the context, which has {found!r} there")


def _training_answer(qa, context, where, version_2_with_negative):
  """(is_impossible, answer text, answer_start) of a training question."""
  is_impossible = False
  if version_2_with_negative:
    if "is_impossible" not in qa:
      raise ValueError(f"{where}: missing 'is_impossible', which SQuAD 2.0 training data "
                       "has (is this SQuAD 1.1 data? then do not read it as 2.0)")
    is_impossible = _field(qa, "is_impossible", where, bool)
  if is_impossible:
    return True, "", None
  answers = _field(qa, "answers", where, list)
  if len(answers) != 1:
    hint = (" (an unanswerable SQuAD 2.0 question? read the file as 2.0)"
            if not answers and not version_2_with_negative else "")
    raise ValueError(f"{where}: for training, each question should have exactly 1 answer, "
                     f"found {len(answers)}{hint}")
  answer_where = f"{where}: answers[0]"
  text = _field(answers[0], "text", answer_where, str)
  answer_start = _field(answers[0], "answer_start", answer_where, int)
  _check_answer_in_context(context, text, answer_start, where)
  return False, text, answer_start


def _training_example(qa, qas_id, question, context, words, char_to_word, where,
                      version_2_with_negative):
  """The SquadExample of a training question, or None when its answer is lost in
  the word split (the original's skip)."""
  is_impossible, text, answer_start = _training_answer(qa, context, where,
                                                       version_2_with_negative)
  if is_impossible:
    return SquadExample(qas_id, question, words, "", -1, -1, True)
  start_word = char_to_word[answer_start]
  end_word = char_to_word[answer_start + len(text) - 1]
  found = " ".join(words[start_word:end_word + 1])
  wanted = " ".join(whitespace_tokenize(text))
  if wanted not in found:
    logger.warning("%s: skipped, as the original does: could not find the answer %r in the "
                   "words %r", where, wanted, found)
    return None
  return SquadExample(qas_id, question, words, text, start_word, end_word, False)


def read_squad_examples(input_file, is_training, version_2_with_negative=False):
  """Reads a SQuAD JSON file into a list of SquadExample, as the original.

  Args:
    input_file: path of a SQuAD 1.1 or 2.0 JSON file.
    is_training: read the answers (exactly one per answerable question).
    version_2_with_negative: SQuAD 2.0: training questions have `is_impossible`.

  Raises:
    FileNotFoundError, ValueError: the file is missing, is not SQuAD JSON, or a
      training answer does not fit its context; the message names the file
      and, where there is one, the question id.
  """
  examples = []
  for context, qas, paragraph_where in _paragraphs(input_file, load_squad_json(input_file)):
    words, char_to_word = split_context(context)
    for qa in qas:
      qas_id, where = _question_id(qa, paragraph_where, input_file)
      question = _field(qa, "question", where, str)
      if not is_training:
        examples.append(SquadExample(qas_id, question, words))
        continue
      example = _training_example(qa, qas_id, question, context, words, char_to_word, where,
                                  version_2_with_negative)
      if example is not None:
        examples.append(example)
  return examples


def read_gold_answers(input_file):
  """{question id: [answer texts]} of a SQuAD file, in file order.

  A question without an "answers" list (a test file) has [].
  """
  gold = collections.OrderedDict()
  for _, qas, paragraph_where in _paragraphs(input_file, load_squad_json(input_file)):
    for qa in qas:
      qas_id, where = _question_id(qa, paragraph_where, input_file)
      gold[qas_id] = [_field(answer, "text", f"{where}: answers", str)
                      for answer in qa.get("answers") or []]
  return gold


# ----------------------------------------------------------------------------
# Features.


def _tokenize_words(words, tokenizer):
  """Word pieces of a list of words.

  Returns:
    (pieces, piece_to_word, word_to_first_piece): the pieces, the word of each
    piece, and the index of each word's first piece (the next word's, for a
    word without pieces).
  """
  pieces, piece_to_word, word_to_first_piece = [], [], []
  for word_index, word in enumerate(words):
    word_to_first_piece.append(len(pieces))
    for piece in tokenizer.tokenize(word):
      pieces.append(piece)
      piece_to_word.append(word_index)
  return pieces, piece_to_word, word_to_first_piece


def improve_answer_span(pieces, start, end, tokenizer, answer_text):
  """The sub-span of pieces[start:end + 1] whose text is the tokenized answer.

  The annotation covers whole words ("(1895-1943)." for the answer "1895");
  the shortest-start, then longest, sub-span equal to the answer's pieces is
  closer. Without one (the answer "Japan" inside the word "Japanese") the
  span is kept.

  Returns:
    (start, end) piece indexes.
  """
  answer = " ".join(tokenizer.tokenize(answer_text))
  for new_start in range(start, end + 1):
    for new_end in range(end, new_start - 1, -1):
      if " ".join(pieces[new_start:new_end + 1]) == answer:
        return new_start, new_end
  return start, end


def _answer_pieces(example, pieces, word_to_first_piece, tokenizer):
  """(start, end) piece indexes of a training example's answer; (-1, -1) if impossible."""
  if example.is_impossible:
    return -1, -1
  start = word_to_first_piece[example.start_position]
  if example.end_position + 1 < len(example.doc_tokens):
    end = word_to_first_piece[example.end_position + 1] - 1
  else:
    end = len(pieces) - 1
  return improve_answer_span(pieces, start, end, tokenizer, example.orig_answer_text)


def doc_spans(num_pieces, max_span_length, doc_stride):
  """The sliding window over a document: [(start, length)].

  Each span is as long as allowed; the next starts min(length, doc_stride) later;
  the last ends at the document's end.
  """
  spans = []
  start = 0
  while start < num_pieces:
    length = min(num_pieces - start, max_span_length)
    spans.append((start, length))
    if start + length == num_pieces:
      break
    start += min(length, doc_stride)
  return spans


def max_context_spans(spans, num_pieces):
  """For each document piece, the index of the span where it has the most context.

  A piece's score in a span is min(pieces left, pieces right) + 0.01 * span
  length; the first span with the highest score wins.
  """
  best_span = [None] * num_pieces
  best_score = [None] * num_pieces
  for span_index, (start, length) in enumerate(spans):
    end = start + length - 1
    for position in range(start, end + 1):
      score = min(position - start, end - position) + 0.01 * length
      if best_score[position] is None or score > best_score[position]:
        best_score[position] = score
        best_span[position] = span_index
  return best_span


def _pad(values, length):
  return values + [0] * (length - len(values))


def _span_positions(answer, span_start, span_length, doc_offset):
  """Answer (start, end) within a feature; (0, 0) when the span lacks the answer."""
  start, end = answer
  if start < span_start or end > span_start + span_length - 1:
    return 0, 0
  return start - span_start + doc_offset, end - span_start + doc_offset


def iter_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length,
                  is_training):
  """Yields the features of every document span of every example, as the original.

  A generator, so that training can keep only the model inputs (`feature_arrays`),
  not the token maps of every feature.

  Args:
    examples: SquadExamples.
    tokenizer: a FullTokenizer.
    max_seq_length: length of a feature.
    doc_stride: pieces between the starts of consecutive document spans.
    max_query_length: most question pieces kept.
    is_training: set start and end positions.

  Yields:
    InputFeatures; unique ids count up from FIRST_UNIQUE_ID.

  Raises:
    ValueError: doc_stride < 1, or no room for the document after the question.
  """
  if doc_stride < 1:
    raise ValueError(f"doc_stride={doc_stride} must be positive")
  if max_seq_length <= max_query_length + 3:
    raise ValueError(f"max_seq_length={max_seq_length} must be greater than "
                     f"max_query_length={max_query_length} + 3")
  unique_id = FIRST_UNIQUE_ID
  for example_index, example in enumerate(examples):
    query = tokenizer.tokenize(example.question_text)[:max_query_length]
    pieces, piece_to_word, word_to_first_piece = _tokenize_words(example.doc_tokens, tokenizer)
    answer = (_answer_pieces(example, pieces, word_to_first_piece, tokenizer)
              if is_training else None)
    spans = doc_spans(len(pieces), max_seq_length - len(query) - 3, doc_stride)
    best_span = max_context_spans(spans, len(pieces))
    doc_offset = len(query) + 2
    for span_index, (span_start, span_length) in enumerate(spans):
      span = range(span_start, span_start + span_length)
      tokens = ["[CLS]", *query, "[SEP]", *(pieces[i] for i in span), "[SEP]"]
      segment_ids = [0] * doc_offset + [1] * (span_length + 1)
      input_ids = tokenizer.convert_tokens_to_ids(tokens)
      positions = (None, None)
      if is_training:
        positions = ((0, 0) if example.is_impossible
                     else _span_positions(answer, span_start, span_length, doc_offset))
      yield InputFeatures(
          unique_id=unique_id, example_index=example_index,
          doc_span_index=span_index, tokens=tokens,
          token_to_orig_map={doc_offset + k: piece_to_word[i] for k, i in enumerate(span)},
          token_is_max_context={doc_offset + k: best_span[i] == span_index
                                for k, i in enumerate(span)},
          input_ids=_pad(input_ids, max_seq_length),
          input_mask=_pad([1] * len(input_ids), max_seq_length),
          segment_ids=_pad(segment_ids, max_seq_length),
          start_position=positions[0], end_position=positions[1],
          is_impossible=example.is_impossible)
      unique_id += 1


def convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride,
                                 max_query_length, is_training):
  """The list of `iter_features`: every feature of every example, as the original."""
  return list(iter_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length,
                            is_training))


def feature_arrays(features, is_training):
  """Model inputs of features (any iterable, read once).

  Returns:
    {name: np.int32 array}: input_ids, input_mask, segment_ids [N, S], and
    with is_training start_positions, end_positions [N].
  """
  columns = {"input_ids": "input_ids", "input_mask": "input_mask",
             "segment_ids": "segment_ids"}
  if is_training:
    columns.update(start_positions="start_position", end_positions="end_position")
  rows = {name: [] for name in columns}
  for feature in features:
    for name, field in columns.items():
      rows[name].append(np.asarray(getattr(feature, field), np.int32))
  return {name: np.stack(values) for name, values in rows.items()}
