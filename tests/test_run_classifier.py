"""run_classifier.py end to end on tiny data, the SavedModel, and the original as oracle."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import oracle
from modeling import BertModel, checkpoint
from modeling.data.classifier_data import InputExample, convert_example
from modeling.data.graph_packing import pack_inputs
from modeling.data.tokenization import FullTokenizer
from tiny import TINY_CONFIG, tiny_config

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far", "away", "computer",
         "program", "code", "vote", "law", "paint", "art", "atom", "star", "work", "job", "."]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["##s", "##ed"]
TOPICS = {"computers": ["computer", "program", "code"], "politics": ["vote", "law"],
          "art": ["paint", "art"], "science": ["atom", "star"]}


def _sentence(rng, topic):
  words = list(rng.choice(TOPICS[topic], 3)) + list(rng.choice(WORDS[:10], 3))
  rng.shuffle(words)
  return " ".join(words)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
  """A tiny pretrained checkpoint, vocab, config and a 4-topic TSV task."""
  root = tmp_path_factory.mktemp("classifier")
  (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
  config = dict(TINY_CONFIG, vocab_size=len(VOCAB))
  (root / "bert_config.json").write_text(json.dumps(config))
  tf.random.set_seed(0)  # The same "pretrained" weights whatever ran before.
  checkpoint.save(root / "pretrained" / "bert_model.ckpt",
                  BertModel(tiny_config(vocab_size=len(VOCAB))))
  rng = np.random.RandomState(0)
  data = root / "data"
  data.mkdir()
  for split, count in (("train", 96), ("dev", 21)):
    rows = ["label\ttext"] + [f"{t}\t{_sentence(rng, t)}"
                              for t in rng.choice(sorted(TOPICS), count)]
    (data / f"{split}.tsv").write_text("\n".join(rows) + "\n")
  test_rows = ["text"] + [_sentence(rng, t) for t in rng.choice(sorted(TOPICS), 13)]
  (data / "test.tsv").write_text("\n".join(test_rows) + "\n")
  return root


def run_classifier(workspace, output_dir, *extra, check=True):
  args = [sys.executable, os.path.join(REPO_DIR, "run_classifier.py"), "--task_name=tsv",
          f"--data_dir={workspace / 'data'}", f"--vocab_file={workspace / 'vocab.txt'}",
          f"--bert_config_file={workspace / 'bert_config.json'}", f"--output_dir={output_dir}",
          "--max_seq_length=16", "--log_steps=5", *extra]
  result = subprocess.run(args, capture_output=True, text=True, cwd=REPO_DIR)
  if check:
    assert result.returncode == 0, result.stderr[-5000:]
  return result


@pytest.fixture(scope="module")
def trained(workspace):
  """Fine-tunes, evaluates, predicts and exports once; returns the output paths."""
  output_dir, export_dir = workspace / "output", workspace / "export"
  run_classifier(workspace, output_dir, "--do_train", "--do_eval", "--do_predict",
                 f"--init_checkpoint={workspace / 'pretrained' / 'bert_model.ckpt'}",
                 "--train_batch_size=8", "--learning_rate=2e-3", "--num_train_epochs=6",
                 "--eval_batch_size=5", "--predict_batch_size=4", f"--export_dir={export_dir}")
  return output_dir, export_dir


def test_outputs_as_the_original(trained):
  output_dir, _ = trained
  lines = (output_dir / "eval_results.txt").read_text().splitlines()
  keys = [line.split(" = ")[0] for line in lines]
  assert keys == ["eval_accuracy", "eval_loss", "global_step", "loss"]
  results = dict(line.split(" = ") for line in lines)
  assert int(results["global_step"]) == int(96 / 8 * 6)
  assert float(results["eval_accuracy"]) > 0.5  # 4 topics: chance is about 0.25
  assert (output_dir / "labels.txt").read_text().split() == sorted(TOPICS)
  rows = (output_dir / "test_results.tsv").read_text().splitlines()
  assert len(rows) == 13  # 13 rows, predict batches of 4: the padding is dropped
  probabilities = np.array([[float(x) for x in row.split("\t")] for row in rows])
  np.testing.assert_allclose(probabilities.sum(1), np.ones(13), atol=1e-5)
  assert tf.train.latest_checkpoint(str(output_dir)).endswith("model.ckpt-72")


SAVED_MODEL_SCRIPT = """
import sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the tokenizer ops
export_dir, test_file, out = sys.argv[1:4]
texts = [line.rstrip("\\n") for line in open(test_file, encoding="utf-8")][1:]
model = tf.saved_model.load(export_dir)
outputs = model.signatures["serving_default"](text_a=tf.constant(texts))
np.save(out, outputs["probabilities"].numpy())
print(outputs["label"].numpy()[0].decode())
"""


def check_export_classifies_as_predict(test_file, output_dir, export_dir, labels, tmp_path):
  """The SavedModel, in a fresh process, gives --do_predict's probabilities and labels.

  Args:
    test_file: the test.tsv --do_predict read (a header, then `text` rows).
    output_dir: the run's --output_dir, with its test_results.tsv.
    export_dir: its --export_dir.
    labels: the class names in class-id order.
    tmp_path: a scratch directory.
  """
  result = subprocess.run([sys.executable, "-c", SAVED_MODEL_SCRIPT, str(export_dir),
                           str(test_file), str(tmp_path / "p.npy")],
                          capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  served = np.load(tmp_path / "p.npy")
  predicted = np.loadtxt(output_dir / "test_results.tsv")
  np.testing.assert_allclose(served, predicted, atol=1e-5)
  assert result.stdout.strip() == labels[int(np.argmax(predicted[0]))]


def test_saved_model_matches_do_predict(trained, workspace, tmp_path):
  output_dir, export_dir = trained
  check_export_classifies_as_predict(workspace / "data" / "test.tsv", output_dir, export_dir,
                                     sorted(TOPICS), tmp_path)


def test_resume_is_a_no_op_when_done_and_eval_only_reads_checkpoint(trained, workspace):
  output_dir, _ = trained
  result = run_classifier(workspace, output_dir, "--do_eval", "--eval_batch_size=7")
  assert "Resuming from" in result.stderr
  lines = dict(line.split(" = ") for line in
               (output_dir / "eval_results.txt").read_text().splitlines())
  assert lines["global_step"] == "72"


ORIGINAL_CREATE_MODEL = """
import sys
import numpy as np
import original_bert
from bert import run_classifier
tf, modeling = original_bert.tf, original_bert.modeling
config_file, ckpt, inputs, out = sys.argv[1:5]
data = np.load(inputs)
config = modeling.BertConfig.from_json_file(config_file)
_, _, logits, probabilities = run_classifier.create_model(
    config, False, tf.constant(data["input_ids"]), tf.constant(data["input_mask"]),
    tf.constant(data["segment_ids"]), tf.constant(data["label_ids"]), 4, False)
with tf.Session() as sess:
  tf.train.Saver().restore(sess, ckpt)
  np.save(out, sess.run(probabilities))
"""


def test_original_create_model_loads_our_checkpoint(trained, workspace, tmp_path):
  output_dir, _ = trained
  tokenizer = FullTokenizer(str(workspace / "vocab.txt"))
  examples = [InputExample(str(i), text) for i, text in enumerate(
      ["the computer code sat", "a dog ran far away . vote law", "paint art atom"])]
  features = [convert_example(e, None, 16, tokenizer) for e in examples]
  arrays = {k: np.array([getattr(f, k) for f in features], np.int32)
            for k in ("input_ids", "input_mask", "segment_ids")}
  arrays["label_ids"] = np.zeros(3, np.int32)
  np.savez(tmp_path / "inputs.npz", **arrays)
  oracle.run(ORIGINAL_CREATE_MODEL, workspace / "bert_config.json",
             tf.train.latest_checkpoint(str(output_dir)), tmp_path / "inputs.npz",
             tmp_path / "original.npy")
  original = np.load(tmp_path / "original.npy")

  from modeling.tasks.classifier import ClassifierModel  # pylint: disable=import-outside-toplevel
  model = ClassifierModel(tiny_config(vocab_size=len(VOCAB)), num_labels=4)
  checkpoint.load(tf.train.latest_checkpoint(str(output_dir)), model)
  _, ours = model.outputs(arrays)
  np.testing.assert_allclose(ours, original, atol=1e-5)


@pytest.mark.parametrize("length_a, length_b", [
    (3, 0), (20, 0), (3, 4), (9, 9), (20, 2), (2, 20), (13, 12), (0, 5), (7, 6)])
def test_in_graph_packing_matches_convert_example(workspace, length_a, length_b):
  tokenizer = FullTokenizer(str(workspace / "vocab.txt"))
  text_a = " ".join(WORDS[i % len(WORDS)] for i in range(length_a))
  text_b = " ".join(WORDS[(i * 3) % len(WORDS)] for i in range(length_b))
  expected = convert_example(InputExample("0", text_a, text_b or None), None, 16, tokenizer)
  ids_a = tf.ragged.constant([tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text_a))],
                             dtype=tf.int64, ragged_rank=1)
  ids_b = tf.ragged.constant([tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text_b))],
                             dtype=tf.int64, ragged_rank=1)
  input_ids, input_mask, segment_ids = pack_inputs(ids_a, ids_b, 16, 2, 3)
  assert input_ids.numpy()[0].tolist() == expected.input_ids
  assert input_mask.numpy()[0].tolist() == expected.input_mask
  assert segment_ids.numpy()[0].tolist() == expected.segment_ids


def test_regression_task(tmp_path, workspace):
  """STS-B layout: one output, squared error, Pearson/Spearman in eval_results."""
  data = tmp_path / "stsb"
  data.mkdir()
  header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
  rng = np.random.RandomState(1)
  for split, count in (("train", 16), ("dev", 6)):
    rows = [header] + [f"{i}\tg\tf\t2012\t{i}\ts\ts\t{_sentence(rng, 'art')}\t"
                       f"{_sentence(rng, 'science')}\t{rng.uniform(0, 5):.3f}"
                       for i in range(count)]
    (data / f"{split}.tsv").write_text("\n".join(rows) + "\n")
  output_dir = tmp_path / "out"
  run_classifier(workspace, output_dir, "--task_name=sts-b", f"--data_dir={data}",
                 "--do_train", "--do_eval", "--train_batch_size=8", "--num_train_epochs=1")
  keys = [line.split(" = ")[0] for line in (output_dir / "eval_results.txt").read_text()
          .splitlines()]
  assert keys == ["eval_loss", "global_step", "loss", "pearson", "spearman"]
  assert not (output_dir / "labels.txt").exists()


@pytest.mark.parametrize("extra, message", [
    (["--task_name=glue", "--do_train"], "unknown task_name 'glue'; known tasks: cola"),
    (["--do_train", "--max_seq_length=65"], "(got --max_seq_length 65)"),
    (["--do_eval"], "no checkpoint in --output_dir"),
    (["--max_seq_length=16"], "At least one of `do_train`"),
    (["--do_train", "--length_buckets=none", "--nogroup_by_length"],
     "--nogroup_by_length cannot take effect: --length_buckets=none is one bucket"),
])
def test_bad_input_is_named(workspace, tmp_path, extra, message):
  result = run_classifier(workspace, tmp_path / "out", *extra, check=False)
  assert result.returncode != 0
  assert message in result.stderr


def test_mismatched_init_checkpoint_is_refused(workspace, tmp_path):
  other = tmp_path / "other" / "bert_model.ckpt"
  checkpoint.save(other, BertModel(tiny_config(vocab_size=len(VOCAB), hidden_size=16)))
  result = run_classifier(workspace, tmp_path / "out", "--do_train",
                          f"--init_checkpoint={other}", check=False)
  assert result.returncode != 0
  assert "bert/embeddings/word_embeddings: checkpoint" in result.stderr


def test_sequences_longer_than_the_position_table(workspace, tmp_path):
  """A hierarchical config fine-tunes past max_position_embeddings from the same checkpoint."""
  config = dict(TINY_CONFIG, vocab_size=len(VOCAB), max_position_embeddings=8,
                position_embedding_type="hierarchical")
  (tmp_path / "long_config.json").write_text(json.dumps(config))
  pretrained = tmp_path / "pretrained" / "bert_model.ckpt"
  checkpoint.save(pretrained, BertModel(tiny_config(vocab_size=len(VOCAB),
                                                    max_position_embeddings=8)))
  output_dir = tmp_path / "out"
  run_classifier(workspace, output_dir, f"--bert_config_file={tmp_path / 'long_config.json'}",
                 f"--init_checkpoint={pretrained}", "--do_train", "--do_eval",
                 "--max_seq_length=16", "--train_batch_size=16", "--num_train_epochs=1")
  results = dict(line.split(" = ") for line in
                 (output_dir / "eval_results.txt").read_text().splitlines())
  assert int(results["global_step"]) == 6
  refused = run_classifier(workspace, tmp_path / "refused",
                           f"--bert_config_file={tmp_path / 'long_config.json'}",
                           "--do_train", "--max_seq_length=65", check=False)
  assert "exceeds max_position_embeddings^2=64" in refused.stderr
  assert "(got --max_seq_length 65)" in refused.stderr


def test_refusals_before_any_work(workspace, tmp_path):
  """Each fails at start, naming the flag and path, with nothing written or deleted."""
  pretrained = workspace / "pretrained" / "bert_model.ckpt"
  data_files = sorted(os.listdir(workspace / "data"))
  # Predicting from a checkpoint without the classifier head would give random classes.
  result = run_classifier(workspace, tmp_path / "out", "--do_predict",
                          f"--init_checkpoint={pretrained}", check=False)
  assert result.returncode != 0
  assert "bert_model.ckpt has no output_bias, output_weights: without training" in result.stderr
  assert not (tmp_path / "out" / "test_results.tsv").exists()
  # An export over a directory that is not an earlier export would delete it.
  result = run_classifier(workspace, tmp_path / "out", "--do_train",
                          f"--export_dir={workspace / 'data'}", check=False)
  assert "--export_dir=" in result.stderr and "is not an earlier export" in result.stderr
  assert sorted(os.listdir(workspace / "data")) == data_files
  # A vocabulary with more entries than the embeddings have rows.
  small = tmp_path / "small_config.json"
  small.write_text(json.dumps(dict(TINY_CONFIG, vocab_size=len(VOCAB) - 2)))
  result = run_classifier(workspace, tmp_path / "out3", "--do_train",
                          f"--bert_config_file={small}", check=False)
  assert (f"vocab.txt has {len(VOCAB)} entries but {small} has vocab_size={len(VOCAB) - 2}"
          in result.stderr)
  assert not (tmp_path / "out3").exists()


def test_an_output_that_is_an_input_is_refused(workspace, tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  for name in ("train.tsv", "dev.tsv"):
    (data / name).write_bytes((workspace / "data" / name).read_bytes())
  (data / "test.tsv").write_text("text\nthe cat\n")
  (data / "labels.txt").symlink_to(data / "dev.tsv")
  result = run_classifier(workspace, data, f"--data_dir={data}", "--do_train", check=False)
  assert "--data_dir=" in result.stderr and "dev.tsv is also an output" in result.stderr


def test_bucketed_and_unbucketed_results_agree(trained, workspace, tmp_path):
  output_dir, _ = trained
  fine_tuned = tf.train.latest_checkpoint(str(output_dir))
  results = {}
  for buckets in ("none", "auto", "8,12"):
    out = tmp_path / buckets.replace(",", "_")
    run_classifier(workspace, out, "--do_eval", "--do_predict", f"--init_checkpoint={fine_tuned}",
                   f"--length_buckets={buckets}", "--eval_batch_size=5",
                   "--predict_batch_size=4")
    rows = (out / "test_results.tsv").read_text().splitlines()
    results[buckets] = (np.array([[float(x) for x in row.split("\t")] for row in rows]),
                        dict(line.split(" = ") for line in
                             (out / "eval_results.txt").read_text().splitlines()))
  for buckets in ("auto", "8,12"):
    np.testing.assert_allclose(results[buckets][0], results["none"][0], atol=1e-5, rtol=0)
    assert results[buckets][1]["eval_accuracy"] == results["none"][1]["eval_accuracy"]
    assert abs(float(results[buckets][1]["eval_loss"])
               - float(results["none"][1]["eval_loss"])) < 1e-5


def test_bucketed_training_resumes_exactly(workspace, tmp_path):
  """Dropout on, buckets of 8 and 12 of 16: the run resumes from step 6 after its last
  checkpoint is deleted, and ends on the same weights."""
  args = ["--do_train", f"--init_checkpoint={workspace / 'pretrained' / 'bert_model.ckpt'}",
          "--train_batch_size=8", "--num_train_epochs=1", "--save_checkpoints_steps=6",
          "--length_buckets=8,12"]
  out = tmp_path / "out"
  run_classifier(workspace, out, *args)
  last = tf.train.latest_checkpoint(str(out))
  assert last.endswith("model.ckpt-12")
  straight = tf.train.load_checkpoint(last)
  for path in out.glob("model.ckpt-12.*"):
    path.unlink()
  run_classifier(workspace, out, *args)
  resumed = tf.train.load_checkpoint(str(out / "model.ckpt-12"))
  for name in straight.get_variable_to_shape_map():
    np.testing.assert_allclose(resumed.get_tensor(name), straight.get_tensor(name), atol=1e-6,
                               err_msg=name)


def test_jit_optimizer_trains_as_the_plain_update(trained, workspace, tmp_path):
  """--jit_optimizer: the same run as `trained` (same seed, batches and dropout draws) to
  the same eval loss within float rounding; refused with --jit_whole_step."""
  output_dir, _ = trained
  out = tmp_path / "jit"
  run_classifier(workspace, out, "--do_train", "--do_eval", "--jit_optimizer",
                 f"--init_checkpoint={workspace / 'pretrained' / 'bert_model.ckpt'}",
                 "--train_batch_size=8", "--learning_rate=2e-3", "--num_train_epochs=6",
                 "--eval_batch_size=5")
  plain, jit = (dict(line.split(" = ") for line in (d / "eval_results.txt").read_text()
                     .splitlines()) for d in (output_dir, out))
  assert jit["global_step"] == plain["global_step"]
  assert float(jit["eval_loss"]) == pytest.approx(float(plain["eval_loss"]), abs=1e-3)
  result = run_classifier(workspace, tmp_path / "whole", "--do_train", "--jit_optimizer",
                          "--jit_whole_step", check=False)
  assert result.returncode != 0
  assert "--jit_optimizer cannot take effect with --jit_whole_step" in result.stderr
