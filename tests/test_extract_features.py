"""extract_features.py against the original's, which runs unchanged as the oracle.

The oracle process (original_extract_features.py) runs the original
`bert.extract_features.main` itself, with a stand-in for the TPUEstimator that TF 2
lacks, and records the raw layer outputs before the original rounds them.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import tensorflow as tf
import pytest

import oracle
from modeling import BertModel, MaskedLMHead, NextSentenceHead, checkpoint
from modeling.data.tokenization import FullTokenizer
from modeling.model.config import BertConfig
from modeling.tasks import feature_extraction
from tiny import TINY_CONFIG, tiny_config

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ORIGINAL_SCRIPT = os.path.join(oracle.TESTS_DIR, "original_extract_features.py")

# Pairs, the last " ||| " splitting, truncation of single lines and of pairs,
# blank and whitespace lines, unicode (accents, CJK, Cyrillic, emoji), CRLF.
LINES = [
    "The quick brown fox jumps over the lazy dog.",
    "Who was Jim Henson? ||| Jim Henson was a puppeteer.",
    "a ||| b ||| c",
    "",
    "   leading and trailing spaces   ",
    " ".join(["everything is relative, said the physicist"] * 12),
    "short ||| " + " ".join(["a much longer second segment of the pair"] * 8),
    " ".join(["the first segment goes on and on"] * 8) + " ||| then a second one",
    "Café Ünïcödé naïve résumé — “quotes” 北京大学 Привет мир 🙂 ok",
    "dangling separator |||",
    "||| starts with the separator",
    "CRLF line\r",
]
TINY_WORDS = ["the", "quick", "brown", "fox", "a", "b", "c", "who", "was", "jim", "is", "and",
              "on", "first", "second", "segment", "cafe", "unicode", "北", "京", "привет", ".",
              ",", "?", "|", "'", "ok", "line", "##s", "##e", "##d"]
TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + TINY_WORDS


def _write_input(path, lines):
  path.write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))
  return path


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
  """A tiny random checkpoint that also holds the pretraining heads (cls/*)."""
  root = tmp_path_factory.mktemp("tiny_model")
  (root / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
  config = dict(TINY_CONFIG, vocab_size=len(TINY_VOCAB))
  (root / "bert_config.json").write_text(json.dumps(config))
  model = BertModel(BertConfig.from_dict(config))
  modules = [model, MaskedLMHead(model.config, model.embedding_table),
             NextSentenceHead(model.config)]
  rng = np.random.RandomState(3)
  for variable in checkpoint.named_variables(modules).values():  # Non-trivial LayerNorms.
    variable.assign_add(rng.normal(0.0, 0.2, size=variable.shape).astype(np.float32))
  checkpoint.save(root / "bert_model.ckpt", modules)
  return root


def _model_flags(model_dir, **flags):
  return dict(vocab_file=str(model_dir / "vocab.txt"),
              bert_config_file=str(model_dir / "bert_config.json"),
              init_checkpoint=str(model_dir / "bert_model.ckpt"), **flags)


def run_original(tmp_path, input_file, flags):
  """Runs the original extract_features; returns (its output lines, raw layer outputs)."""
  spec = {"flags": dict(flags, input_file=str(input_file),
                        output_file=str(tmp_path / "original.jsonl")),
          "raw": str(tmp_path / "original_raw.npz")}
  (tmp_path / "spec.json").write_text(json.dumps(spec))
  with open(ORIGINAL_SCRIPT, encoding="utf-8") as reader:
    oracle.run(reader.read(), tmp_path / "spec.json")
  lines = (tmp_path / "original.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
  return lines, dict(np.load(spec["raw"]))


def run_script(*args, check=True):
  result = subprocess.run([sys.executable, os.path.join(REPO_DIR, "extract_features.py"),
                           *map(str, args)], capture_output=True, text=True, cwd=REPO_DIR)
  if check:
    assert result.returncode == 0, result.stderr[-5000:]
  return result


def _flag_args(flags):
  return [f"--{name}={value}" for name, value in flags.items()]


def _check_against_original(ours, original_lines, raw, layer_indexes):
  """ours: [(unique_id, tokens, values [L, T, H])]; the original's lines and raw outputs."""
  assert len(ours) == len(original_lines) == len(LINES)
  for (unique_id, tokens, values), line in zip(ours, original_lines):
    original = json.loads(line)
    assert unique_id == original["linex_index"]
    assert tokens == [f["token"] for f in original["features"]], unique_id
    assert values.shape == (len(layer_indexes), len(tokens), values.shape[-1])
    for j in range(len(layer_indexes)):
      np.testing.assert_allclose(values[j], raw[f"layer_output_{j}_{unique_id}"][:len(tokens)],
                                 rtol=0, atol=1e-5, err_msg=f"line {unique_id} layer {j}")
    # Our JSON writer on the original's values writes the original's bytes.
    original_values = np.stack([raw[f"layer_output_{j}_{unique_id}"][:len(tokens)]
                                for j in range(len(layer_indexes))])
    assert feature_extraction.json_line(unique_id, tokens, layer_indexes,
                                        original_values) == line


def test_tiny_checkpoint_matches_original(tiny_model_dir, tmp_path):
  """In-process, a batch size that leaves a partial batch, chunks of two batches."""
  input_file = _write_input(tmp_path / "input.txt", LINES)
  flags = _model_flags(tiny_model_dir, layers="1,-1,0,-2", max_seq_length=24, batch_size=5,
                       use_one_hot_embeddings=True)
  original_lines, raw = run_original(tmp_path, input_file, flags)

  model = BertModel(tiny_config(vocab_size=len(TINY_VOCAB)), use_one_hot_embeddings=True)
  report = checkpoint.load(flags["init_checkpoint"], model,
                           allow_missing=feature_extraction.UNUSED_VARIABLES)
  assert any(name.startswith("cls/") for name in report.unexpected)
  extractor = feature_extraction.FeatureExtractor(model, [1, -1, 0, -2], buckets=[8, 16, 24])
  tokenizer = FullTokenizer(flags["vocab_file"])
  ours = list(extractor.extract(feature_extraction.read_examples(input_file), tokenizer, 24, 4,
                                batches_per_chunk=2))
  _check_against_original(ours, original_lines, raw, [1, -1, 0, -2])
  # Batches of other lengths share one generalised graph after the first.
  assert extractor._run.experimental_get_tracing_count() <= 2
  assert any(len(tokens) == 24 for _, tokens, _ in ours)  # Truncation was exercised.
  assert "[UNK]" in ours[8][1]


def test_crop_to_bucket_keeps_the_smallest_bucket_holding_the_longest_row():
  mask = np.zeros([3, 24], np.int32)
  mask[0, :5], mask[1, :9], mask[2, :2] = 1, 1, 1
  batch = {"input_ids": tf.constant(mask * 7), "input_mask": tf.constant(mask),
           "segment_ids": tf.constant(mask), "is_real_example": tf.ones([3])}
  cropped = feature_extraction.crop_to_bucket(batch, [4, 12, 24])
  assert cropped["input_mask"].shape == (3, 12)  # 9 fits in 12.
  np.testing.assert_array_equal(cropped["input_ids"], mask[:, :12] * 7)
  assert cropped["is_real_example"].shape == (3,)
  assert feature_extraction.crop_to_bucket(batch, [9, 24])["input_mask"].shape == (3, 9)
  batch["input_mask"] = tf.ones([3, 24], tf.int32)
  assert feature_extraction.crop_to_bucket(batch, [4, 12, 24])["input_mask"].shape == (3, 24)


def test_script_matches_original_on_minilm(minilm_dir, tmp_path):
  """The script end to end on the real checkpoint: same lines as the original's."""
  model_dir = pathlib.Path(minilm_dir)
  input_file = _write_input(tmp_path / "input.txt", LINES)
  flags = _model_flags(model_dir, max_seq_length=32, batch_size=4)
  original_lines, raw = run_original(tmp_path, input_file, flags)
  output_file = tmp_path / "ours.jsonl"
  run_script(*_flag_args(flags), f"--input_file={input_file}", f"--output_file={output_file}")

  lines = output_file.read_text(encoding="utf-8").splitlines(keepends=True)
  ours = []
  for line in lines:
    parsed = json.loads(line)
    features = parsed["features"]
    assert list(parsed) == ["linex_index", "features"]
    assert all(list(f) == ["token", "layers"] for f in features)
    assert all([layer["index"] for layer in f["layers"]] == [-1, -2, -3, -4] for f in features)
    values = np.array([[layer["values"] for layer in f["layers"]] for f in features])  # [T, L, H]
    ours.append((parsed["linex_index"], [f["token"] for f in features],
                 values.transpose(1, 0, 2)))
  # Our values are rounded to 6 decimals here, so the tolerance allows for that.
  for (unique_id, tokens, values), line in zip(ours, original_lines):
    original = json.loads(line)
    assert tokens == [f["token"] for f in original["features"]]
    for j in range(4):
      np.testing.assert_allclose(values[j], raw[f"layer_output_{j}_{unique_id}"][:len(tokens)],
                                 rtol=0, atol=1e-5 + 1e-6)
  # Format: the same bytes as the original's, line for line, from the original's values.
  _check_against_original(ours, original_lines, raw, [-1, -2, -3, -4])
  assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


@pytest.fixture(scope="module")
def workspace(tiny_model_dir, tmp_path_factory):
  root = tmp_path_factory.mktemp("extract")
  _write_input(root / "input.txt", LINES[:3])
  (root / "empty.txt").write_bytes(b"")
  other = root / "other" / "bert_model.ckpt"
  checkpoint.save(other, BertModel(tiny_config(vocab_size=len(TINY_VOCAB), hidden_size=16)))
  return root


@pytest.mark.parametrize("changes, message", [
    ({"input_file": "missing.txt"}, "input_file not found: "),
    ({"input_file": "empty.txt"}, "empty.txt is empty: nothing to extract"),
    ({"layers": "-1,2"}, "--layers=-1,2: layer index 2 is out of range for a model of 2 layers "
                         "(use -2..1)"),
    ({"layers": "-1,last"}, "'last' is not a layer index"),
    ({"init_checkpoint": "other/bert_model.ckpt"},
     "shape or dtype mismatch: bert/embeddings/word_embeddings: checkpoint ["),
    ({"max_seq_length": 65}, "(got --max_seq_length 65)"),
    ({"output_file": "no/such/dir/out.jsonl"}, "no directory "),
    ({"length_buckets": "8,99"}, "--length_buckets=8,99: 99 is not in [1, --max_seq_length=16]"),
    ({"group_by_length": "false"},
     "--nogroup_by_length cannot take effect: this script does not train"),
])
def test_bad_input_is_named(tiny_model_dir, workspace, changes, message):
  flags = _model_flags(tiny_model_dir, input_file="input.txt", output_file="out.jsonl",
                       max_seq_length=16, layers="-1,-2")
  flags.update(changes)
  for name in ("input_file", "output_file", "init_checkpoint"):
    if not os.path.isabs(flags[name]):
      flags[name] = str(workspace / flags[name])
  result = run_script(*_flag_args(flags), check=False)
  assert result.returncode != 0
  assert message in result.stderr
  assert not os.path.exists(flags["output_file"])
  assert not [p for p in os.listdir(workspace) if ".tmp-" in p]


def test_script_writes_lines_in_order(tiny_model_dir, workspace, tmp_path):
  """More lines than a chunk of batches; the requested layers, in the requested order;
  the same values with every batch at --max_seq_length (--length_buckets=none)."""
  lines = [f"the fox {i % 7} ||| who was {'a ' * (i % 30)}" for i in range(170)]
  input_file = _write_input(tmp_path / "many.txt", lines)
  output_file = tmp_path / "many.jsonl"
  run_script(*_flag_args(_model_flags(tiny_model_dir, layers="0,-1,0")),
             f"--input_file={input_file}", f"--output_file={output_file}",
             "--batch_size=3", "--max_seq_length=16")
  parsed = [json.loads(line) for line in output_file.read_text().splitlines()]
  assert [p["linex_index"] for p in parsed] == list(range(170))
  tokenizer = FullTokenizer(str(tiny_model_dir / "vocab.txt"))
  for p, line in zip(parsed, lines):
    text_a, text_b = line.strip().split(" ||| ")
    tokens_a, tokens_b = tokenizer.tokenize(text_a), tokenizer.tokenize(text_b)
    assert [f["token"] for f in p["features"]][:4] == ["[CLS]", *tokens_a]
    assert len(p["features"]) == min(16, len(tokens_a) + len(tokens_b) + 3)
    layers = p["features"][0]["layers"]
    assert [layer["index"] for layer in layers] == [0, -1, 0]
    assert layers[0]["values"] == layers[2]["values"] != layers[1]["values"]
    assert len(layers[0]["values"]) == TINY_CONFIG["hidden_size"]

  unbucketed_file = tmp_path / "unbucketed.jsonl"
  run_script(*_flag_args(_model_flags(tiny_model_dir, layers="0,-1,0")),
             f"--input_file={input_file}", f"--output_file={unbucketed_file}",
             "--batch_size=3", "--max_seq_length=16", "--length_buckets=none")
  unbucketed = [json.loads(line) for line in unbucketed_file.read_text().splitlines()]
  for p, q in zip(parsed, unbucketed, strict=True):
    assert [f["token"] for f in p["features"]] == [f["token"] for f in q["features"]]
    np.testing.assert_allclose([[l["values"] for l in f["layers"]] for f in p["features"]],
                               [[l["values"] for l in f["layers"]] for f in q["features"]],
                               rtol=0, atol=1e-5 + 1e-6)


def test_parse_layers():
  assert feature_extraction.parse_layers("-1,-2, 0", 6) == [-1, -2, 0]
  assert feature_extraction.parse_layers([5, -6], 6) == [5, -6]
  with pytest.raises(ValueError, match=r"layer index -7 is out of range for a model of 6"):
    feature_extraction.parse_layers("-7", 6)
  with pytest.raises(ValueError, match="no layer index"):
    feature_extraction.parse_layers([], 6)


def test_background_iteration_raises_and_stops():
  def failing():
    yield 1
    raise KeyError("boom")

  iterator = feature_extraction._in_background(failing())
  assert next(iterator) == 1
  with pytest.raises(KeyError, match="boom"):
    next(iterator)

  produced = []

  def counting():
    for i in range(100):
      produced.append(i)
      yield i

  iterator = feature_extraction._in_background(counting())
  assert next(iterator) == 0
  iterator.close()  # Joins the thread, which stops within one item of the queue.
  assert len(produced) <= 3


def test_checkpoint_without_pooler_extracts_the_same(tiny_model_dir, tmp_path):
  """The pooler is no feature: a checkpoint without it gives the same layers."""
  config = tiny_config(vocab_size=len(TINY_VOCAB))
  full = BertModel(config)
  checkpoint.load(tiny_model_dir / "bert_model.ckpt", full,
                  allow_missing=feature_extraction.UNUSED_VARIABLES)
  encoder_only = [v for v in full.variables if not v.name.startswith("bert/pooler/")]
  checkpoint.save(tmp_path / "no_pooler.ckpt", encoder_only)
  model = BertModel(config)
  report = checkpoint.load(tmp_path / "no_pooler.ckpt", model,
                           allow_missing=feature_extraction.UNUSED_VARIABLES)
  assert report.missing == ["bert/pooler/dense/bias", "bert/pooler/dense/kernel"]
  tokenizer = FullTokenizer(str(tiny_model_dir / "vocab.txt"))
  examples = [feature_extraction.parse_line(line, i) for i, line in enumerate(LINES[:4])]
  (ours, theirs) = ([values for _, _, values in feature_extraction.FeatureExtractor(
      m, [-1, 0]).extract(examples, tokenizer, 16, 2)] for m in (model, full))
  for a, b in zip(ours, theirs, strict=True):
    np.testing.assert_array_equal(a, b)


def test_an_output_file_that_is_the_input_is_refused(tiny_model_dir, workspace):
  before = (workspace / "input.txt").read_bytes()
  flags = _model_flags(tiny_model_dir, input_file=workspace / "input.txt",
                       output_file=workspace / "input.txt", max_seq_length=16, layers="-1")
  result = run_script(*_flag_args(flags), check=False)
  assert result.returncode != 0
  assert "input.txt is also an output" in result.stderr
  assert (workspace / "input.txt").read_bytes() == before
