"""ALBERT's SentencePiece tokenizer in TFLite-capable ops, for the TFLite classifier.

`FastSentencePieceTokenizer` follows `sentencepiece_tokenization.SentencePieceTokenizer`
with tensorflow-text's TFLite kernels and TFLite builtins only:

- `preprocess_text`: with `do_lower_case`, `FastBertNormalizer` (lower-casing, NFD with
  compatibility mappings, category Mn removed; it also turns control and format
  characters into spaces); whitespace is collapsed by the SentencePiece model's own
  normalizer. Without `do_lower_case` no normalizer runs: `FastBertNormalizer` would only
  split words at control characters, and cannot strip accents without lower-casing.
- SentencePiece: `FastSentencepieceTokenizer` (`TFText>FastSentencepieceTokenize`) on
  the same model, with the model's normalizer.
- ALBERT's re-encoding of pieces ending in a digit and a comma: it depends on the piece
  alone, so each id is replaced by its re-encoding's ids from a table built here
  (Gather and a boolean mask: TFLite builtins).

docs/deploy.md lists where it differs from the Python tokenizer, measured.
"""

import numpy as np
import tensorflow as tf

from modeling.data import sentencepiece_tokenization


class FastSentencePieceTokenizer:
  """`tokenize(strings [B])` -> int32 RaggedTensor [B, (pieces)] of piece ids.

  Attributes:
    vocab: {piece: id} of the SentencePiece model ([CLS] and [SEP] among them).
  """

  def __init__(self, spm_model_file, do_lower_case):
    # Imported here: tensorflow-text takes seconds to load, and only the export uses it.
    import tensorflow_text as text  # pylint: disable=import-outside-toplevel
    python = sentencepiece_tokenization.SentencePieceTokenizer(spm_model_file, do_lower_case)
    self.vocab = python.vocab
    self._normalizer = (text.FastBertNormalizer(lower_case_nfd_strip_accents=True)
                        if do_lower_case else None)
    self._sentencepiece = text.FastSentencepieceTokenizer(
        sentencepiece_tokenization.model_proto(spm_model_file))
    splits = [python.convert_tokens_to_ids(python.split_piece(python.inv_vocab[i]))
              for i in range(len(python.vocab))]
    self._re_encodes = any(len(split) > 1 for split in splits)
    width = max(len(split) for split in splits)
    self._split_lengths = tf.constant([len(split) for split in splits], tf.int32)  # [V]
    self._split_ids = tf.constant(np.array([split + [0] * (width - len(split))
                                            for split in splits], np.int32))  # [V, K]

  def tokenize(self, strings):
    """strings: string [B] (UTF-8) -> int32 RaggedTensor [B, (pieces)]."""
    if self._normalizer is not None:
      strings = self._normalizer.normalize(strings)
    ids = self._sentencepiece.tokenize(strings)  # [B, (p)]
    if not self._re_encodes:  # No piece of the model ends in a digit and a comma.
      return ids
    flat = ids.flat_values  # [P]
    lengths = tf.gather(self._split_lengths, flat)  # [P]
    split_ids = tf.gather(self._split_ids, flat)  # [P, K]
    kept = tf.range(tf.shape(split_ids)[1])[None, :] < lengths[:, None]  # [P, K]
    ends = tf.concat([[0], tf.cumsum(lengths)], 0)  # [P + 1]
    return tf.RaggedTensor.from_row_splits(
        tf.boolean_mask(split_ids, kept), tf.gather(ends, ids.row_splits),
        validate=False)  # [B, (pieces)]
