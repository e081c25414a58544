"""run_squad.py end to end on tiny SQuAD 1.1 and 2.0 data, and the original as oracle."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import oracle
from modeling import BertModel, checkpoint
from modeling.data import squad_data
from modeling.tasks import squad_metrics
from modeling.tasks.squad import SquadModel
from tiny import TINY_CONFIG, tiny_config, tiny_inputs

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLORS = ["red", "green", "blue", "yellow"]
FILLER = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far", "away", "big", "small",
          "house", "tree", "car", "old"]
VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + COLORS + FILLER +
         ["what", "color", "is", "it", "?", ".", ",", "##s"])
SEQ_FLAGS = ["--max_seq_length=32", "--doc_stride=8", "--max_query_length=8"]


def _paragraph(rng, index, answerable):
  """A context of filler words, with one capitalised colour when answerable."""
  words = list(rng.choice(FILLER, rng.randint(8, 30)))
  color = None
  if answerable:
    color = str(rng.choice(COLORS)).capitalize()
    words.insert(rng.randint(0, len(words)), color + ("," if rng.rand() < 0.3 else ""))
  context = " ".join(words) + "."
  qa = {"id": f"q{index}", "question": "What color is it?", "answers": []}
  if answerable:
    start = context.index(color)
    qa["answers"] = [{"text": color, "answer_start": start}]
  return {"context": context, "qas": [qa]}, qa


def _squad_file(path, rng, count, version_2):
  paragraphs = []
  for index in range(count):
    answerable = not version_2 or index % 3 != 0
    paragraph, qa = _paragraph(rng, index, answerable)
    if version_2:
      qa["is_impossible"] = not answerable
    paragraphs.append(paragraph)
  path.write_text(json.dumps({"version": "v2.0" if version_2 else "1.1",
                              "data": [{"title": "colors", "paragraphs": paragraphs}]}))
  return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
  """A tiny pretrained checkpoint, vocab, config and SQuAD 1.1 / 2.0 train and dev files."""
  root = tmp_path_factory.mktemp("squad")
  (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
  (root / "bert_config.json").write_text(json.dumps(dict(TINY_CONFIG, vocab_size=len(VOCAB))))
  tf.random.set_seed(0)  # The same "pretrained" weights whatever ran before.
  checkpoint.save(root / "pretrained" / "bert_model.ckpt",
                  BertModel(tiny_config(vocab_size=len(VOCAB))))
  rng = np.random.RandomState(0)
  for version in ("v1", "v2"):
    _squad_file(root / f"train-{version}.json", rng, 96, version == "v2")
    _squad_file(root / f"dev-{version}.json", rng, 21, version == "v2")
  return root


def run_squad(workspace, output_dir, *extra, check=True):
  args = [sys.executable, os.path.join(REPO_DIR, "run_squad.py"),
          f"--vocab_file={workspace / 'vocab.txt'}",
          f"--bert_config_file={workspace / 'bert_config.json'}", f"--output_dir={output_dir}",
          "--log_steps=12", *SEQ_FLAGS, *extra]
  result = subprocess.run(args, capture_output=True, text=True, cwd=REPO_DIR)
  if check:
    assert result.returncode == 0, result.stderr[-5000:]
  return result


def _train_and_predict(workspace, version, *extra):
  output_dir = workspace / f"output-{version}"
  run_squad(workspace, output_dir, "--do_train", "--do_predict",
            f"--train_file={workspace / f'train-{version}.json'}",
            f"--predict_file={workspace / f'dev-{version}.json'}",
            f"--init_checkpoint={workspace / 'pretrained' / 'bert_model.ckpt'}",
            "--train_batch_size=16", "--learning_rate=3e-3", "--num_train_epochs=6",
            "--predict_batch_size=5", "--n_best_size=4", *extra)
  return output_dir


@pytest.fixture(scope="module")
def trained_v1(workspace):
  return _train_and_predict(workspace, "v1")


@pytest.fixture(scope="module")
def trained_v2(workspace):
  return _train_and_predict(workspace, "v2", "--version_2_with_negative")


def _eval_results(output_dir):
  return dict(line.split(" = ") for line in
              (output_dir / "eval_results.txt").read_text().splitlines())


def _check_predictions(output_dir, dev_file, version_2):
  """The original's output files, well formed; returns (gold, predictions, null_odds)."""
  data = json.loads(dev_file.read_text())["data"][0]["paragraphs"]
  contexts = {p["qas"][0]["id"]: p["context"] for p in data}
  predictions = json.loads((output_dir / "predictions.json").read_text())
  nbest = json.loads((output_dir / "nbest_predictions.json").read_text())
  assert list(predictions) == list(contexts) == list(nbest)
  for question_id, text in predictions.items():
    entries = nbest[question_id]
    texts = [e["text"] for e in entries]
    if texts[0] == "empty":  # The nonce answer when no span is valid, and only then.
      assert set(texts[1:]) <= {""}
      entries = entries[1:]
    else:
      assert text in contexts[question_id] and (text or version_2)
    assert 1 <= len(texts) <= 4 + version_2
    assert [list(e) for e in nbest[question_id]] == [
        ["text", "probability", "start_logit", "end_logit"]] * len(texts)
    assert sum(e["probability"] for e in nbest[question_id]) == pytest.approx(1.0)
    scores = [e["start_logit"] + e["end_logit"] for e in entries]
    assert scores == sorted(scores, reverse=True)
  null_odds = None
  if version_2:
    null_odds = json.loads((output_dir / "null_odds.json").read_text())
    assert list(null_odds) == list(predictions)
    for question_id, diff in null_odds.items():  # threshold 0: "" exactly when diff > 0
      assert (predictions[question_id] == "") == (diff > 0.0)
  else:
    assert not (output_dir / "null_odds.json").exists()
  return squad_data.read_gold_answers(str(dev_file)), predictions, null_odds


def test_squad_v1_outputs(trained_v1, workspace):
  gold, predictions, _ = _check_predictions(trained_v1, workspace / "dev-v1.json", False)
  results = _eval_results(trained_v1)
  assert sorted(results) == ["exact_match", "f1", "global_step"]
  assert int(results["global_step"]) == int(96 / 16 * 6)
  expected = squad_metrics.evaluate_v1(gold, predictions)
  assert float(results["exact_match"]) == pytest.approx(expected["exact_match"])
  assert float(results["f1"]) == pytest.approx(expected["f1"])
  assert float(results["f1"]) > 50.0  # It learned to find the colour (chance: a few %).
  assert tf.train.latest_checkpoint(str(trained_v1)).endswith("model.ckpt-36")


def test_squad_v2_outputs(trained_v2, workspace):
  gold, predictions, null_odds = _check_predictions(trained_v2, workspace / "dev-v2.json", True)
  results = _eval_results(trained_v2)
  expected = squad_metrics.evaluate_v2(gold, predictions, null_odds)
  assert sorted(results) == sorted(list(expected) + ["global_step"])
  for key, value in expected.items():
    assert float(results[key]) == pytest.approx(value), key
  assert results["HasAns_total"] == "14" and results["NoAns_total"] == "7"
  assert float(results["f1"]) > 40.0


def test_resume_and_predict_only_give_the_same_predictions(trained_v1, workspace):
  before = (trained_v1 / "predictions.json").read_text()
  (trained_v1 / "predictions.json").unlink()
  result = run_squad(workspace, trained_v1, "--do_train", "--do_predict",
                     f"--train_file={workspace / 'train-v1.json'}",
                     f"--predict_file={workspace / 'dev-v1.json'}",
                     "--train_batch_size=16", "--num_train_epochs=6", "--predict_batch_size=3",
                     "--n_best_size=4")
  assert "Resuming from" in result.stderr and "nothing to train" in result.stderr
  assert (trained_v1 / "predictions.json").read_text() == before


def test_predict_only_from_a_checkpoint_without_the_pooler(trained_v1, workspace, tmp_path):
  """A Hugging Face BertForQuestionAnswering has no pooler, which the span head never
  reads: predicting from it needs none; the span head itself is required."""
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(trained_v1)))
  names = [n for n in reader.get_variable_to_shape_map()
           if not n.startswith("bert/pooler/") and "adam" not in n and "/" in n]
  variables = [tf.Variable(reader.get_tensor(n), name=n) for n in names]
  checkpoint.save(tmp_path / "no_pooler" / "model.ckpt", variables)
  run_squad(workspace, tmp_path / "out", "--do_predict",
            f"--predict_file={workspace / 'dev-v1.json'}", "--predict_batch_size=5",
            "--n_best_size=4", f"--init_checkpoint={tmp_path / 'no_pooler' / 'model.ckpt'}")
  assert ((tmp_path / "out" / "predictions.json").read_text()
          == (trained_v1 / "predictions.json").read_text())
  headless = [v for v in variables if not v.name.startswith("cls/squad/")]
  checkpoint.save(tmp_path / "headless" / "model.ckpt", headless)
  refused = run_squad(workspace, tmp_path / "out2", "--do_predict",
                      f"--predict_file={workspace / 'dev-v1.json'}",
                      f"--init_checkpoint={tmp_path / 'headless' / 'model.ckpt'}", check=False)
  assert "has no cls/squad/output_bias, cls/squad/output_weights: without training" in (
      refused.stderr)


def _bad_squad(workspace, tmp_path):
  path = tmp_path / "bad.json"
  path.write_text(json.dumps({"data": [{"paragraphs": [{"context": "The Red car.", "qas": [
      {"id": "q-bad", "question": "What color?",
       "answers": [{"text": "Blue", "answer_start": 4}]}]}]}]}))
  return path


@pytest.mark.parametrize("extra, message", [
    (["--do_train", "--train_file={broken}"], "{broken}: not valid JSON: Expecting"),
    (["--do_train", "--train_file={bad}"],
     "{bad}: question q-bad: the answer 'Blue' is not at answer_start=4"),
    (["--do_train"], "If `do_train` is True, then `train_file` must be specified."),
    (["--do_predict", "--predict_file={bad}", "--max_query_length=29"],
     "--max_seq_length=32 must be greater than --max_query_length=29 + 3"),
    (["--do_predict", "--do_eval", "--predict_file={bad}"], "run_squad.py has no --do_eval"),
])
def test_bad_input_is_named(workspace, tmp_path, extra, message):
  paths = {"broken": tmp_path / "broken.json", "bad": _bad_squad(workspace, tmp_path)}
  paths["broken"].write_text('{"data": [}')
  result = run_squad(workspace, tmp_path / "out", *[e.format(**paths) for e in extra],
                     check=False)
  assert result.returncode != 0
  assert message.format(**paths) in result.stderr


def test_max_seq_length_default_is_the_originals():
  script = ("import sys; sys.argv = sys.argv[:1]; import {0}; from absl import flags; "
            "print(flags.FLAGS['max_seq_length'].default)")
  defaults = [subprocess.run([sys.executable, "-c", script.format(name)], capture_output=True,
                             text=True, cwd=REPO_DIR, check=True).stdout.split()[-1]
              for name in ("run_squad", "run_classifier")]
  assert defaults == ["384", "128"]


def test_squad_model_variables_and_loss():
  config = tiny_config()
  model = SquadModel(config)
  names = {checkpoint.checkpoint_name(v): v.shape.as_list() for v in model.variables}
  assert names["cls/squad/output_weights"] == [2, 32]
  assert names["cls/squad/output_bias"] == [2]
  assert len(names) == len(checkpoint.named_variables(BertModel(config))) + 2
  inputs = tiny_inputs(batch_size=3, seq_length=16)
  batch = {k: inputs[k] for k in ("input_ids", "input_mask", "segment_ids")}
  batch["start_positions"] = np.array([0, 5, 9], np.int32)
  batch["end_positions"] = np.array([0, 7, 9], np.int32)
  start, end = (x.numpy() for x in model.logits(batch))
  assert start.shape == end.shape == (3, 16) and start.dtype == np.float32

  def cross_entropy(logits, positions):
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -log_probs[np.arange(3), positions]

  expected = np.mean((cross_entropy(start, batch["start_positions"]) +
                      cross_entropy(end, batch["end_positions"])) / 2)
  outputs = model.predict_step(batch)
  np.testing.assert_allclose(outputs["start_logits"], start, atol=1e-6)
  # Without dropout the training loss is the original's mean of start and end losses.
  no_dropout = SquadModel(tiny_config(hidden_dropout_prob=0.0,
                                      attention_probs_dropout_prob=0.0))
  for target, source in zip(no_dropout.variables, model.variables):
    target.assign(source)
  loss = no_dropout.loss(batch, SquadModel.loss_totals(batch))
  np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
  bf16 = SquadModel(config, compute_dtype=tf.bfloat16)
  assert bf16.predict_step(batch)["end_logits"].dtype == tf.float32


ORIGINAL_CREATE_MODEL = """
import sys
import numpy as np
import original_bert
from bert import run_squad
tf, modeling = original_bert.tf, original_bert.modeling
config_file, ckpt, inputs, out = sys.argv[1:5]
data = np.load(inputs)
config = modeling.BertConfig.from_json_file(config_file)
start, end = run_squad.create_model(
    config, False, tf.constant(data["input_ids"]), tf.constant(data["input_mask"]),
    tf.constant(data["segment_ids"]), False)
with tf.Session() as sess:
  tf.train.Saver().restore(sess, ckpt)
  np.savez(out, *sess.run([start, end]))
"""


@pytest.mark.slow
def test_original_create_model_loads_our_checkpoint(trained_v2, workspace, tmp_path):
  from modeling.data.tokenization import FullTokenizer  # pylint: disable=import-outside-toplevel
  examples = squad_data.read_squad_examples(str(workspace / "dev-v2.json"), False)[:4]
  features = squad_data.convert_examples_to_features(
      examples, FullTokenizer(str(workspace / "vocab.txt")), 32, 8, 8, False)
  arrays = squad_data.feature_arrays(features, False)
  np.savez(tmp_path / "inputs.npz", **arrays)
  latest = tf.train.latest_checkpoint(str(trained_v2))
  oracle.run(ORIGINAL_CREATE_MODEL, workspace / "bert_config.json", latest,
             tmp_path / "inputs.npz", tmp_path / "original.npz")
  original = np.load(tmp_path / "original.npz")
  model = SquadModel(tiny_config(vocab_size=len(VOCAB)))
  checkpoint.load(latest, model)
  start, end = model.logits(arrays)
  np.testing.assert_allclose(start, original["arr_0"], atol=1e-5)
  np.testing.assert_allclose(end, original["arr_1"], atol=1e-5)


def test_a_predict_file_named_as_an_output_is_refused(workspace, tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  predict_file = out / "predictions.json"
  predict_file.write_bytes((workspace / "dev-v1.json").read_bytes())
  result = run_squad(workspace, out, "--do_predict", f"--predict_file={predict_file}",
                     f"--init_checkpoint={workspace / 'pretrained' / 'bert_model.ckpt'}",
                     check=False)
  assert "--predict_file=" in result.stderr and "predictions.json is also an output" in (
      result.stderr)
  assert predict_file.read_bytes() == (workspace / "dev-v1.json").read_bytes()
