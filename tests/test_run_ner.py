"""run_ner.py end to end on tiny data: train, eval, predict, export, serve, resume, refuse."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from modeling import BertModel, checkpoint
from modeling.tasks import ner_metrics
from tiny import TINY_CONFIG, tiny_config

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEOPLE = ["John", "Mary", "Johnson", "Ali"]
PLACES = ["Paris", "Rome", "Boston", "Bostons"]
COMPANIES = ["Acme", "Globex"]
FILLER = ["the", "met", "in", "lives", "a", "and", "at", "works", "for", ".", ",", "zzq",
          "\u200b", "\u0301"]
VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "john", "mary", "ali", "smith", "paris",
          "rome", "bos", "acme", "glob", "the", "met", "in", "lives", "a", "and", "at", "works",
          "for", ".", ",", "##ton", "##son", "##s", "##ex"])


def _sentence(rng, clauses):
  """Words and IOB2 tags: "<person> [Smith] <verb> <place|company> ." clauses."""
  words, tags = [], []
  for _ in range(clauses):
    words.append(str(rng.choice(PEOPLE)))
    tags.append("B-PER")
    if rng.rand() < 0.4:
      words.append("Smith")
      tags.append("I-PER")
    words += [str(rng.choice(["lives", "met", "works"])), str(rng.choice(["in", "at", "for"]))]
    tags += ["O", "O"]
    if rng.rand() < 0.5:
      words.append(str(rng.choice(PLACES)))
      tags.append("B-LOC")
    else:
      words.append(str(rng.choice(COMPANIES)))
      tags.append("B-ORG")
    filler = [str(w) for w in rng.choice(FILLER, rng.randint(0, 3))] + ["."]
    words += filler
    tags += ["O"] * len(filler)
  return words, tags


def _write_conll(path, sentences, with_tags=True):
  lines = ["-DOCSTART- O", ""]
  for words, tags in sentences:
    lines += [f"{w}\t{t}" if with_tags else w for w, t in zip(words, tags)] + [""]
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
  """A tiny pretrained checkpoint, vocab, config, and train/dev/test CoNLL files whose
  sentences reach 3 windows at --max_seq_length=16."""
  root = tmp_path_factory.mktemp("ner")
  (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
  (root / "bert_config.json").write_text(json.dumps(dict(TINY_CONFIG, vocab_size=len(VOCAB))))
  tf.random.set_seed(0)  # The same "pretrained" weights whatever ran before.
  checkpoint.save(root / "pretrained" / "bert_model.ckpt",
                  BertModel(tiny_config(vocab_size=len(VOCAB))))
  rng = np.random.RandomState(0)
  for split, count, with_tags in (("train", 160, True), ("dev", 30, True), ("test", 17, False)):
    sentences = [_sentence(rng, rng.choice([1, 1, 2, 4])) for _ in range(count)]
    _write_conll(root / f"{split}.conll", sentences, with_tags)
  return root


def run_ner(workspace, output_dir, *extra, check=True):
  args = [sys.executable, os.path.join(REPO_DIR, "run_ner.py"),
          f"--train_file={workspace / 'train.conll'}", f"--eval_file={workspace / 'dev.conll'}",
          f"--predict_file={workspace / 'test.conll'}", f"--vocab_file={workspace / 'vocab.txt'}",
          f"--bert_config_file={workspace / 'bert_config.json'}", f"--output_dir={output_dir}",
          "--max_seq_length=16", "--log_steps=10", *extra]
  result = subprocess.run(args, capture_output=True, text=True, cwd=REPO_DIR)
  if check:
    assert result.returncode == 0, result.stderr[-5000:]
  return result


# Buckets of 8 and 16 pieces: most windows train and run at 8.
TRAIN_FLAGS = ("--do_train", "--train_batch_size=16", "--learning_rate=3e-3",
               "--num_train_epochs=6", "--doc_stride=6", "--length_buckets=8,16")


@pytest.fixture(scope="module")
def trained(workspace):
  """Fine-tunes, evaluates, predicts and exports once; returns the output paths."""
  output_dir, export_dir = workspace / "output", workspace / "export"
  run_ner(workspace, output_dir, *TRAIN_FLAGS, "--do_eval", "--do_predict",
          f"--init_checkpoint={workspace / 'pretrained' / 'bert_model.ckpt'}",
          "--eval_batch_size=5", "--predict_batch_size=3", "--save_checkpoints_steps=20",
          "--keep_checkpoint_max=0", f"--export_dir={export_dir}")
  return output_dir, export_dir


def _read_columns(path):
  """Sentences of a predictions file as lists of column tuples."""
  sentences = [[]]
  for line in path.read_text(encoding="utf-8").split("\n"):
    if line:
      sentences[-1].append(tuple(line.split(" ")))
    elif sentences[-1]:
      sentences.append([])
  return [s for s in sentences if s]


def _conll_words(path):
  sentences = [[]]
  for line in path.read_text(encoding="utf-8").split("\n")[2:]:
    if line:
      sentences[-1].append(line.split("\t")[0])
    elif sentences[-1]:
      sentences.append([])
  return [s for s in sentences if s]


def test_outputs(trained, workspace):
  output_dir, _ = trained
  results = dict(line.split(" = ") for line in
                 (output_dir / "eval_results.txt").read_text().splitlines())
  assert {"eval_precision", "eval_recall", "eval_f1", "eval_loss", "global_step",
          "eval_f1/PER", "eval_precision/LOC", "eval_recall/ORG",
          "eval_support/PER"} <= set(results)
  assert float(results["eval_f1"]) > 0.6  # the types follow from the words
  assert (output_dir / "labels.txt").read_text().split() == [
      "B-LOC", "B-ORG", "B-PER", "I-PER", "O"]
  # eval_predictions.txt: `word gold predicted`, every word of dev.conll, in order,
  # scored as eval_results.txt says.
  columns = _read_columns(output_dir / "eval_predictions.txt")
  assert [[c[0] for c in s] for s in columns] == _conll_words(workspace / "dev.conll")
  scores = ner_metrics.evaluate([[c[1] for c in s] for s in columns],
                                [[c[2] for c in s] for s in columns])
  assert abs(scores["f1"] - float(results["eval_f1"])) < 1e-12
  assert int(results["eval_support/PER"]) == sum(
      c[1] == "B-PER" for s in columns for c in s)
  # test_predictions.txt: `word predicted`, every word of the untagged test.conll.
  columns = _read_columns(output_dir / "test_predictions.txt")
  assert [[c[0] for c in s] for s in columns] == _conll_words(workspace / "test.conll")
  assert all(len(c) == 2 for s in columns for c in s)


SERVE_SCRIPT = """
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the tokenizer ops
export_dir, texts_file = sys.argv[1:3]
texts = json.load(open(texts_file, encoding="utf-8"))
outputs = tf.saved_model.load(export_dir).signatures["serving_default"](text=tf.constant(texts))
out = []
for i in range(len(texts)):
  n, e = int(outputs["num_words"][i]), int(outputs["num_entities"][i])
  out.append({"tags": [t.decode() for t in outputs["tags"][i, :n].numpy()],
              "entities": [[outputs["entity_type"][i, k].numpy().decode(),
                            int(outputs["entity_start"][i, k]), int(outputs["entity_end"][i, k]),
                            float(outputs["entity_score"][i, k])] for k in range(e)]})
print(json.dumps(out))
"""


def test_saved_model_in_a_fresh_process_agrees_with_do_predict(trained, workspace, tmp_path):
  output_dir, export_dir = trained
  predicted = _read_columns(output_dir / "test_predictions.txt")
  texts = [" ".join(c[0] for c in sentence) for sentence in predicted] + ["", "   "]
  (tmp_path / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
  result = subprocess.run([sys.executable, "-c", SERVE_SCRIPT, str(export_dir),
                           str(tmp_path / "texts.json")], capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  served = json.loads(result.stdout.strip().splitlines()[-1])
  assert served[-2:] == [{"tags": [], "entities": []}] * 2
  found = 0
  for text, sentence, output in zip(texts, predicted, served):
    tags = [c[1] for c in sentence]
    assert output["tags"] == tags
    starts = [text.index(w, start) for w, start in _word_starts(sentence)]
    expected = [(t, starts[a], starts[b] + len(sentence[b][0]))
                for t, a, b in ner_metrics.entities(tags)]
    assert [tuple(e[:3]) for e in output["entities"]] == expected
    assert all(0 < e[3] <= 1 for e in output["entities"])
    found += len(expected)
  assert found > 10
  assert any(len(s) > 14 for s in predicted)  # some test sentences needed several windows


def _word_starts(sentence):
  """(word, where to search from) so that text.index finds each word of the joined text."""
  position = 0
  for word, *_ in sentence:
    yield word, position
    position += len(word) + 1


def test_eval_only_reads_the_checkpoint_with_and_without_length_buckets(trained, workspace):
  output_dir, _ = trained
  bucketed = dict(line.split(" = ") for line in
                  (output_dir / "eval_results.txt").read_text().splitlines())
  result = run_ner(workspace, output_dir, "--do_eval", "--eval_batch_size=7",
                   "--length_buckets=none")
  assert "Resuming from" in result.stderr
  results = dict(line.split(" = ") for line in
                 (output_dir / "eval_results.txt").read_text().splitlines())
  assert int(results["global_step"]) == max(_checkpoint_steps(output_dir))
  assert results["eval_f1"] == bucketed["eval_f1"]
  assert abs(float(results["eval_loss"]) - float(bucketed["eval_loss"])) < 1e-5


def _checkpoint_steps(directory):
  return sorted(int(p.name.split("-")[1].split(".")[0])
                for p in directory.glob("model.ckpt-*.index"))


def test_interrupted_training_resumes_to_the_same_weights(trained, workspace, tmp_path):
  """A run stopped after a checkpoint and rerun ends with the uninterrupted run's weights
  (dropout on: its random state is in the checkpoint; the data skips what was trained)."""
  output_dir, _ = trained
  steps = _checkpoint_steps(output_dir)
  assert len(steps) >= 3
  resumed = tmp_path / "resumed"
  resumed.mkdir()
  for path in output_dir.glob(f"model.ckpt-{steps[1]}.*"):
    shutil.copy(path, resumed / path.name)  # as if killed after its second checkpoint
  shutil.copy(output_dir / "labels.txt", resumed / "labels.txt")
  result = run_ner(workspace, resumed, *TRAIN_FLAGS,
                   f"--init_checkpoint={workspace / 'pretrained' / 'bert_model.ckpt'}",
                   "--save_checkpoints_steps=20")
  assert f"Resuming from {resumed}/model.ckpt-{steps[1]}" in result.stderr
  final = f"model.ckpt-{steps[-1]}"
  theirs = tf.train.load_checkpoint(str(output_dir / final))
  ours = tf.train.load_checkpoint(str(resumed / final))
  names = theirs.get_variable_to_shape_map()
  assert "output_weights" in names and "output_weights/adam_m" in names
  for name in names:
    np.testing.assert_allclose(ours.get_tensor(name), theirs.get_tensor(name), atol=1e-6,
                               err_msg=name)


@pytest.mark.parametrize("content, flag, message", [
    ("a\tO\nb\n", "--train_file", "train.conll:2: the word 'b' has no tag"),
    ("a\tO\nb\tB-PER\nc\tX-PER\n", "--train_file", "train.conll:3: 'X-PER' is not a tag of"),
    ("a\tO\nb\tB-MISC\n", "--eval_file", "dev.conll:2: the tag 'B-MISC' is not among the "),
    ("", "--eval_file", "dev.conll: no sentences (the file is empty)"),
])
def test_bad_input_names_file_and_line(workspace, tmp_path, content, flag, message):
  name = "train.conll" if flag == "--train_file" else "dev.conll"
  (tmp_path / name).write_text(content, encoding="utf-8")
  result = run_ner(workspace, tmp_path / "out", "--do_train", "--do_eval",
                   f"{flag}={tmp_path / name}", check=False)
  assert result.returncode != 0
  assert message in result.stderr, result.stderr[-3000:]


@pytest.mark.parametrize("extra, message", [
    (["--do_train", "--doc_stride=15"], "--doc_stride=15 must be between 1 and the window"),
    (["--do_eval"], "no labels: give --labels_file or --train_file"),
    (["--do_eval", "--labels_file={labels}"], "no checkpoint in --output_dir"),
    (["--max_seq_length=16"], "At least one of `do_train`"),
    (["--do_predict", "--predict_file="], "--predict_file is needed with --do_predict"),
])
def test_bad_flags_are_named(workspace, tmp_path, extra, message):
  (tmp_path / "labels.txt").write_text("O\nB-PER\nI-PER\nB-LOC\nB-ORG\n", encoding="utf-8")
  extra = [flag.format(labels=tmp_path / "labels.txt") for flag in extra]
  result = run_ner(workspace, tmp_path / "out", *extra, check=False)
  assert result.returncode != 0
  assert message in result.stderr, result.stderr[-3000:]


def test_predict_file_as_output_is_refused(workspace, tmp_path):
  output_dir = tmp_path / "out"
  output_dir.mkdir()
  shutil.copy(workspace / "test.conll", output_dir / "test_predictions.txt")
  result = run_ner(workspace, output_dir, "--do_train", "--do_predict",
                   f"--predict_file={output_dir / 'test_predictions.txt'}", check=False)
  assert result.returncode != 0
  assert "would destroy the input" in result.stderr
