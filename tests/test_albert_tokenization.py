"""ALBERT's SentencePiece tokenization: Python and in-graph, against albert-tensorflow.

SentencePiece models are trained here with the `sentencepiece` package: one on the
shared corpus, one whose pieces end in a digit and a comma (ALBERT's special case).
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import oracle
from modeling.data.graph_tokenization import InGraphSentencePieceTokenizer
from modeling.data.sentencepiece_tokenization import SentencePieceTokenizer, preprocess_text
from modeling.data.tokenization import create_tokenizer

SPECIAL = dict(pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, control_symbols="[CLS],[SEP],[MASK]")
EXTRA_TEXTS = ["$99, and 1999, then x1,2 ", "Héllo  WORLD café ``quoted'' ①,",
               "\u00a0a\u2003b\u3000 ﬁne ²,  tab\there\n", "zz12, q ab12, b", ""]


def train_spm(prefix, input_file, **options):
  import sentencepiece  # noqa: PLC0415
  sentencepiece.SentencePieceTrainer.Train(input=str(input_file), model_prefix=str(prefix),
                                           minloglevel=2, **SPECIAL, **options)
  return f"{prefix}.model"


@pytest.fixture(scope="module")
def corpus_model(tmp_path_factory):
  """An 2,000-piece unigram model of the shared corpus, and the texts to compare."""
  corpus = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                        "shared", "data", "corpus", "fortunes_corpus.txt")
  if not os.path.isfile(corpus):
    pytest.skip(f"../shared is absent: no corpus at {corpus}")
  tmp = tmp_path_factory.mktemp("spm")
  model = train_spm(tmp / "corpus", corpus, vocab_size=2000, model_type="unigram",
                    input_sentence_size=20000, shuffle_input_sentence=True)
  with open(corpus, encoding="utf-8") as reader:
    texts = reader.read().splitlines()
  seeds = os.path.join(os.path.dirname(corpus), "..", "..", "seeds")
  for name in sorted(os.listdir(seeds)) if os.path.isdir(seeds) else []:
    with open(os.path.join(seeds, name), encoding="utf-8") as reader:
      texts += reader.read().splitlines()
  return model, texts + EXTRA_TEXTS


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
  """A BPE model with pieces such as "▁1999," and "12," (digits joined to commas)."""
  tmp = tmp_path_factory.mktemp("spm_digits")
  rng = np.random.RandomState(0)
  phrases = ["in 1999, we", "x7, y", "ab12, b", "$99, ok", "about 42, words", "the cat"]
  (tmp / "digits.txt").write_text("".join(" ".join(rng.choice(phrases, 5)) + "\n"
                                          for _ in range(3000)))
  model = train_spm(tmp / "digits", tmp / "digits.txt", vocab_size=60, hard_vocab_limit=False,
                    model_type="bpe", split_by_number=False, split_by_unicode_script=False)
  return model, ["in 1999, we x7, y ab12, b $99, ok zz12, q", *EXTRA_TEXTS]


ORACLE_SCRIPT = """
import json, sys
import original_albert
tokenization = original_albert.tokenization
model_file, texts_file, out_file = sys.argv[1:4]
texts = json.load(open(texts_file))
tokenizer = tokenization.FullTokenizer(None, spm_model_file=model_file)
result = {}
for lower in (True, False):
  pieces = [tokenizer.tokenize(tokenization.preprocess_text(t, lower=lower)) for t in texts]
  result[str(lower)] = [[p.decode() if isinstance(p, bytes) else p for p in row]
                        for row in pieces]
json.dump(result, open(out_file, "w"))
"""


def _original_pieces(tmp_path, model, texts):
  oracle.require()
  pytest.importorskip("albert", reason="Google's ALBERT (albert-tensorflow==1.1) is the oracle")
  (tmp_path / "texts.json").write_text(json.dumps(texts))
  oracle.run(ORACLE_SCRIPT, model, tmp_path / "texts.json", tmp_path / "pieces.json")
  return json.loads((tmp_path / "pieces.json").read_text())


@pytest.mark.parametrize("which", ["corpus_model", "digits_model"])
def test_pieces_equal_albert_full_tokenizer(which, request, tmp_path):
  model, texts = request.getfixturevalue(which)
  original = _original_pieces(tmp_path, model, texts)
  for lower in (True, False):
    tokenizer = SentencePieceTokenizer(model, do_lower_case=lower)
    ours = [tokenizer.tokenize(text) for text in texts]
    differences = [(text, a, b) for text, a, b in zip(texts, ours, original[str(lower)])
                   if a != b]
    assert not differences, differences[:3]
    assert any(ours), "no pieces at all"


def test_digit_comma_pieces_are_split_as_albert(digits_model):
  model, _ = digits_model
  tokenizer = SentencePieceTokenizer(model, do_lower_case=False)
  assert tokenizer.sp_model.EncodeAsPieces("in 1999, we") == ["▁in", "▁1999,", "▁we"]
  assert tokenizer.tokenize("in 1999, we") == ["▁in", *tokenizer.sp_model.EncodeAsPieces("1999"),
                                               ",", "▁we"]
  # "2," inside a word is re-encoded with a leading "▁", as ALBERT on Python 3.
  assert tokenizer.sp_model.EncodeAsPieces("zz12, q")[3] == "2,"
  assert tokenizer.tokenize("zz12, q")[3:] == [*tokenizer.sp_model.EncodeAsPieces("2"), ",",
                                               "▁", "q"]
  assert tokenizer.sp_model.EncodeAsPieces("2")[0].startswith("▁")


def test_preprocess_text():
  assert preprocess_text("  Héllo\t\nWORLD ﬁ  ", lower=True) == "hello world fi"
  assert preprocess_text(b"Caf\xc3\xa9", lower=False) == "Cafe"


def test_ids_and_vocab(corpus_model):
  model, _ = corpus_model
  tokenizer = create_tokenizer(None, True, spm_model_file=model)
  assert isinstance(tokenizer, SentencePieceTokenizer)
  assert len(tokenizer.vocab) == 2000
  ids = tokenizer.convert_tokens_to_ids(["[CLS]", "▁the", "[SEP]", "never-a-piece"])
  assert ids[0] == tokenizer.vocab["[CLS]"] and ids[-1] == tokenizer.sp_model.unk_id()
  assert tokenizer.convert_ids_to_tokens(ids[:3]) == ["[CLS]", "▁the", "[SEP]"]


def test_in_graph_tokenizer_equals_python(corpus_model, digits_model):
  """Equal ids but where tensorflow-text's SentencePiece breaks a tie between
  equal-scoring segmentations otherwise ("...." as "...", "." against ".", "...")."""
  for model, texts in (corpus_model, digits_model):
    for lower in (True, False):
      python = SentencePieceTokenizer(model, lower)
      ids = InGraphSentencePieceTokenizer(model, lower)(tf.constant(texts)).to_list()
      differences = 0
      for text, row in zip(texts, ids):
        expected = python.convert_tokens_to_ids(python.tokenize(text))
        if row != expected:
          differences += 1
          # Only the split differs: the same text.
          assert ("".join(python.convert_ids_to_tokens(row))
                  == "".join(python.convert_ids_to_tokens(expected))), text
      assert differences <= len(texts) // 1000, differences


@pytest.mark.parametrize("content, message", [
    (None, "spm_model_file not found"),
    (b"not a model", "is not a SentencePiece model"),
])
def test_bad_model_files_are_named(tmp_path, content, message):
  path = tmp_path / "bad.model"
  if content is not None:
    path.write_bytes(content)
  with pytest.raises((FileNotFoundError, ValueError), match=message):
    SentencePieceTokenizer(str(path))


def test_model_without_albert_symbols_is_refused(tmp_path):
  import sentencepiece  # noqa: PLC0415
  (tmp_path / "text.txt").write_text("the cat sat on the mat\n" * 50)
  sentencepiece.SentencePieceTrainer.Train(input=str(tmp_path / "text.txt"),
                                           model_prefix=str(tmp_path / "plain"), vocab_size=20,
                                           hard_vocab_limit=False, minloglevel=2)
  with pytest.raises(ValueError, match=r"lacks \[CLS\], \[SEP\], \[MASK\].*control_symbols"):
    SentencePieceTokenizer(str(tmp_path / "plain.model"))


def test_create_tokenizer_needs_a_vocabulary():
  with pytest.raises(ValueError, match="--vocab_file .* or --spm_model_file .* is required"):
    create_tokenizer(None)
  with pytest.raises(ValueError, match="--preserve_unused_tokens is for WordPiece"):
    create_tokenizer(None, True, True, spm_model_file="x.model")


def test_squad_answer_text_from_sentencepiece_pieces(corpus_model):
  """run_squad's answer text from ALBERT's pieces, mapped back to the original words."""
  from modeling.tasks.squad_predictions import get_final_text, pieces_text  # noqa: PLC0415
  model, _ = corpus_model
  tokenizer = SentencePieceTokenizer(model, do_lower_case=True)
  pieces = [piece for word in "Steve Smith's".split() for piece in tokenizer.tokenize(word)]
  assert pieces_text(pieces) == "steve smith's"
  assert get_final_text(pieces_text(pieces), "Steve Smith's", True) == "Steve Smith's"
  first_word = tokenizer.tokenize("Steve")
  assert get_final_text(pieces_text(first_word), "Steve Smith's", True) == "Steve"
  assert pieces_text(["un", "##aff", "##able"]) == "unaffable"  # WordPiece unchanged
