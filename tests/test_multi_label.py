"""Multi-label classification (issue 27): the sigmoid head and its loss, the metrics and
thresholds against scikit-learn and NumPy, the TSV label sets and their refusals,
run_classifier.py --multi_label end to end (resume, the SavedModel), and the Hugging Face
bridge in both directions against transformers."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics

from modeling import BertModel, checkpoint
from modeling.data import classifier_data
from modeling.data.tokenization import FullTokenizer
from modeling.tasks import classifier
from test_run_classifier import TOPICS, VOCAB, WORDS, run_classifier
from tiny import TINY_CONFIG, tiny_config, tiny_inputs

LABELS = sorted(TOPICS)


def _row(rng):
  """A sentence mentioning 0, 1 or 2 topics, and its label set."""
  topics = sorted(rng.choice(LABELS, rng.choice([0, 1, 1, 2]), replace=False))
  words = [w for t in topics for w in rng.choice(TOPICS[t], 3)] + list(rng.choice(WORDS[:10], 2))
  rng.shuffle(words)
  return ",".join(topics), " ".join(words)


# ----------------------------------------------------------------------------
# The head, its loss, the metrics and the thresholds, against NumPy and scikit-learn.

def test_head_is_a_sigmoid_per_label_with_mean_binary_cross_entropy():
  config = tiny_config()
  model = classifier.ClassifierModel(config, 3, multi_label=True)
  inputs = tiny_inputs(batch_size=4)
  labels = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0], [1, 1, 1]], np.float32)
  batch = {"input_ids": inputs["input_ids"], "input_mask": inputs["input_mask"],
           "segment_ids": inputs["segment_ids"], "label_ids": labels}
  per_example_loss, probabilities = model.outputs(batch)
  pooled = model.bert(inputs["input_ids"], inputs["input_mask"],
                      inputs["segment_ids"])["pooled_output"].numpy()
  logits = (pooled @ model.head.output_weights.numpy().T
            + model.head.output_bias.numpy()).astype(np.float64)  # output_weights [C, H]
  expected = 1 / (1 + np.exp(-logits))
  np.testing.assert_allclose(probabilities.numpy(), expected, atol=1e-6)
  bce = -(labels * np.log(expected) + (1 - labels) * np.log(1 - expected))  # [B, C]
  np.testing.assert_allclose(per_example_loss.numpy(), bce.mean(1), atol=1e-6)
  assert float(model.head.multi_label(pooled, labels)[0]) == pytest.approx(bce.mean(), abs=1e-6)
  loss = model.loss(batch, model.loss_totals(batch))  # with dropout
  assert 0.5 * bce.mean() < float(loss) < 2 * bce.mean()
  assert sorted(v.name for v in model.head.variables) == ["output_bias:0", "output_weights:0"]


def test_prior_bias_starts_each_label_at_its_smoothed_frequency():
  labels = np.array([[1, 0, 0, 1], [0, 0, 0, 1], [1, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 1]],
                    np.float32)  # The second label on no example, the last on every one.
  bias = classifier.prior_log_odds(labels)
  frequency = (labels.sum(0) + 1) / (len(labels) + 2)
  np.testing.assert_allclose(bias, np.log(frequency / (1 - frequency)), rtol=1e-6)
  assert bias.dtype == np.float32 and np.all(np.isfinite(bias))
  model = classifier.ClassifierModel(tiny_config(), 4, multi_label=True, initial_bias=bias)
  np.testing.assert_array_equal(model.head.output_bias.numpy(), bias)
  model.head.output_weights.assign(tf.zeros_like(model.head.output_weights))
  inputs = tiny_inputs(batch_size=3)
  probabilities = model.predictions(inputs["input_ids"], inputs["input_mask"],
                                    inputs["segment_ids"]).numpy()
  np.testing.assert_allclose(probabilities, np.tile(frequency, [3, 1]), rtol=1e-5)
  with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
    classifier.ClassifierModel(tiny_config(), 3, multi_label=True, initial_bias=bias)


def _random_predictions(seed=0, count=40, num_labels=5):
  rng = np.random.RandomState(seed)
  labels = (rng.rand(count, num_labels) < [0.5, 0.3, 0.1, 0.05, 0.0]).astype(np.float32)
  probabilities = np.clip(0.6 * labels + 0.5 * rng.rand(count, num_labels), 0, 1)
  return labels, probabilities.astype(np.float32)


@pytest.mark.parametrize("thresholds", [0.5, 0.3, np.array([0.5, 0.4, 0.7, 0.2, 0.9])])
def test_metrics_match_scikit_learn(thresholds):
  labels, probabilities = _random_predictions()  # The last label never occurs.
  names = ["a", "b", "c", "d", "e"]
  outputs = {"per_example_loss": np.arange(40.0), "predictions": probabilities}
  results = classifier.multi_label_metrics(outputs, labels, thresholds, names)
  predicted = (probabilities > thresholds).astype(int)
  truth = labels.astype(int)
  for average in ("micro", "macro"):
    assert results[f"eval_{average}_f1"] == pytest.approx(
        metrics.f1_score(truth, predicted, average=average, zero_division=0))
  assert results["eval_micro_precision"] == pytest.approx(
      metrics.precision_score(truth, predicted, average="micro", zero_division=0))
  assert results["eval_micro_recall"] == pytest.approx(
      metrics.recall_score(truth, predicted, average="micro", zero_division=0))
  assert results["eval_subset_accuracy"] == pytest.approx(
      metrics.accuracy_score(truth, predicted))
  for name, score in (("precision", metrics.precision_score), ("recall", metrics.recall_score),
                      ("f1", metrics.f1_score)):
    per_label = score(truth, predicted, average=None, zero_division=0)
    assert [results[f"eval_{name}_{n}"] for n in names] == pytest.approx(list(per_label))
  assert results["eval_loss"] == results["loss"] == pytest.approx(19.5)


def _micro_f1(probabilities, labels, thresholds):
  predicted, truth = probabilities > thresholds, labels > 0.5
  return 2 * np.sum(predicted & truth) / (predicted.sum() + truth.sum())


def test_global_threshold_is_the_best_cut():
  labels, probabilities = _random_predictions(seed=1)
  thresholds = classifier.choose_thresholds(probabilities, labels)
  assert len(set(thresholds)) == 1
  # Every cut between two distinct probabilities (and beyond both ends), by brute force.
  values = np.unique(np.concatenate([[0.0, 1.0], probabilities.ravel()]))
  best = max(_micro_f1(probabilities, labels, t) for t in (values[:-1] + values[1:]) / 2)
  assert _micro_f1(probabilities, labels, thresholds) == pytest.approx(best)
  assert not np.isin(thresholds, probabilities).any()  # Midway, not on a probability.


def test_per_label_thresholds_cannot_be_improved_one_label_at_a_time():
  labels, probabilities = _random_predictions(seed=2)
  chosen = classifier.choose_thresholds(probabilities, labels, per_label=True)
  reached = _micro_f1(probabilities, labels, chosen)
  assert reached >= _micro_f1(probabilities, labels, classifier.choose_thresholds(
      probabilities, labels)) - 1e-12
  for index in range(labels.shape[1]):
    values = np.unique(np.concatenate([[0.0, 1.0], probabilities[:, index]]))
    for t in (values[:-1] + values[1:]) / 2:
      changed = chosen.copy()
      changed[index] = t
      assert _micro_f1(probabilities, labels, changed) <= reached + 1e-12


def test_thresholds_file_round_trip_and_refusals(tmp_path):
  path = str(tmp_path / classifier.THRESHOLDS_FILE)
  classifier.write_thresholds(path, ["a", "b"], np.array([0.25, 0.625]), 7, {"eval": 0.5})
  thresholds, global_step = classifier.read_thresholds(path, ["a", "b"])
  np.testing.assert_array_equal(thresholds, [0.25, 0.625])
  assert global_step == 7 and json.loads(open(path).read())["eval"] == 0.5
  with pytest.raises(ValueError, match=r"thresholds for the labels \['a', 'b'\], but this "
                                       r"run's labels are \['a', 'c'\]"):
    classifier.read_thresholds(path, ["a", "c"])
  (tmp_path / "bad.json").write_text("[1, 2]")
  with pytest.raises(ValueError, match=r"bad\.json: not a thresholds file"):
    classifier.read_thresholds(str(tmp_path / "bad.json"), ["a", "b"])


# ----------------------------------------------------------------------------
# The TSV label sets.

def _tsv(tmp_path, train, dev="label\ttext\nb\tx\n"):
  (tmp_path / "train.tsv").write_text(train)
  (tmp_path / "dev.tsv").write_text(dev)
  return str(tmp_path)


def test_label_sets_are_read_with_the_empty_set(tmp_path):
  data_dir = _tsv(tmp_path, "label\ttext\nb, a\tone\n\ttwo\nc\tthree\n")
  processor = classifier_data.get_processor("tsv", data_dir, label_separator=",")
  assert processor.get_labels() == ["a", "b", "c"]
  examples = processor.get_examples(data_dir, "train")
  assert [e.label for e in examples] == [("b", "a"), (), ("c",)]
  features = [classifier_data.convert_example(e, ["a", "b", "c"], 8, _Tokenizer(), True)
              for e in examples]
  assert [f.label_id for f in features] == [[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
  given = classifier_data.get_processor("tsv", data_dir, ["c", "b", "a", "d"], "|")
  assert given.get_labels() == ["c", "b", "a", "d"]
  with pytest.raises(ValueError, match=r"train\.tsv:2: unknown label 'b, a' in the set"):
    given.get_examples(data_dir, "train")


class _Tokenizer:
  def tokenize(self, text):
    return text.split()

  def convert_tokens_to_ids(self, tokens):
    return [1] * len(tokens)


@pytest.mark.parametrize("train, message", [
    ("label\ttext\na,\tone\n", r"train\.tsv:2: empty label in the set 'a,'"),
    ("label\ttext\na,b,a\tone\n", r"train\.tsv:2: label 'a' repeated in the set 'a,b,a'"),
    ("label\ttext\n\tone\n", r"train\.tsv: every row has the empty label set"),
])
def test_bad_label_sets_are_named(tmp_path, train, message):
  data_dir = _tsv(tmp_path, train)
  with pytest.raises(ValueError, match=message):
    classifier_data.get_processor("tsv", data_dir, label_separator=",").get_labels()


def test_a_dev_label_outside_the_list_is_named_with_its_line(tmp_path):
  data_dir = _tsv(tmp_path, "label\ttext\na,b\tone\n", "label\ttext\na\tx\nb,z\ty\n")
  processor = classifier_data.get_processor("tsv", data_dir, label_separator=",")
  with pytest.raises(ValueError, match=r"dev\.tsv:3: unknown label 'z' in the set 'b,z'; "
                                       r"expected labels of \['a', 'b'\]"):
    processor.get_examples(data_dir, "dev")


def test_a_single_label_list_keeps_its_order_and_refuses_other_labels(tmp_path):
  data_dir = _tsv(tmp_path, "label\ttext\nb\tone\na\ttwo\n")
  processor = classifier_data.get_processor("tsv", data_dir, ["b", "a", "c"])
  assert processor.get_labels() == ["b", "a", "c"]
  assert [e.label for e in processor.get_examples(data_dir, "train")] == ["b", "a"]
  with pytest.raises(ValueError, match=r"train\.tsv:3: unknown label 'a'; expected one of "
                                       r"\['b'\]"):
    classifier_data.get_processor("tsv", data_dir, ["b"]).get_examples(data_dir, "train")


def test_label_sets_are_only_for_the_tsv_task():
  with pytest.raises(ValueError, match=r"'mrpc' has its own labels"):
    classifier_data.get_processor("mrpc", "unused", label_separator=",")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
  """A tiny pretrained checkpoint, vocab, config and a multi-label TSV task."""
  root = tmp_path_factory.mktemp("multi_label")
  (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
  (root / "bert_config.json").write_text(json.dumps(dict(TINY_CONFIG, vocab_size=len(VOCAB))))
  tf.random.set_seed(0)
  checkpoint.save(root / "pretrained" / "bert_model.ckpt",
                  BertModel(tiny_config(vocab_size=len(VOCAB))))
  rng = np.random.RandomState(0)
  data = root / "data"
  data.mkdir()
  for split, count in (("train", 96), ("dev", 24), ("test", 11)):
    rows = [_row(rng) for _ in range(count)]
    (data / f"{split}.tsv").write_text("label\ttext\n" + "".join(f"{l}\t{t}\n" for l, t in rows))
  return root


def multi_label_run(workspace, output_dir, *extra, check=True):
  return run_classifier(workspace, output_dir, "--multi_label", *extra, check=check)


@pytest.fixture(scope="module")
def trained(workspace):
  """Fine-tunes, evaluates (thresholds chosen on dev), predicts and exports once."""
  output_dir, export_dir = workspace / "output", workspace / "export"
  result = multi_label_run(workspace, output_dir, "--do_train", "--do_eval", "--do_predict",
                  f"--init_checkpoint={workspace / 'pretrained' / 'bert_model.ckpt'}",
                  "--train_batch_size=8", "--learning_rate=2e-3", "--num_train_epochs=30",
                  "--eval_batch_size=5", "--predict_batch_size=4", "--multi_label_threshold=auto",
                  f"--export_dir={export_dir}")
  (workspace / "trained.log").write_text(result.stderr)
  return output_dir, export_dir


def _rows(path):
  return [line.split("\t") for line in path.read_text().splitlines()]


def test_a_fresh_head_starts_at_the_training_labels_prior(trained, workspace):
  processor = classifier_data.get_processor("tsv", str(workspace / "data"), label_separator=",")
  examples = processor.get_examples(str(workspace / "data"), "train")
  label_ids = np.array([[label in e.label for label in LABELS] for e in examples], np.float32)
  logged = re.search(r"A fresh output_bias starts at the labels' log prior odds: (\{.*\})",
                     (workspace / "trained.log").read_text())
  assert logged, "the prior bias was not logged"
  started = json.loads(logged.group(1).replace("'", '"'))
  assert list(started) == LABELS
  np.testing.assert_allclose(list(started.values()), classifier.prior_log_odds(label_ids),
                             atol=1e-4)


def test_outputs(trained, workspace):
  output_dir, _ = trained
  results = dict(line.split(" = ") for line in
                 (output_dir / "eval_results.txt").read_text().splitlines())
  per_label = [f"eval_{m}_{label}" for m in ("f1", "precision", "recall") for label in LABELS]
  assert sorted(results) == sorted(
      ["eval_loss", "loss", "global_step", "eval_micro_f1", "eval_micro_precision",
       "eval_micro_recall", "eval_macro_f1", "eval_subset_accuracy"] + per_label)
  assert int(results["global_step"]) == int(96 / 8 * 30)
  # --multi_label's defaults, logged (docs/classifier.md says why).
  log = (workspace / "trained.log").read_text()
  assert "--multi_label: --optimizer=adamw_corrected" in log
  assert "--multi_label: --nogroup_by_length" in log
  assert float(results["eval_micro_f1"]) > 0.6  # Predicting every label: about 0.4.
  saved = json.loads((output_dir / classifier.THRESHOLDS_FILE).read_text())
  assert saved["labels"] == LABELS and len(set(saved["thresholds"])) == 1
  assert saved["eval_micro_f1"] == pytest.approx(float(results["eval_micro_f1"]))
  rows = _rows(output_dir / "test_results.tsv")
  assert len(rows) == 11 and {len(row) for row in rows} == {len(LABELS) + 1}
  probabilities = np.array([[float(x) for x in row[:-1]] for row in rows])
  assert [row[-1] for row in rows] == [
      ",".join(label for label, p in zip(LABELS, row) if p > saved["thresholds"][0])
      for row in probabilities]


SAVED_MODEL_SCRIPT = """
import sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the tokenizer ops
export_dir, test_file, out = sys.argv[1:4]
texts = [line.rstrip("\\n").split("\\t")[1] for line in open(test_file, encoding="utf-8")][1:]
outputs = tf.saved_model.load(export_dir).signatures["serving_default"](text_a=tf.constant(texts))
np.save(out, outputs["probabilities"].numpy())
print("|".join(label.decode() for label in outputs["labels"].numpy()))
"""


def test_saved_model_matches_do_predict(trained, workspace, tmp_path):
  output_dir, export_dir = trained
  result = subprocess.run([sys.executable, "-c", SAVED_MODEL_SCRIPT, str(export_dir),
                           str(workspace / "data" / "test.tsv"), str(tmp_path / "p.npy")],
                          capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = _rows(output_dir / "test_results.tsv")
  np.testing.assert_allclose(np.load(tmp_path / "p.npy"),
                             [[float(x) for x in row[:-1]] for row in rows], atol=1e-5)
  assert result.stdout.strip().split("|") == [row[-1] for row in rows]


def test_tflite_and_onnx_files_match_do_predict(trained, workspace, tmp_path):
  """An export-only run beside the trained one writes the three exports with its
  thresholds and --remove_padding, and convert_export.py both files from the run's
  SavedModel: each .tflite (raw text) gives test_results.tsv's probabilities and label
  sets, as the SavedModel does; ONNX Runtime (token ids) its probabilities."""
  from test_convert_export import convert_export  # pylint: disable=import-outside-toplevel
  from test_onnx_export import run_onnx  # pylint: disable=import-outside-toplevel
  from test_tflite_export import interpreter  # pylint: disable=import-outside-toplevel
  output_dir, export_dir = trained
  rows = _rows(output_dir / "test_results.tsv")
  expected = np.array([[float(x) for x in row[:-1]] for row in rows])
  multi_label_run(workspace, output_dir, "--multi_label_threshold=auto", "--remove_padding",
                  f"--export_dir={tmp_path / 'run_export'}",
                  f"--export_tflite={tmp_path / 'run.tflite'}",
                  f"--export_onnx={tmp_path / 'run.onnx'}")
  served = subprocess.run([sys.executable, "-c", SAVED_MODEL_SCRIPT, str(tmp_path / "run_export"),
                           str(workspace / "data" / "test.tsv"), str(tmp_path / "p.npy")],
                          capture_output=True, text=True)
  assert served.returncode == 0, served.stderr[-3000:]
  np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, atol=1e-5)
  assert served.stdout.strip().split("|") == [row[-1] for row in rows]
  convert_export(f"--from_export_dir={export_dir}", f"--export_tflite={tmp_path / 'dir.tflite'}",
                 f"--export_onnx={tmp_path / 'dir.onnx'}")
  texts = [row[1] for row in _rows(workspace / "data" / "test.tsv")[1:]]
  thresholds = json.loads((output_dir / classifier.THRESHOLDS_FILE).read_text())["thresholds"]
  assert len({row[-1] for row in rows}) > 1  # The sets vary: the check can fail.
  for tflite_path in (tmp_path / "run.tflite", tmp_path / "dir.tflite"):
    lite = interpreter(str(tflite_path)).get_signature_runner("classify")(
        text_a=np.array(texts, dtype=object))
    np.testing.assert_allclose(lite["probabilities"], expected, atol=1e-4)
    np.testing.assert_array_equal(lite["above_threshold"], expected > thresholds)
    assert [",".join(label.decode() for label in labels if label) for labels in lite["labels"]] \
        == [row[-1] for row in rows]
  data_dir = str(workspace / "data")
  examples = classifier_data.get_processor("tsv", data_dir, label_separator=",").get_examples(
      data_dir, "test")
  tokenizer = FullTokenizer(str(workspace / "vocab.txt"))
  arrays = classifier_data.to_arrays(examples, LABELS, 16, tokenizer, multi_label=True)
  for onnx_path in (tmp_path / "run.onnx", tmp_path / "dir.onnx"):
    np.testing.assert_allclose(run_onnx(str(onnx_path), arrays), expected, atol=1e-4)


def test_a_later_run_resumes_and_predicts_with_the_chosen_thresholds(trained, workspace):
  output_dir, _ = trained
  before = _rows(output_dir / "test_results.tsv")
  (output_dir / "test_results.tsv").unlink()
  args = ["--do_train", "--do_predict", "--train_batch_size=8", "--num_train_epochs=30",
          "--predict_batch_size=3", "--multi_label_threshold=auto"]
  saved = (output_dir / classifier.THRESHOLDS_FILE).read_text()
  (output_dir / classifier.THRESHOLDS_FILE).write_text(saved.replace('"global_step": 360',
                                                                     '"global_step": 300'))
  stale = multi_label_run(workspace, output_dir, *args, check=False)
  assert re.search(r"thresholds chosen at step 300, but the model is at step 360: add "
                   r"--do_eval", stale.stderr), stale.stderr[-2000:]
  assert not (output_dir / "test_results.tsv").exists()
  (output_dir / classifier.THRESHOLDS_FILE).write_text(saved)
  result = multi_label_run(workspace, output_dir, *args)
  assert "Resuming from" in result.stderr
  after = _rows(output_dir / "test_results.tsv")
  np.testing.assert_allclose([[float(x) for x in row[:-1]] for row in after],
                             [[float(x) for x in row[:-1]] for row in before], atol=1e-6)
  assert [row[-1] for row in after] == [row[-1] for row in before]


@pytest.mark.parametrize("extra, message", [
    (["--task_name=mrpc"], r"--multi_label: --task_name=mrpc has one label per example"),
    (["--labels_file={labels}"], r"--labels_file=.*labels\.txt: the label 'politics,law' holds "
                                 r"the label separator ','"),
    (["--multi_label_threshold=auto"], r"--multi_label_threshold=auto without --do_eval reads "
                                       r"the thresholds .* does not exist: add --do_eval"),
    (["--nomulti_label_prior_bias"], r"--multi_label_prior_bias: only a training run "
                                     r"\(--do_train\) starts a fresh head"),
])
def test_refusals(workspace, tmp_path, extra, message):
  (tmp_path / "labels.txt").write_text("art\npolitics,law\n")
  extra = [arg.format(labels=tmp_path / "labels.txt") for arg in extra]
  result = multi_label_run(workspace, tmp_path / "out", "--do_predict",
                           f"--init_checkpoint={workspace / 'pretrained' / 'bert_model.ckpt'}",
                           *extra, check=False)
  assert result.returncode != 0
  assert re.search(message, result.stderr), result.stderr[-2000:]
  assert not (tmp_path / "out").exists()


def test_multi_label_flags_are_refused_without_multi_label(workspace, tmp_path):
  result = run_classifier(workspace, tmp_path / "out", "--do_predict",
                          f"--init_checkpoint={workspace / 'pretrained' / 'bert_model.ckpt'}",
                          "--multi_label_prior_bias", "--multi_label_separator=;", check=False)
  assert result.returncode != 0
  assert re.search(r"--multi_label_separator, --multi_label_prior_bias: only with --multi_label",
                   result.stderr), result.stderr[-2000:]
  assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------
# The Hugging Face bridge: problem_type multi_label_classification, both ways.

def test_hugging_face_gives_our_probabilities_and_loss(trained, workspace, tmp_path):
  transformers = pytest.importorskip("transformers", reason="transformers is not installed")
  torch = pytest.importorskip("torch")
  output_dir, _ = trained
  prefix = tf.train.latest_checkpoint(str(output_dir))
  checkpoint.to_hf(prefix, workspace / "bert_config.json", tmp_path / "hf",
                   labels_file=output_dir / "labels.txt", multi_label=True)
  model = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
  assert model.config.problem_type == "multi_label_classification"
  assert model.config.id2label == dict(enumerate(LABELS))
  # Ours on the dev set, from the checkpoint.
  processor = classifier_data.get_processor("tsv", str(workspace / "data"), label_separator=",")
  arrays = classifier_data.to_arrays(processor.get_examples(str(workspace / "data"), "dev"),
                                     LABELS, 16, FullTokenizer(str(workspace / "vocab.txt")), True)
  ours = classifier.ClassifierModel(tiny_config(vocab_size=len(VOCAB)), len(LABELS),
                                    multi_label=True)
  checkpoint.load(prefix, ours.variables)
  per_example_loss, probabilities = ours.outputs(arrays)
  with torch.no_grad():
    theirs = model(input_ids=torch.tensor(arrays["input_ids"], dtype=torch.long),
                   attention_mask=torch.tensor(arrays["input_mask"], dtype=torch.long),
                   token_type_ids=torch.tensor(arrays["segment_ids"], dtype=torch.long),
                   labels=torch.tensor(arrays["label_ids"]))
  np.testing.assert_allclose(torch.sigmoid(theirs.logits).numpy(), probabilities.numpy(),
                             atol=1e-5, rtol=0)
  assert float(theirs.loss) == pytest.approx(float(np.mean(per_example_loss)), abs=1e-5)
  # And back: the same tensors, read as multi-label.
  hf = checkpoint.read_hf(tmp_path / "hf")
  assert hf.multi_label and hf.labels == LABELS
  back = tf.train.load_checkpoint(prefix)
  for name, value in hf.tensors.items():
    np.testing.assert_array_equal(value, back.get_tensor(name), err_msg=name)


def test_training_is_transformers_step_for_step(workspace, tmp_path):
  """Without dropout, the multi-label model and `adamw_corrected` with
  `decay_after_warmup` train as BertForSequenceClassification with torch's AdamW and
  get_linear_schedule_with_warmup: the same loss at each of 30 steps, the same head."""
  transformers = pytest.importorskip("transformers", reason="transformers is not installed")
  torch = pytest.importorskip("torch")
  from modeling.training import optimization  # pylint: disable=import-outside-toplevel
  config = tiny_config(vocab_size=len(VOCAB), hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0)
  processor = classifier_data.get_processor("tsv", str(workspace / "data"), label_separator=",")
  arrays = classifier_data.to_arrays(processor.get_examples(str(workspace / "data"), "train"),
                                     LABELS, 16, FullTokenizer(str(workspace / "vocab.txt")), True)
  rng = np.random.RandomState(0)
  batches = np.concatenate([rng.permutation(96) for _ in range(3)])[:240].reshape(30, 8)
  head = rng.normal(0, 0.02, size=(len(LABELS), config.hidden_size)).astype(np.float32)

  ours = classifier.ClassifierModel(config, len(LABELS), multi_label=True)
  checkpoint.load(workspace / "pretrained" / "bert_model.ckpt", ours,
                  allow_missing=(classifier.ClassifierHead.VARIABLES,))
  ours.head.output_weights.assign(head)
  ours.head.dropout_rate = 0.0
  optimizer = optimization.create_optimizer("adamw_corrected", ours.trainable_variables, 1e-3,
                                            30, 3, decay_after_warmup=True)
  ours_losses = []
  for rows in batches:
    batch = {name: value[rows] for name, value in arrays.items()}
    with tf.GradientTape() as tape:
      loss = ours.loss(batch, ours.loss_totals(batch))
    optimizer.apply_gradients(tape.gradient(loss, ours.trainable_variables))
    ours_losses.append(float(loss))

  checkpoint.to_hf(workspace / "pretrained" / "bert_model.ckpt", workspace / "bert_config.json",
                   tmp_path / "hf", task="encoder")
  torch.manual_seed(0)
  model = transformers.BertForSequenceClassification.from_pretrained(
      tmp_path / "hf", num_labels=len(LABELS), problem_type="multi_label_classification",
      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  with torch.no_grad():
    model.classifier.weight.copy_(torch.from_numpy(head))
    model.classifier.bias.zero_()
  named = list(model.named_parameters())
  excluded = [any(word in name for word in ("LayerNorm", "bias")) for name, _ in named]
  torch_optimizer = torch.optim.AdamW(
      [{"params": [p for (_, p), e in zip(named, excluded) if not e], "weight_decay": 0.01},
       {"params": [p for (_, p), e in zip(named, excluded) if e], "weight_decay": 0.0}],
      lr=1e-3, eps=1e-6)
  schedule = transformers.get_linear_schedule_with_warmup(torch_optimizer, 3, 30)
  model.train()
  theirs_losses = []
  for rows in batches:
    loss = model(input_ids=torch.tensor(arrays["input_ids"][rows], dtype=torch.long),
                 attention_mask=torch.tensor(arrays["input_mask"][rows], dtype=torch.long),
                 token_type_ids=torch.tensor(arrays["segment_ids"][rows], dtype=torch.long),
                 labels=torch.tensor(arrays["label_ids"][rows])).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    torch_optimizer.step()
    schedule.step()
    torch_optimizer.zero_grad()
    theirs_losses.append(loss.item())
  assert ours_losses[-1] < 0.95 * ours_losses[0]  # It learns: the comparison can fail.
  np.testing.assert_allclose(ours_losses, theirs_losses, atol=1e-5, rtol=0)
  np.testing.assert_allclose(ours.head.output_weights.numpy(),
                             model.classifier.weight.detach().numpy(), atol=1e-5)


def test_to_hf_refuses_multi_label_without_a_sentence_classifier(workspace, tmp_path):
  with pytest.raises(ValueError, match=r"multi_label: BertModel \(task encoder\) has no "
                                       r"sentence classifier head"):
    checkpoint.to_hf(workspace / "pretrained" / "bert_model.ckpt", workspace / "bert_config.json",
                     tmp_path / "hf", task="encoder", multi_label=True)
  assert not (tmp_path / "hf").exists()


def test_server_returns_the_labels_above_their_thresholds_with_buckets_and_bf16(tmp_path):
  from modeling.tasks import serving  # pylint: disable=import-outside-toplevel
  vocab_file = tmp_path / "vocab.txt"
  vocab_file.write_text("\n".join(VOCAB) + "\n")
  config = tiny_config(vocab_size=len(VOCAB))
  models = {dtype: classifier.ClassifierModel(config, 4, compute_dtype=dtype, multi_label=True)
            for dtype in (tf.float32, tf.bfloat16)}
  for ours, theirs in zip(models[tf.bfloat16].variables, models[tf.float32].variables):
    ours.assign(theirs)
  thresholds = np.array([0.45, 0.5, 0.55, 0.6])
  servers = {"plain": serving.ClassifierServer(models[tf.float32], str(vocab_file), True, 32,
                                               LABELS, thresholds=thresholds, label_separator="|"),
             "bf16, bucketed": serving.ClassifierServer(
                 models[tf.bfloat16], str(vocab_file), True, 32, LABELS, buckets=[8, 16, 32],
                 thresholds=thresholds, label_separator="|")}
  texts = tf.constant(["the cat sat", "a dog ran far away on the mat", "code"])
  outputs = {name: server.classify(texts) for name, server in servers.items()}
  np.testing.assert_allclose(outputs["bf16, bucketed"]["probabilities"],
                             outputs["plain"]["probabilities"], atol=2e-2, rtol=0)
  for output in outputs.values():
    above = output["probabilities"].numpy() > thresholds
    np.testing.assert_array_equal(output["above_threshold"], above)
    assert [s.decode() for s in output["labels"].numpy()] == [
        "|".join(label for label, yes in zip(LABELS, row) if yes) for row in above]
