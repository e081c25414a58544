"""SentencePiece tokenization as Google's ALBERT (`--spm_model_file`).

`SentencePieceTokenizer(spm_model_file, do_lower_case)` gives the pieces of
ALBERT's `tokenization.FullTokenizer(spm_model_file=...)` on text its scripts
have passed through `preprocess_text(text, lower=do_lower_case)`:

- `preprocess_text`: whitespace runs collapsed to one space and the ends
  stripped (`str.split`), NFKD, combining characters dropped
  (`unicodedata.combining`), then lower-casing when asked;
- the SentencePiece model's pieces, except that a piece ending in a digit and a
  comma ("▁1999,") is re-encoded without the comma and "▁" and followed by ","
  (ALBERT's `encode_pieces`, as it runs on Python 3: the re-encoding keeps its
  leading "▁" even inside a word, "zz12," giving "zz", "▁1", "2", ",").

`tokenize` does both, so the scripts hand it raw text, as they do `FullTokenizer`.
Ids are the model's piece ids; ALBERT's models define [CLS], [SEP] and [MASK] as
control symbols, which `convert_tokens_to_ids` maps like any piece.
`graph_tokenization.InGraphSentencePieceTokenizer` does the same in TensorFlow ops.

This module does not import TensorFlow.
"""

import unicodedata

from modeling.data import files

PIECE_PREFIX = "\u2581"  # "▁", SentencePiece's word-start mark
SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[MASK]")


def preprocess_text(text, lower=False):
  """ALBERT's `preprocess_text`: collapse whitespace, NFKD, drop combining marks,
  optionally lower-case. `text` is str or UTF-8 bytes."""
  if isinstance(text, bytes):
    text = text.decode("utf-8", "ignore")
  text = unicodedata.normalize("NFKD", " ".join(text.split()))
  text = "".join(char for char in text if not unicodedata.combining(char))
  return text.lower() if lower else text


def load_model(spm_model_file):
  """A `sentencepiece.SentencePieceProcessor` of the model file (local or gs://...).

  Raises:
    FileNotFoundError: no such file.
    ValueError: the file is not a SentencePiece model, or lacks [CLS], [SEP] or
      [MASK] (ALBERT's models have them as control symbols).
  """
  import sentencepiece  # pylint: disable=import-outside-toplevel
  if not files.exists(spm_model_file):
    raise FileNotFoundError(f"spm_model_file not found: {spm_model_file}")
  with files.open(spm_model_file, "rb") as reader:
    proto = reader.read()
  model = sentencepiece.SentencePieceProcessor()
  try:
    model.LoadFromSerializedProto(proto)
  except (RuntimeError, OSError) as error:
    raise ValueError(f"--spm_model_file={spm_model_file} is not a SentencePiece model "
                     f"({error})") from None
  missing = [token for token in SPECIAL_TOKENS if model.PieceToId(token) == model.unk_id()]
  if missing:
    raise ValueError(f"--spm_model_file={spm_model_file} lacks {', '.join(missing)}: train it "
                     f"with --control_symbols={','.join(SPECIAL_TOKENS)} as ALBERT's models")
  return model


def model_proto(spm_model_file):
  """The bytes of a checked SentencePiece model file (for the in-graph tokenizer)."""
  load_model(spm_model_file)
  with files.open(spm_model_file, "rb") as reader:
    return reader.read()


class SentencePieceTokenizer:
  """ALBERT's SentencePiece FullTokenizer, with its text preprocessing built in.

  Same interface as `tokenization.FullTokenizer`: `tokenize`, `vocab`,
  `inv_vocab`, `unk_token` (the model's unknown piece, e.g. "<unk>"),
  `convert_tokens_to_ids`, `convert_ids_to_tokens`.

  Args:
    spm_model_file: the SentencePiece model (ALBERT's `30k-clean.model`).
    do_lower_case: lower-case in `preprocess_text` (ALBERT's --do_lower_case).
  """

  def __init__(self, spm_model_file, do_lower_case=True):
    self.spm_model_file = spm_model_file
    self.do_lower_case = do_lower_case
    self.sp_model = load_model(spm_model_file)
    self.vocab = {self.sp_model.IdToPiece(i): i for i in range(self.sp_model.GetPieceSize())}
    self.inv_vocab = {index: piece for piece, index in self.vocab.items()}
    self.unk_token = self.sp_model.IdToPiece(self.sp_model.unk_id())

  def split_piece(self, piece):
    """ALBERT's re-encoding of one piece: "▁1999," -> the pieces of "1999" and ",";
    any other piece -> [piece]."""
    if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
      # ALBERT meant to drop the re-encoding's leading "▁" inside a word, but its
      # test compares str with bytes and never holds on Python 3; so neither here.
      return self.sp_model.EncodeAsPieces(piece[:-1].replace(PIECE_PREFIX, "")) + [","]
    return [piece]

  def encode_pieces(self, text):
    """ALBERT's `encode_pieces` of already preprocessed text: a list of pieces."""
    return [split for piece in self.sp_model.EncodeAsPieces(text)
            for split in self.split_piece(piece)]

  def tokenize(self, text):
    """The pieces of raw `text` (str or UTF-8 bytes), after `preprocess_text`."""
    return self.encode_pieces(preprocess_text(text, lower=self.do_lower_case))

  def convert_tokens_to_ids(self, tokens):
    """Piece ids; a piece the model lacks gets the unknown id, as ALBERT's."""
    return [self.sp_model.PieceToId(token) for token in tokens]

  def convert_ids_to_tokens(self, ids):
    """Pieces of ids; raises KeyError for an id outside the model."""
    return [self.inv_vocab[index] for index in ids]
