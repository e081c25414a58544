"""Tokenization: FullTokenizer against the original, and the in-graph tokenizer."""

import glob
import json
import os
import random
import unicodedata

import oracle
import pytest
import tensorflow as tf

from modeling.data import graph_tokenization, tokenization

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "un", "##aff", "##able",
              "want", "##want", "##ed", "runn", "##ing", ",", ".", "!", "ca", "##fe", "e",
              "##e", "中", "国", "a", "##b", "##c", "hello", "world", "Hello", "é", "ß", "s",
              "##s", "i", "?", "[unused0]"]


def write_vocab(directory, tokens):
  path = os.path.join(str(directory), "vocab.txt")
  with open(path, "w", encoding="utf-8") as f:
    f.write("".join(token + "\n" for token in tokens))
  return path


def varied_texts(count=3000, seed=0):
  """Hand-written corner cases plus random strings drawn from across Unicode."""
  texts = [
      "", "   ", "UNwant\u00E9d,running", "Hello World!", "Caf\u00E9 na\u00EFve r\u00E9sum\u00E9",
      "\u00C5ngstr\u00F6m \u0130stanbul STRASSE stra\u00DFe \u03A3\u03BF\u03C6\u03AF\u03B1\u03C2",
      "中国abc中国", "\u3042\u3044\u3046 \uD55C\uAD6D\uC5B4 \u4E2D\u6587",
      "emoji \U0001F600\U0001F44D\U0001F3FD family \U0001F468\u200D\U0001F469\u200D\U0001F467",
      "ctrl\x00a\x01b\x7fc\u200bd\ufeffe\ufffdf\u00adg", "tab\tnew\nline\rcr\x0bvt\x0cff",
      "nbsp\u00A0ideographic\u3000thin\u2009lsep\u2028psep\u2029nel\x85",
      "a" * 200, "a" * 201, "ab" * 101, "\u00E9" * 150 + "\u0301" * 60, "x" * 1000,
      "$5.00 ^caret^ `tick` ~tilde~ {brace} [bracket] <angle> |pipe| \\back\\",
      "\u00BFQu\u00E9? \u00A1S\u00ED! \u2014dash\u2014 \u201Cquoted\u201D",
      "\u00AB\u00BB \u3002\u3001 \u2E53 \u061F \u00B7",
      "\uFB01ne \uFB03ce \u0149 \u1E9E \u2126 \u212A \u00B5 \u0345 \u1F80",
      "[CLS] [SEP] [MASK] [UNK] [unused0]", "\U00020000\U0002A700\U0002F800\uF900 \u2F00",
      "d\u0307 \u0069\u0307 \u1E0D\u0307 Z\u0335\u0327a\u0336l\u0337g\u0338o",
  ]
  rng = random.Random(seed)
  pools = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x52F), (0x590, 0x6FF), (0x900, 0xDFF),
           (0x1E00, 0x1FFF), (0x2000, 0x206F), (0x2070, 0x2BFF), (0x3000, 0x30FF),
           (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xF900, 0xFFFD),
           (0x1F300, 0x1FAFF), (0x20000, 0x2FA1F), (0x0, 0x1F), (0x7F, 0x9F)]
  while len(texts) < count:
    chars = []
    for _ in range(rng.randint(1, 40)):
      if rng.random() < 0.5:
        chars.append(rng.choice("abcdefghijklmnopqrstuvwxyz  ,.!'-"))
      else:
        low, high = rng.choice(pools)
        cp = rng.randint(low, high)
        if not 0xD800 <= cp <= 0xDFFF:
          chars.append(chr(cp))
    texts.append("".join(chars))
  return texts


def shared_texts(shared_dir):
  """Every line of the shared English corpus and of the Chinese seed texts."""
  paths = [os.path.join(shared_dir, "data", "corpus", "fortunes_corpus.txt")]
  paths += sorted(glob.glob(os.path.join(shared_dir, "seeds", "*.txt")))
  texts = []
  for path in paths:
    with open(path, encoding="utf-8") as f:
      texts.extend(line.rstrip("\n") for line in f)
  return texts


ORACLE_TOKENIZE = """
import json, sys
import original_bert
from bert import tokenization
vocab_file, texts_file, out_file = sys.argv[1:]
texts = json.load(open(texts_file, encoding="utf-8"))
out = {}
for lower in (True, False):
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=lower)
  out[str(lower)] = [tokenizer.tokenize(text) for text in texts]
json.dump(out, open(out_file, "w", encoding="utf-8"))
"""


def original_tokens(tmp_path, vocab_file, texts):
  """{"True": [...], "False": [...]}: the original's tokens of `texts` per casing."""
  texts_file, out_file = tmp_path / "texts.json", tmp_path / "tokens.json"
  texts_file.write_text(json.dumps(texts), encoding="utf-8")
  oracle.run(ORACLE_TOKENIZE, vocab_file, texts_file, out_file)
  return json.loads(out_file.read_text(encoding="utf-8"))


def assert_same_tokens(texts, ours, theirs):
  mismatches = [(text, mine, orig) for text, mine, orig in zip(texts, ours, theirs)
                if mine != orig]
  assert not mismatches, f"{len(mismatches)} texts differ, first: {mismatches[:3]}"


@pytest.mark.parametrize("lower", [True, False])
def test_tiny_vocab_examples(tmp_path, lower):
  tokenizer = tokenization.FullTokenizer(write_vocab(tmp_path, TINY_VOCAB), do_lower_case=lower)
  if lower:
    assert tokenizer.tokenize("UNwant\u00E9d,running") == [
        "un", "##want", "##ed", ",", "runn", "##ing"]
    assert tokenizer.tokenize("Caf\u00C9!") == ["ca", "##fe", "!"]
  else:
    assert tokenizer.tokenize("Hello unaffable") == ["Hello", "un", "##aff", "##able"]
    assert tokenizer.tokenize("Caf\u00E9 \u00E9") == ["[UNK]", "\u00E9"]
  assert tokenizer.tokenize("中国abc\x00\ufffd") == ["中", "国", "a", "##b", "##c"]
  assert tokenizer.tokenize("a" * 201) == ["[UNK]"]
  assert tokenizer.convert_ids_to_tokens(tokenizer.convert_tokens_to_ids(["the", "[MASK]"])) == [
      "the", "[MASK]"]


def test_vocab_keeps_first_id_of_repeated_tokens(tmp_path):
  vocab = tokenization.load_vocab(write_vocab(tmp_path, ["[PAD]", " a ", "b", "a", "c"]))
  assert list(vocab.items()) == [("[PAD]", 0), ("a", 1), ("b", 2), ("c", 3)]


def test_missing_vocab_names_the_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.txt"):
    tokenization.FullTokenizer(str(tmp_path / "nope.txt"))


@pytest.mark.parametrize("lower,checkpoint,bad", [
    (False, "gs://b/uncased_L-12_H-768_A-12/bert_model.ckpt", True),
    (True, "/m/cased_L-12_H-768_A-12/bert_model.ckpt", True),
    (True, "/m/multi_cased_L-12_H-768_A-12/bert_model.ckpt-100", True),
    (True, "/m/uncased_L-12_H-768_A-12/bert_model.ckpt", False),
    (False, "/m/my_model/bert_model.ckpt", False),
    (False, "", False),
    (False, "model.ckpt", False),
])
def test_validate_case_matches_checkpoint(lower, checkpoint, bad):
  if bad:
    with pytest.raises(ValueError, match="--do_lower_case"):
      tokenization.validate_case_matches_checkpoint(lower, checkpoint)
  else:
    tokenization.validate_case_matches_checkpoint(lower, checkpoint)


def test_validate_case_matches_original(tmp_path):
  cases = [[lower, f"/x/{name}/bert_model.ckpt"] for lower in (True, False)
           for name in ("uncased_L-24_H-1024_A-16", "chinese_L-12_H-768_A-12",
                        "cased_L-24_H-1024_A-16", "multi_cased_L-12_H-768_A-12", "other")]
  script = """
import json, sys
import original_bert
from bert import tokenization
out = []
for lower, path in json.loads(sys.argv[1]):
  try:
    tokenization.validate_case_matches_checkpoint(lower, path)
    out.append(None)
  except ValueError as e:
    out.append(str(e))
print(json.dumps(out))
"""
  theirs = json.loads(oracle.run(script, json.dumps(cases)).strip().splitlines()[-1])
  ours = []
  for lower, path in cases:
    try:
      tokenization.validate_case_matches_checkpoint(lower, path)
      ours.append(None)
    except ValueError as e:
      ours.append(str(e))
  assert ours == theirs


def test_full_tokenizer_matches_original(tmp_path, shared_dir):
  """Both casings, the shared corpus, the Chinese seeds and random Unicode, real vocab."""
  vocab_file = os.path.join(shared_dir, "models", "minilm-l6-h384-uncased", "vocab.txt")
  texts = shared_texts(shared_dir) + varied_texts()
  theirs = original_tokens(tmp_path, vocab_file, texts)
  for lower in (True, False):
    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=lower)
    assert_same_tokens(texts, [tokenizer.tokenize(text) for text in texts], theirs[str(lower)])


def test_full_tokenizer_matches_original_tiny_vocab(tmp_path):
  """Without ../shared: the varied sample with a tiny vocabulary (many [UNK])."""
  vocab_file = write_vocab(tmp_path, TINY_VOCAB)
  texts = varied_texts(count=1500, seed=1)
  theirs = original_tokens(tmp_path, vocab_file, texts)
  for lower in (True, False):
    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=lower)
    assert_same_tokens(texts, [tokenizer.tokenize(text) for text in texts], theirs[str(lower)])


INVALID_UTF8 = [b"ab\xffcd", b"caf\xc3", b"\xe4\xb8 x", b"\xed\xa0\x80y", b"\xf4\x90\x80\x80z",
                b"\xc0\xafq", b"ok \xc3\xa9t\xc3\xa9"]


def in_graph_ids(tokenizer, texts):
  return tokenizer(tf.constant([tokenization.convert_to_unicode(text).encode("utf-8")
                                if isinstance(text, str) else text for text in texts])).to_list()


def python_ids(tokenizer, texts):
  return [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)) for text in texts]


@pytest.mark.parametrize("lower", [True, False])
def test_in_graph_matches_full_tokenizer(shared_dir, lower):
  """The same sample as the parity test above, plus invalid UTF-8, real vocab."""
  vocab_file = os.path.join(shared_dir, "models", "minilm-l6-h384-uncased", "vocab.txt")
  texts = shared_texts(shared_dir) + varied_texts() + INVALID_UTF8
  full = tokenization.FullTokenizer(vocab_file, do_lower_case=lower)
  in_graph = graph_tokenization.InGraphTokenizer(vocab_file, do_lower_case=lower)
  assert_same_tokens(texts, in_graph_ids(in_graph, texts), python_ids(full, texts))


@pytest.mark.parametrize("lower", [True, False])
def test_in_graph_matches_full_tokenizer_tiny_vocab(tmp_path, lower):
  vocab_file = write_vocab(tmp_path, TINY_VOCAB)
  texts = varied_texts(count=1500, seed=1) + INVALID_UTF8
  full = tokenization.FullTokenizer(vocab_file, do_lower_case=lower)
  in_graph = graph_tokenization.InGraphTokenizer(vocab_file, do_lower_case=lower)
  assert_same_tokens(texts, in_graph_ids(in_graph, texts), python_ids(full, texts))


def test_in_graph_known_difference_unicode_version(tmp_path):
  """Characters unassigned in Python's Unicode database (14.0 for Python 3.11) but
  assigned in the newer tables of TensorFlow's regex and ICU ops: U+11F00 (Kawi,
  a combining mark, Unicode 15.0) is stripped in-graph when lower-casing, kept by
  FullTokenizer. Once Python knows the character the two agree again."""
  vocab_file = write_vocab(tmp_path, TINY_VOCAB)
  full = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  in_graph = graph_tokenization.InGraphTokenizer(vocab_file, do_lower_case=True)
  text = "a\U00011F00b"
  if unicodedata.category(text[1]) == "Cn":
    assert python_ids(full, [text]) == [[1]]  # one unknown word: [UNK]
    assert in_graph_ids(in_graph, [text]) == [[23, 24]]  # "ab": a ##b
  else:
    assert in_graph_ids(in_graph, [text]) == python_ids(full, [text])


def test_in_graph_shapes_and_errors(tmp_path):
  vocab_file = write_vocab(tmp_path, TINY_VOCAB)
  in_graph = graph_tokenization.InGraphTokenizer(vocab_file)
  ids = in_graph(tf.constant([["the unaffable", ""], ["hello", "中国!"]]))
  assert ids.dtype == tf.int64
  assert ids.to_list() == [[[5, 6, 7, 8], []], [[26], [21, 22, 16]]]
  with pytest.raises(ValueError, match=r"\[UNK\]"):
    graph_tokenization.InGraphTokenizer(write_vocab(tmp_path, ["[PAD]", "a"]))


def test_in_graph_in_tf_data_and_saved_model(tmp_path):
  import tensorflow_text  # noqa: F401  (registers the ops the loaded model needs)
  vocab_file = write_vocab(tmp_path, TINY_VOCAB)
  full = tokenization.FullTokenizer(vocab_file)
  texts = ["UNwant\u00E9d,running", "Hello World!", "中国abc"]
  expected = python_ids(full, texts)

  dataset = tf.data.Dataset.from_tensor_slices(texts).batch(2).map(
      graph_tokenization.InGraphTokenizer(vocab_file))
  assert [row for batch in dataset for row in batch.to_list()] == expected

  module = tf.Module()
  module.tokenizer = graph_tokenization.InGraphTokenizer(vocab_file)
  module.tokenize = tf.function(module.tokenizer,
                                input_signature=[tf.TensorSpec([None], tf.string)])
  tf.saved_model.save(module, str(tmp_path / "saved"))
  loaded = tf.saved_model.load(str(tmp_path / "saved"))
  assert loaded.tokenize(tf.constant(texts)).to_list() == expected


@pytest.mark.slow
@pytest.mark.parametrize("lower", [True, False])
def test_in_graph_differs_only_on_characters_python_does_not_know(shared_dir, lower):
  """Every code point, between two letters: the only differences are the ones pinned
  in test_in_graph_known_difference_unicode_version (category Cn in Python)."""
  vocab_file = os.path.join(shared_dir, "models", "minilm-l6-h384-uncased", "vocab.txt")
  full = tokenization.FullTokenizer(vocab_file, do_lower_case=lower)
  in_graph = graph_tokenization.InGraphTokenizer(vocab_file, do_lower_case=lower)
  chars = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
  for start in range(0, len(chars), 100000):
    texts = [f"a{char}b" for char in chars[start:start + 100000]]
    for text, ours, theirs in zip(texts, in_graph_ids(in_graph, texts), python_ids(full, texts)):
      assert ours == theirs or unicodedata.category(text[1]) == "Cn", ascii(text)
