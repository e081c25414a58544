"""CoNLL reading, tag schemes and NER features: every word gets exactly one prediction."""

import random

import numpy as np
import pytest

from modeling.data import ner_data
from modeling.data.tokenization import FullTokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "john", "mary", "smith", "paris",
         "rome", "bos", "acme", "the", "met", "in", "lives", "a", "and", ".", ",", "##ton",
         "##son", "##s", "##ed", "##ing"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
  path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
  path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
  return FullTokenizer(str(path))


def write(tmp_path, text, name="data.conll"):
  path = tmp_path / name
  path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
  return str(path)


def test_reads_conll2003_and_wnut_layouts(tmp_path):
  conll2003 = ("-DOCSTART- -X- -X- O\r\n\r\nEU NNP B-NP I-ORG\r\nrejects VBZ B-VP O\r\n"
               "German JJ B-NP I-MISC\r\n \t \r\n-DOCSTART- -X- -X- O\r\n"
               "Peter NNP B-NP I-PER\r\n")
  sentences = ner_data.read_conll(write(tmp_path, conll2003))
  assert [(s.words, s.tags, s.lines) for s in sentences] == [
      (["EU", "rejects", "German"], ["I-ORG", "O", "I-MISC"], [3, 4, 5]),
      (["Peter"], ["I-PER"], [8])]
  wnut = "@paulwalk\tO\nEmpire\tB-location\n\t\nState\tI-location\n"
  sentences = ner_data.read_files(write(tmp_path, wnut, "a.conll") + ","
                                  + write(tmp_path, "x O\n", "b.conll"))
  assert [s.words for s in sentences] == [["@paulwalk", "Empire"], ["State"], ["x"]]
  assert [s.path.rsplit("/", 1)[1] for s in sentences] == ["a.conll", "a.conll", "b.conll"]
  untagged = ner_data.read_conll(write(tmp_path, "a\nb\n\nc\n"), require_tags=False)
  assert [(s.words, s.tags) for s in untagged] == [(["a", "b"], None), (["c"], None)]
  # A word may hold characters str.splitlines would break at.
  assert ner_data.read_conll(write(tmp_path, "a\u2028b O\n"))[0].words == ["a\u2028b"]


@pytest.mark.parametrize("text, require_tags, message", [
    ("a O\nb\n", True, "data.conll:2: the word 'b' has no tag"),
    ("a\nb O\n", False, "data.conll:2: a tag after lines without tags"),
    ("", True, "data.conll: no sentences (the file is empty)"),
    ("\n \n-DOCSTART- O\n", True, "data.conll: no sentences"),
    (b"a O\n\xff O\n", True, "data.conll:2: not valid UTF-8 (byte 0xff)"),
    # A CoNLL-2003 line that lost its NER column: its chunk tag would become an entity.
    ("EU NNP B-NP I-ORG\nrejects VBZ I-NP\n", True,
     "data.conll:2: 3 columns ('rejects VBZ I-NP'), but line 1 has 4"),
])
def test_bad_files_name_file_and_line(tmp_path, text, require_tags, message):
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
    ner_data.read_conll(write(tmp_path, text), require_tags)


def test_missing_file_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.conll"):
    ner_data.read_conll(str(tmp_path / "nope.conll"))


def test_tag_checks_name_file_and_line(tmp_path):
  sentences = ner_data.read_conll(write(tmp_path, "a O\nb B-PER\n\nc E-PER\n"))
  with pytest.raises(ValueError, match=r"data.conll:4: 'E-PER' is not a tag of the IOB2 "):
    ner_data.check_tags(sentences, "iob2")
  ner_data.check_tags(sentences, "bioes")
  with pytest.raises(ValueError, match=r"data.conll:2: the tag 'B-PER' is not among the 2 "
                                       r"labels \(E-PER, O\)"):
    ner_data.check_tags(sentences, "bioes", ["O", "E-PER"])
  for bad in ("PER", "B-", "X-PER", "BB-PER"):
    with pytest.raises(ValueError, match=f"'{bad}' is not a tag"):
      ner_data.check_tag(bad, "bioes", "here")


@pytest.mark.parametrize("tags, scheme", [
    ([["B-PER", "I-PER", "O", "B-LOC"]], "iob2"),
    ([["I-PER", "I-PER", "B-PER", "O", "I-LOC"]], "iob1"),
    ([["B-PER", "E-PER", "S-LOC"]], "bioes"),
    ([["O", "O"]], "iob2"),
    # Sloppy IOB2 (an I- after O, and B- chunk starts): not IOB1.
    ([["O", "I-PER"], ["B-LOC", "O"]], "iob2"),
])
def test_detect_scheme(tags, scheme):
  assert ner_data.detect_scheme(tags) == scheme


def test_read_labels(tmp_path):
  assert ner_data.read_labels(write(tmp_path, "O\n\nB-PER\nI-PER\n")) == ["O", "B-PER", "I-PER"]
  with pytest.raises(ValueError, match="labels.txt:3: the label 'O' is listed twice"):
    ner_data.read_labels(write(tmp_path, "O\nB-X\nO\n", "labels.txt"))


def random_sentences(rng, count, max_words):
  """Sentences of multi-piece words ("boston" = bos ##ton), [UNK] words, words
  empty after cleaning (a control character, a lone combining mark), punctuation."""
  words = ["John", "Johnson", "mary", "Boston", "bostons", "zzq", "\u200b", "\u0301", "Paris",
           "rome", ",", "the", "acmeing", "smith.", "\x07", "lives"]
  tags = ["O", "B-PER", "I-PER", "B-LOC"]
  sentences = []
  for _ in range(count):
    n = rng.randint(1, max_words)
    sentences.append(ner_data.Sentence([rng.choice(words) for _ in range(n)],
                                       [rng.choice(tags) for _ in range(n)], "x",
                                       list(range(n))))
  return sentences


def max_context_window(position, windows):
  """Reference: the window with the largest min(left, right) context, earliest on ties."""
  best, best_context = None, -1
  for index, (start, length) in enumerate(windows):
    if start <= position < start + length:
      context = min(position - start, start + length - 1 - position)
      if context > best_context:
        best, best_context = index, context
  return best


@pytest.mark.parametrize("max_seq_length, stride", [(8, 3), (8, 6), (12, 10), (16, 1), (64, 31)])
def test_every_word_gets_exactly_one_prediction_in_order(tokenizer, max_seq_length, stride):
  rng = random.Random(max_seq_length * 100 + stride)
  sentences = random_sentences(rng, 60, 25)
  label_ids = {"O": 0, "B-PER": 1, "I-PER": 2, "B-LOC": 3}
  features = ner_data.features(sentences, tokenizer, label_ids, max_seq_length, stride)
  arrays = features.arrays
  assert len(features.word_window) == len(features.word_column) == sum(
      len(s.words) for s in sentences)
  unk = tokenizer.vocab["[UNK]"]
  window_length = max_seq_length - 2
  word = 0
  next_window = 0  # Windows come sentence after sentence.
  for sentence in sentences:
    pieces = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(w)) or [unk]
              for w in sentence.words]
    flat = [p for word_pieces in pieces for p in word_pieces]
    # The reference windows: starts 0, stride, ... until one reaches the end.
    starts = [0]
    while starts[-1] + window_length < len(flat):
      starts.append(starts[-1] + stride)
    windows = [(s, min(window_length, len(flat) - s)) for s in starts]
    rows = range(next_window, next_window + len(windows))
    for row, (start, length) in zip(rows, windows):
      assert arrays["input_ids"][row, 0] == tokenizer.vocab["[CLS]"]
      assert list(arrays["input_ids"][row, 1:1 + length]) == flat[start:start + length]
      assert arrays["input_ids"][row, 1 + length] == tokenizer.vocab["[SEP]"]
      assert arrays["input_mask"][row].sum() == length + 2
    covered = set()
    for start, length in windows:
      covered.update(range(start, start + length))
    assert covered == set(range(len(flat)))  # no piece is skipped
    first = 0
    for word_pieces, tag in zip(pieces, sentence.tags):
      window = max_context_window(first, windows)
      row, column = features.word_window[word], features.word_column[word]
      assert (row, column) == (next_window + window, 1 + first - windows[window][0])
      assert arrays["input_ids"][row, column] == word_pieces[0]
      assert arrays["label_ids"][row, column] == label_ids[tag]
      assert arrays["label_weights"][row, column] == 1.0
      first += len(word_pieces)
      word += 1
    # Training labels: each window labels exactly the first pieces it holds.
    firsts = np.cumsum([0] + [len(p) for p in pieces[:-1]])
    for row, (start, length) in zip(rows, windows):
      labelled = set(np.nonzero(arrays["label_weights"][row])[0])
      assert labelled == {1 + f - start for f in firsts if start <= f < start + length}
    next_window += len(windows)
  assert next_window == len(arrays["input_ids"])
  assert np.all(np.diff(features.word_window) >= 0)  # words in order


def test_untagged_sentences_and_training_rows(tokenizer):
  sentences = random_sentences(random.Random(3), 10, 30)
  untagged = [ner_data.Sentence(s.words, None, "x", s.lines) for s in sentences]
  features = ner_data.features(untagged, tokenizer, {"O": 0}, 10, 4)
  assert features.arrays["label_weights"].sum() == 0
  tagged = ner_data.features(sentences, tokenizer, {"O": 0, "B-PER": 1, "I-PER": 2,
                                                    "B-LOC": 3}, 10, 4)
  rows = ner_data.training_arrays(tagged)
  assert np.all(rows["label_weights"].sum(1) > 0)
  # A window inside one long word holds no first piece: it is not trained on.
  long_word = [ner_data.Sentence(["bos" + "ton" * 10, "john"], ["B-LOC", "O"], "x", [1, 2])]
  features = ner_data.features(long_word, tokenizer, {"O": 0, "B-LOC": 1}, 6, 4)
  assert len(features.arrays["input_ids"]) > len(ner_data.training_arrays(features)["input_ids"])
  assert ner_data.split_by_sentence([1, 2, 3], long_word + [long_word[0]]) == [[1, 2], [3]]
