"""Sentence (pair) classification data: the original processors, GLUE, and plain TSV.

A processor reads `train.tsv`, `dev.tsv` and `test.tsv` (names vary by task) from a
data directory into `InputExample`s; `convert_example` turns one into fixed-length
features exactly as the original `run_classifier.convert_single_example`:
`[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, the longer segment truncated first.

Every row a processor cannot read is reported as `ValueError("file:line: ...")`.
"""

import csv
import dataclasses
import io
import os

import numpy as np

from modeling.data import files


@dataclasses.dataclass
class InputExample:
  """One example: `text_b` is None for single-sentence tasks; `label` a string
  (or a float for regression), None where the split has no labels."""
  guid: str
  text_a: str
  text_b: str = None
  label: object = None


@dataclasses.dataclass
class InputFeatures:
  """int lists of length max_seq_length and the label index (or float target)."""
  input_ids: list
  input_mask: list
  segment_ids: list
  label_id: object


def read_tsv(path):
  """Reads a tab-separated file (no quoting, as the original) into (line number, row) pairs.

  Raises:
    FileNotFoundError: no such file.
    ValueError: the file is not UTF-8 (a UTF-8 byte-order mark is accepted), with
      `file:line`.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"data file not found: {path}")
  text = files.read_utf8(path)
  return list(enumerate(csv.reader(io.StringIO(text, newline=""), delimiter="\t",
                                   quoting=csv.QUOTE_NONE), start=1))


def require_examples(path, examples):
  """Returns `examples`, refusing an empty list with the file named."""
  if not examples:
    raise ValueError(f"{path}: no examples (nothing after the header)")
  return examples


class Row:
  """A row of a TSV file with positional access that names file and line on errors."""

  def __init__(self, path, number, row):
    self.path, self.number, self.row = path, number, row

  def error(self, message):
    return ValueError(f"{self.path}:{self.number}: {message}")

  def __getitem__(self, index):
    try:
      return self.row[index]
    except IndexError:
      raise self.error(f"expected at least {index + 1 if index >= 0 else -index} "
                       f"tab-separated columns, found {len(self.row)}") from None


class Processor:
  """A task's file layout. Subclasses set the class attributes and `parse`.

  Attributes:
    labels: the label strings in the original's order (their index is the class id);
      None for a regression task.
    files: {split: file name} under the data directory.
    skip_header: {split: bool}, whether the first line is a header.
  """
  labels = None
  files = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}
  skip_header = {"train": True, "dev": True, "test": True}
  is_regression = False

  def get_labels(self):
    return list(self.labels)

  def parse(self, row, split):
    """Returns (guid suffix or None, text_a, text_b, label) for one Row."""
    raise NotImplementedError

  def keep(self, row, split):
    """Whether a row belongs to the split (XNLI filters by language)."""
    return True

  def get_examples(self, data_dir, split):
    """Reads the split ("train", "dev" or "test") into a list of InputExample."""
    path = os.path.join(data_dir, self.files[split])
    lines = read_tsv(path)
    if self.skip_header[split]:
      lines = lines[1:]
    examples = []
    for index, (number, values) in enumerate(lines):
      row = Row(path, number, values)
      if not self.keep(row, split):
        continue
      guid, text_a, text_b, label = self.parse(row, split)
      if label is not None:
        label = self._check_label(row, label)
      examples.append(InputExample(f"{split}-{guid if guid is not None else index}",
                                   text_a, text_b, label))
    return require_examples(path, examples)

  def _check_label(self, row, label):
    if self.is_regression:
      try:
        return float(label)
      except ValueError:
        raise row.error(f"label {label!r} is not a number") from None
    if label not in self.get_labels():
      raise row.error(f"unknown label {label!r}; expected one of {self.get_labels()}")
    return label


class ColaProcessor(Processor):
  """CoLA: train/dev `source, label, _, sentence` without header; test `index, sentence`."""
  labels = ("0", "1")
  skip_header = {"train": False, "dev": False, "test": True}

  def parse(self, row, split):
    if split == "test":
      return row[0], row[1], None, "0"
    return None, row[3], None, row[1]


class MrpcProcessor(Processor):
  """MRPC: `Quality, #1 ID, #2 ID, #1 String, #2 String` with a header."""
  labels = ("0", "1")

  def parse(self, row, split):
    return None, row[3], row[4], "0" if split == "test" else row[0]


class MnliProcessor(Processor):
  """MNLI (matched dev and test): sentences in columns 8 and 9, label last."""
  labels = ("contradiction", "entailment", "neutral")
  files = {"train": "train.tsv", "dev": "dev_matched.tsv", "test": "test_matched.tsv"}

  def parse(self, row, split):
    return row[0], row[8], row[9], "contradiction" if split == "test" else row[-1]


class XnliProcessor(Processor):
  """XNLI, Chinese as the original: MultiNLI zh translation for train, zh rows of dev."""
  language = "zh"
  labels = ("contradiction", "entailment", "neutral")
  files = {"train": os.path.join("multinli", f"multinli.train.{language}.tsv"),
           "dev": "xnli.dev.tsv", "test": "xnli.test.tsv"}

  def keep(self, row, split):
    return split == "train" or row[0] == self.language

  def parse(self, row, split):
    if split == "train":
      label = row[2]
      return None, row[0], row[1], "contradiction" if label == "contradictory" else label
    return None, row[6], row[7], row[1]


class Sst2Processor(Processor):
  """SST-2: `sentence, label`; test `index, sentence`."""
  labels = ("0", "1")

  def parse(self, row, split):
    if split == "test":
      return row[0], row[1], None, None
    return None, row[0], None, row[1]


class QqpProcessor(Processor):
  """QQP: `id, qid1, qid2, question1, question2, is_duplicate`; test `id, q1, q2`."""
  labels = ("0", "1")

  def parse(self, row, split):
    if split == "test":
      return row[0], row[1], row[2], None
    return row[0], row[3], row[4], row[5]


class _IndexedPairProcessor(Processor):
  """`index, text_a, text_b, label` (QNLI, RTE, WNLI); test without label."""

  def parse(self, row, split):
    return row[0], row[1], row[2], None if split == "test" else row[3]


class QnliProcessor(_IndexedPairProcessor):
  labels = ("entailment", "not_entailment")


class RteProcessor(_IndexedPairProcessor):
  labels = ("entailment", "not_entailment")


class WnliProcessor(_IndexedPairProcessor):
  labels = ("0", "1")


class StsbProcessor(Processor):
  """STS-B, regression: sentences in columns 7 and 8, score last (absent in test)."""
  is_regression = True

  def parse(self, row, split):
    return row[0], row[7], row[8], None if split == "test" else row[-1]


class TsvProcessor(Processor):
  """A user's own labelled TSV files with a header row.

  The header names a `label` column and one or two text columns (in file order:
  text_a, then text_b). Labels are those found in train.tsv, stripped of
  surrounding whitespace, sorted (or the list given); an empty label is an error.
  test.tsv may lack the label column.

  Multi-label (`label_separator` given): the label column holds a set of labels
  split at the separator, each stripped, e.g. `sports,politics`; an empty cell is
  the empty set. An example's label is then a tuple of label strings.
  """

  def __init__(self, data_dir, labels=None, label_separator=None):
    """Args:
      data_dir: the directory of train.tsv, dev.tsv, test.tsv.
      labels: the label strings in class-id order, or None: those of train.tsv.
      label_separator: None (one label a row), or the string that separates the
        labels of a row's set.
    """
    self.data_dir = data_dir
    self.label_separator = label_separator
    self._labels = None if labels is None else list(labels)

  @property
  def multi_label(self):
    return self.label_separator is not None

  def _columns(self, path, header_number, header):
    text_columns = [i for i, name in enumerate(header) if name != "label"]
    label_column = header.index("label") if "label" in header else None
    if not 1 <= len(text_columns) <= 2:
      raise ValueError(f"{path}:{header_number}: the header {header} must name one or two "
                       "text columns besides `label`")
    return text_columns, label_column

  def get_labels(self):
    if self._labels is None:
      examples = self.get_examples(self.data_dir, "train", check_labels=False)
      self._labels = sorted({label for e in examples
                             for label in (e.label if self.multi_label else [e.label])})
      if not self._labels:
        raise ValueError(f"{os.path.join(self.data_dir, self.files['train'])}: every row has "
                         "the empty label set, so there are no labels to learn")
    return list(self._labels)

  def _parse_label(self, row, cell):
    """The label string of a cell, or the tuple of a multi-label cell's set."""
    if not self.multi_label:
      if not cell.strip():
        raise row.error("empty label")
      return cell.strip()
    if not cell.strip():
      return ()
    labels = tuple(label.strip() for label in cell.split(self.label_separator))
    for label in labels:
      if not label:
        raise row.error(f"empty label in the set {cell!r} (separator "
                        f"{self.label_separator!r})")
      if labels.count(label) > 1:
        raise row.error(f"label {label!r} repeated in the set {cell!r}")
    return labels

  def _check_label(self, row, label):
    if not self.multi_label:
      return super()._check_label(row, label)
    unknown = [name for name in label if name not in self.get_labels()]
    if unknown:
      raise row.error(f"unknown label {unknown[0]!r} in the set "
                      f"{self.label_separator.join(label)!r}; expected labels of "
                      f"{self.get_labels()}")
    return label

  def get_examples(self, data_dir, split, check_labels=True):
    path = os.path.join(data_dir, self.files[split])
    lines = read_tsv(path)
    if not lines:
      raise ValueError(f"{path}: empty file; expected a header row naming `label` and "
                       "one or two text columns")
    (header_number, header), rows = lines[0], lines[1:]
    text_columns, label_column = self._columns(path, header_number, header)
    if label_column is None and split != "test":
      raise ValueError(f"{path}:{header_number}: the header {header} has no `label` column")
    examples = []
    for index, (number, values) in enumerate(rows):
      row = Row(path, number, values)
      if len(values) != len(header):
        raise row.error(f"found {len(values)} columns, the header has {len(header)}")
      texts = [row[i] for i in text_columns]
      label = self._parse_label(row, row[label_column]) if label_column is not None else None
      if check_labels and label is not None:
        label = self._check_label(row, label)
      examples.append(InputExample(f"{split}-{index}", texts[0],
                                   texts[1] if len(texts) > 1 else None, label))
    return require_examples(path, examples)


def check_label_names(labels, separator, source):
  """Refuses a label name holding the multi-label separator (its sets could not be
  told apart), naming `source` (e.g. `file:line` or a flag)."""
  for label in labels:
    if separator in label:
      raise ValueError(f"{source}: the label {label!r} holds the label separator "
                       f"{separator!r}, so a set holding it could not be read; choose "
                       "another --multi_label_separator")


PROCESSORS = {
    "cola": ColaProcessor, "mnli": MnliProcessor, "mrpc": MrpcProcessor,
    "xnli": XnliProcessor, "sst-2": Sst2Processor, "qqp": QqpProcessor,
    "qnli": QnliProcessor, "rte": RteProcessor, "wnli": WnliProcessor,
    "sts-b": StsbProcessor, "tsv": TsvProcessor,
}


def get_processor(task_name, data_dir, labels=None, label_separator=None):
  """The processor of a task name (case-insensitive); lists the known ones otherwise.

  `labels` and `label_separator` are TsvProcessor's (the other tasks have their
  fixed single labels).
  """
  name = task_name.lower()
  if name not in PROCESSORS:
    raise ValueError(f"unknown task_name {task_name!r}; known tasks: "
                     f"{', '.join(sorted(PROCESSORS))}")
  if name == "tsv":
    return TsvProcessor(data_dir, labels, label_separator)
  if labels is not None or label_separator is not None:
    raise ValueError(f"task_name {task_name!r} has its own labels, one per example; a label "
                     "list or label sets are read only by --task_name=tsv")
  return PROCESSORS[name]()


def truncate_seq_pair(tokens_a, tokens_b, max_length):
  """Truncates in place, one token at a time from the longer list (b on ties)."""
  while len(tokens_a) + len(tokens_b) > max_length:
    (tokens_a if len(tokens_a) > len(tokens_b) else tokens_b).pop()


def convert_example(example, label_list, max_seq_length, tokenizer, multi_label=False):
  """One InputExample to InputFeatures, as the original `convert_single_example`.

  Args:
    example: an InputExample. A None label (unlabelled test row) gets class 0
      (multi-label: the empty set).
    label_list: the label strings (class id = index), or None for regression.
    max_seq_length: int, the padded length.
    tokenizer: a FullTokenizer (`tokenize`, `convert_tokens_to_ids`).
    multi_label: the label is a set (a tuple of strings), its feature a list of
      C floats, 1.0 for the labels it holds.
  """
  tokens_a = tokenizer.tokenize(example.text_a)
  tokens_b = tokenizer.tokenize(example.text_b) if example.text_b else None
  if tokens_b:
    truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
    tokens = ["[CLS]", *tokens_a, "[SEP]", *tokens_b, "[SEP]"]
    segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
  else:
    tokens = ["[CLS]", *tokens_a[:max_seq_length - 2], "[SEP]"]
    segment_ids = [0] * len(tokens)
  input_ids = tokenizer.convert_tokens_to_ids(tokens)
  padding = [0] * (max_seq_length - len(input_ids))
  if multi_label:
    label_id = [float(label in (example.label or ())) for label in label_list]
  elif label_list is None:
    label_id = float(example.label) if example.label is not None else 0.0
  else:
    label_id = label_list.index(example.label) if example.label is not None else 0
  return InputFeatures(input_ids + padding, [1] * len(input_ids) + padding,
                       segment_ids + padding, label_id)


def to_arrays(examples, label_list, max_seq_length, tokenizer, multi_label=False):
  """The features of `examples` (`convert_example`) as numpy arrays.

  Returns:
    {"input_ids", "input_mask", "segment_ids": int32 [N, max_seq_length],
    "label_ids": int32 [N] (float32 [N] for regression, label_list None;
    float32 [N, C] of 0/1 for multi_label)}.
  """
  features = [convert_example(e, label_list, max_seq_length, tokenizer, multi_label)
              for e in examples]
  arrays = {name: np.array([getattr(f, name) for f in features], np.int32).reshape(
      -1, max_seq_length) for name in ("input_ids", "input_mask", "segment_ids")}
  label_dtype = np.float32 if label_list is None or multi_label else np.int32
  arrays["label_ids"] = np.array([f.label_id for f in features], label_dtype)
  return arrays
