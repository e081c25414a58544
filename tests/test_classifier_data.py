"""Classifier data: every task layout, features as the original, errors with file:line."""

import json

import numpy as np
import pytest

import oracle
from modeling.data import classifier_data
from modeling.data.classifier_data import InputExample, convert_example, get_processor
from modeling.data.tokenization import FullTokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat",
         "a", "dog", "ran", "is", "good", "bad", "##s", "it", ".", "was", "not", "very"]


@pytest.fixture
def tokenizer(tmp_path):
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("\n".join(VOCAB) + "\n")
  return FullTokenizer(str(vocab), do_lower_case=True)


def _write(directory, name, rows):
  path = directory / name
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("".join("\t".join(row) + "\n" for row in rows), encoding="utf-8")


# (task, {file: rows}, {split: (first text_a, first text_b, first label, count)})
LAYOUTS = {
    "cola": ({
        "train.tsv": [["gj04", "1", "", "The cat sat."], ["gj04", "0", "*", "cat the sat."]],
        "dev.tsv": [["gj04", "1", "", "A dog ran."]],
        "test.tsv": [["index", "sentence"], ["0", "The dog sat."]],
    }, {"train": ("The cat sat.", None, "1", 2), "dev": ("A dog ran.", None, "1", 1),
        "test": ("The dog sat.", None, "0", 1)}),
    "mrpc": ({
        "train.tsv": [["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                      ["1", "1", "2", "the cat sat", "a cat sat"]],
        "dev.tsv": [["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                    ["0", "3", "4", "the dog", "a mat"]],
        "test.tsv": [["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                     ["0", "5", "6", "it is good", "it is bad"]],
    }, {"train": ("the cat sat", "a cat sat", "1", 1), "test": ("it is good", "it is bad", "0", 1)}),
    "mnli": ({
        "train.tsv": [["index"] + [f"c{i}" for i in range(10)] + ["gold_label"],
                      ["7", "x", "x", "x", "x", "x", "x", "x", "the cat", "a cat", "y",
                       "entailment"]],
        "dev_matched.tsv": [["index"] + [f"c{i}" for i in range(14)] + ["gold_label"],
                            ["8"] + ["x"] * 7 + ["the dog", "a mat"] + ["y"] * 6 + ["neutral"]],
        "test_matched.tsv": [["index"] + [f"c{i}" for i in range(9)],
                             ["9"] + ["x"] * 7 + ["it is", "it was"]],
    }, {"train": ("the cat", "a cat", "entailment", 1), "dev": ("the dog", "a mat", "neutral", 1),
        "test": ("it is", "it was", "contradiction", 1)}),
    "xnli": ({
        "multinli/multinli.train.zh.tsv": [["premise", "hypo", "label"],
                                           ["猫坐着", "猫", "contradictory"]],
        "xnli.dev.tsv": [["language", "gold_label"] + [f"c{i}" for i in range(6)],
                         ["en", "neutral", "x", "x", "x", "x", "the cat", "a cat"],
                         ["zh", "entailment", "x", "x", "x", "x", "狗跑", "狗"]],
    }, {"train": ("猫坐着", "猫", "contradiction", 1), "dev": ("狗跑", "狗", "entailment", 1)}),
    "sst-2": ({
        "train.tsv": [["sentence", "label"], ["it is good", "1"], ["it is bad", "0"]],
        "test.tsv": [["index", "sentence"], ["0", "very good"]],
    }, {"train": ("it is good", None, "1", 2), "test": ("very good", None, None, 1)}),
    "qqp": ({
        "train.tsv": [["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                      ["1", "2", "3", "is it good", "is it bad", "0"]],
        "test.tsv": [["id", "question1", "question2"], ["4", "a cat", "a dog"]],
    }, {"train": ("is it good", "is it bad", "0", 1), "test": ("a cat", "a dog", None, 1)}),
    "qnli": ({
        "train.tsv": [["index", "question", "sentence", "label"],
                      ["0", "is it", "it is", "entailment"]],
    }, {"train": ("is it", "it is", "entailment", 1)}),
    "rte": ({
        "dev.tsv": [["index", "sentence1", "sentence2", "label"],
                    ["0", "a cat sat", "a cat", "not_entailment"]],
        "test.tsv": [["index", "sentence1", "sentence2"], ["0", "a dog", "the dog"]],
    }, {"dev": ("a cat sat", "a cat", "not_entailment", 1), "test": ("a dog", "the dog", None, 1)}),
    "wnli": ({
        "train.tsv": [["index", "sentence1", "sentence2", "label"], ["0", "it ran", "a dog ran", "1"]],
    }, {"train": ("it ran", "a dog ran", "1", 1)}),
    "sts-b": ({
        "train.tsv": [["index", "genre", "filename", "year", "old_index", "source1", "source2",
                       "sentence1", "sentence2", "score"],
                      ["0", "g", "f", "2012", "1", "s", "s", "a cat", "the cat", "4.250"]],
        "test.tsv": [["index", "genre", "filename", "year", "old_index", "source1", "source2",
                      "sentence1", "sentence2"], ["0", "g", "f", "2012", "1", "s", "s", "a", "b"]],
    }, {"train": ("a cat", "the cat", 4.25, 1), "test": ("a", "b", None, 1)}),
}


@pytest.mark.parametrize("task", sorted(LAYOUTS))
def test_task_layouts(tmp_path, task):
  files, expected = LAYOUTS[task]
  for name, rows in files.items():
    _write(tmp_path, name, rows)
  processor = get_processor(task.upper(), str(tmp_path))
  for split, (text_a, text_b, label, count) in expected.items():
    examples = processor.get_examples(str(tmp_path), split)
    assert len(examples) == count
    assert (examples[0].text_a, examples[0].text_b, examples[0].label) == (text_a, text_b, label)


def test_unknown_task_lists_known_ones():
  with pytest.raises(ValueError, match=r"unknown task_name 'glue'.*cola.*mnli.*tsv"):
    get_processor("glue", ".")


def test_malformed_row_names_file_and_line(tmp_path):
  _write(tmp_path, "train.tsv", [["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                                 ["1", "1", "2", "a", "b"], ["1", "only three", "x"]])
  with pytest.raises(ValueError, match=r"train.tsv:3: expected at least 4 tab-separated"):
    get_processor("mrpc", str(tmp_path)).get_examples(str(tmp_path), "train")


def test_unknown_label_names_file_and_line(tmp_path):
  _write(tmp_path, "train.tsv", [["sentence", "label"], ["good", "1"], ["bad", "positive"]])
  with pytest.raises(ValueError, match=r"train.tsv:3: unknown label 'positive'"):
    get_processor("sst-2", str(tmp_path)).get_examples(str(tmp_path), "train")


def test_generic_tsv(tmp_path):
  _write(tmp_path, "train.tsv", [["label", "text"], ["work", "a cat"], ["art", "the mat"],
                                 ["work", "a dog"]])
  _write(tmp_path, "dev.tsv", [["label", "text"], ["art", "it is good"]])
  _write(tmp_path, "test.tsv", [["text"], ["the cat sat"]])
  processor = get_processor("tsv", str(tmp_path))
  assert processor.get_labels() == ["art", "work"]
  assert processor.get_examples(str(tmp_path), "dev")[0].label == "art"
  test = processor.get_examples(str(tmp_path), "test")
  assert (test[0].text_a, test[0].label) == ("the cat sat", None)


def test_generic_tsv_two_text_columns(tmp_path):
  _write(tmp_path, "train.tsv", [["premise", "hypothesis", "label"], ["a cat", "a dog", "no"]])
  example = get_processor("tsv", str(tmp_path)).get_examples(str(tmp_path), "train")[0]
  assert (example.text_a, example.text_b, example.label) == ("a cat", "a dog", "no")


@pytest.mark.parametrize("rows, message", [
    ([["text", "label"], ["a", "b", "c"]], r"train.tsv:2: found 3 columns, the header has 2"),
    ([["a", "b", "c", "label"]], r"train.tsv:1: the header .* one or two text columns"),
    ([["text", "category"], ["a", "b"]], r"train.tsv:1: .* no `label` column"),
])
def test_generic_tsv_errors(tmp_path, rows, message):
  _write(tmp_path, "train.tsv", rows)
  with pytest.raises(ValueError, match=message):
    get_processor("tsv", str(tmp_path)).get_examples(str(tmp_path), "train")


def test_generic_tsv_labels_are_stripped_and_never_empty(tmp_path):
  _write(tmp_path, "train.tsv", [["label", "text"], ["science ", "a"], [" art", "b"],
                                 ["science", "c"]])
  processor = get_processor("tsv", str(tmp_path))
  assert processor.get_labels() == ["art", "science"]
  assert [e.label for e in processor.get_examples(str(tmp_path), "train")] == [
      "science", "art", "science"]
  _write(tmp_path, "train.tsv", [["label", "text"], ["art", "a"], [" ", "b"]])
  with pytest.raises(ValueError, match=r"train.tsv:3: empty label"):
    get_processor("tsv", str(tmp_path)).get_labels()


@pytest.mark.parametrize("task", ["tsv", "sst-2"])
def test_a_file_with_only_a_header_is_refused(tmp_path, task):
  _write(tmp_path, "test.tsv", [["index", "text"] if task == "sst-2" else ["text"]])
  with pytest.raises(ValueError, match=r"test.tsv: no examples"):
    get_processor(task, str(tmp_path)).get_examples(str(tmp_path), "test")


def test_non_utf8_names_file_and_line_and_a_bom_is_accepted(tmp_path):
  (tmp_path / "train.tsv").write_bytes(b"\xef\xbb\xbflabel\ttext\nart\tcaf\xc3\xa9\n"
                                       b"art\tna\xefve\n")
  with pytest.raises(ValueError, match=r"train.tsv:3: not valid UTF-8 \(byte 0xef\)"):
    get_processor("tsv", str(tmp_path)).get_examples(str(tmp_path), "train")
  (tmp_path / "train.tsv").write_bytes(b"\xef\xbb\xbflabel\ttext\nart\tcaf\xc3\xa9\n")
  example, = get_processor("tsv", str(tmp_path)).get_examples(str(tmp_path), "train")
  assert (example.label, example.text_a) == ("art", "caf\u00e9")


def test_dev_label_unseen_in_train(tmp_path):
  _write(tmp_path, "train.tsv", [["label", "text"], ["art", "a"]])
  _write(tmp_path, "dev.tsv", [["label", "text"], ["art", "a"], ["science", "b"]])
  with pytest.raises(ValueError, match=r"dev.tsv:3: unknown label 'science'"):
    get_processor("tsv", str(tmp_path)).get_examples(str(tmp_path), "dev")


def test_missing_file_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="dev_matched.tsv"):
    get_processor("mnli", str(tmp_path)).get_examples(str(tmp_path), "dev")


def test_truncate_seq_pair_pops_the_longer_then_b():
  a, b = list("abcde"), list("vwxyz")
  classifier_data.truncate_seq_pair(a, b, 7)
  assert (a, b) == (list("abcd"), list("vwx"))
  a, b = list("abcdefgh"), list("yz")
  classifier_data.truncate_seq_pair(a, b, 6)
  assert (a, b) == (list("abcd"), list("yz"))


def test_features_single_and_pair(tokenizer):
  single = convert_example(InputExample("0", "The cats sat", None, "b"), ["a", "b"], 8,
                           tokenizer)
  ids = lambda tokens: tokenizer.convert_tokens_to_ids(tokens)  # noqa: E731
  assert single.input_ids == ids(["[CLS]", "the", "cat", "##s", "sat", "[SEP]"]) + [0, 0]
  assert single.input_mask == [1] * 6 + [0, 0]
  assert single.segment_ids == [0] * 8
  assert single.label_id == 1
  pair = convert_example(InputExample("1", "the cat sat on the mat", "a dog ran", "a"),
                         ["a", "b"], 10, tokenizer)
  assert pair.input_ids == ids(["[CLS]", "the", "cat", "sat", "on", "[SEP]", "a", "dog",
                                "ran", "[SEP]"])
  assert pair.segment_ids == [0] * 6 + [1] * 4
  unlabelled = convert_example(InputExample("2", "it", None, None), ["a", "b"], 4, tokenizer)
  assert unlabelled.label_id == 0


ORACLE_SCRIPT = """
import json, sys
import original_bert
from bert import run_classifier, tokenization
data_dir, vocab, out = sys.argv[1:4]
tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=True)
results = {}
for task, cls in (("cola", run_classifier.ColaProcessor), ("mrpc", run_classifier.MrpcProcessor),
                  ("mnli", run_classifier.MnliProcessor), ("xnli", run_classifier.XnliProcessor)):
  processor = cls()
  task_dir = data_dir + "/" + task
  rows = []
  for split, read in (("train", processor.get_train_examples), ("dev", processor.get_dev_examples)):
    for i, example in enumerate(read(task_dir)):
      f = run_classifier.convert_single_example(i, example, processor.get_labels(), 12, tokenizer)
      rows.append([split, f.input_ids, f.input_mask, f.segment_ids, f.label_id])
  results[task] = rows
json.dump(results, open(out, "w"))
"""


def test_features_match_original_processors(tmp_path, tokenizer):
  """CoLA, MRPC, MNLI and XNLI: the original processors give the same features."""
  for task in ("cola", "mrpc", "mnli", "xnli"):
    for name, rows in LAYOUTS[task][0].items():
      _write(tmp_path / "data" / task, name, rows)
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("\n".join(VOCAB) + "\n")
  oracle.run(ORACLE_SCRIPT, tmp_path / "data", vocab, tmp_path / "original.json")
  original = json.loads((tmp_path / "original.json").read_text())
  for task, rows in original.items():
    processor = get_processor(task, str(tmp_path / "data" / task))
    ours = []
    for split in ("train", "dev"):
      for example in processor.get_examples(str(tmp_path / "data" / task), split):
        f = convert_example(example, processor.get_labels(), 12, tokenizer)
        ours.append([split, f.input_ids, f.input_mask, f.segment_ids, f.label_id])
    assert ours == rows, task
    assert np.asarray([r[1] for r in rows]).shape[1] == 12
