"""Pretraining text: the input files of `create_pretraining_data.py`, as documents.

The format is the original's (google-research/bert): one sentence per line, a blank
line between documents; a document runs on into the next input file when a file
does not end with a blank line. `tokenize_documents` turns each line into token ids.
"""

from modeling.data import files


def expand_input_patterns(input_file):
  """Comma-separated file names and globs -> the list of files, in order.

  Raises:
    FileNotFoundError: a name or glob matches no file.
  """
  input_files = []
  for pattern in input_file.split(","):
    matches = files.glob(pattern)
    if not matches:
      raise FileNotFoundError(f"input_file: {pattern!r} matches no file")
    input_files.extend(matches)
  return input_files


def read_raw_documents(input_files):
  """Yields the documents of the input files, each a list of stripped lines.

  Blank lines separate documents; a document runs on across a file boundary.

  Raises:
    ValueError: a file is not valid UTF-8 (the file and line are named).
  """
  document = []
  for input_file in input_files:
    with files.open(input_file, "rb") as reader:
      for line_number, raw_line in enumerate(reader, 1):
        try:
          line = raw_line.decode("utf-8").strip()
        except UnicodeDecodeError as e:
          raise ValueError(f"{input_file}:{line_number}: not valid UTF-8 ({e})") from e
        if line:
          document.append(line)
        elif document:
          yield document
          document = []
  if document:
    yield document


def tokenize_documents(tokenizer, raw_documents):
  """Raw documents -> documents of id lists, empty sentences and documents dropped."""
  documents = []
  for raw_document in raw_documents:
    document = []
    for line in raw_document:
      ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line))
      if ids:
        document.append(ids)
    if document:
      documents.append(document)
  return documents
