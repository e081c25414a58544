"""ALBERT through the scripts: a SentencePiece model and an ALBERT config and checkpoint.

run_classifier fine-tunes an ALBERT checkpoint with --spm_model_file, exports a
SavedModel that classifies raw text in a fresh process as --do_predict does, and a
.tflite file that does the same;
extract_features reads the same files.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from modeling import BertConfig, BertModel, checkpoint
from test_albert import ALBERT_TINY
from test_run_classifier import check_export_classifies_as_predict
from test_tflite_export import interpreter
from test_run_ner import SERVE_SCRIPT, _read_columns

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPICS = {"computers": ["computer", "program", "code", "software"],
          "politics": ["vote", "law", "senate", "election"],
          "art": ["paint", "art", "museum", "sculpture"],
          "science": ["atom", "star", "physics", "biology"]}
FILLER = ["the", "a", "cat", "sat", "on", "mat", "dog", "ran", "far", "away", "today", "and"]


def _sentence(rng, topic):
  words = list(rng.choice(TOPICS[topic], 3)) + list(rng.choice(FILLER, 4))
  rng.shuffle(words)
  return " ".join(words).capitalize() + "."


def make_workspace(root):
  """A SentencePiece model, an ALBERT config and checkpoint, a 4-topic TSV task and a
  corpus (a blank line between documents)."""
  import sentencepiece  # noqa: PLC0415
  rng = np.random.RandomState(0)
  corpus = [[_sentence(rng, topic) for _ in range(rng.randint(2, 6))]
            for topic in rng.choice(sorted(TOPICS), 120)]
  (root / "corpus.txt").write_text("\n\n".join("\n".join(doc) for doc in corpus) + "\n")
  sentencepiece.SentencePieceTrainer.Train(
      input=str(root / "corpus.txt"), model_prefix=str(root / "spm"), vocab_size=120,
      hard_vocab_limit=False, pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
      control_symbols="[CLS],[SEP],[MASK]", minloglevel=2)
  vocab_size = sum(1 for _ in open(root / "spm.vocab", encoding="utf-8"))
  config = dict(ALBERT_TINY, vocab_size=vocab_size, num_hidden_layers=3, inner_group_num=2)
  (root / "albert_config.json").write_text(json.dumps(config))
  tf.random.set_seed(0)
  checkpoint.save(root / "pretrained" / "model.ckpt",
                  BertModel(BertConfig.from_dict(config)))
  data = root / "data"
  data.mkdir()
  for split, count in (("train", 96), ("dev", 21)):
    rows = ["label\ttext"] + [f"{t}\t{_sentence(rng, t)}"
                              for t in rng.choice(sorted(TOPICS), count)]
    (data / f"{split}.tsv").write_text("\n".join(rows) + "\n")
  test_rows = ["text"] + [_sentence(rng, t) for t in rng.choice(sorted(TOPICS), 13)]
  (data / "test.tsv").write_text("\n".join(test_rows) + "\n")
  return root


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
  return make_workspace(tmp_path_factory.mktemp("albert_scripts"))


def run_script(script, *args, check=True):
  result = subprocess.run([sys.executable, os.path.join(REPO_DIR, script), *map(str, args)],
                          capture_output=True, text=True, cwd=REPO_DIR)
  if check:
    assert result.returncode == 0, result.stderr[-5000:]
  return result


def classifier_args(workspace, output_dir, init_checkpoint):
  return ["--task_name=tsv", f"--data_dir={workspace / 'data'}",
          f"--spm_model_file={workspace / 'spm.model'}",
          f"--bert_config_file={workspace / 'albert_config.json'}",
          f"--output_dir={output_dir}", f"--init_checkpoint={init_checkpoint}",
          "--max_seq_length=24", "--log_steps=5", "--do_train", "--do_eval", "--do_predict",
          "--train_batch_size=8", "--learning_rate=5e-4", "--num_train_epochs=8",
          "--eval_batch_size=5", "--predict_batch_size=4"]


def test_run_classifier_fine_tunes_albert_and_exports(workspace, tmp_path):
  output_dir, export_dir = tmp_path / "output", tmp_path / "export"
  run_script("run_classifier.py",
             *classifier_args(workspace, output_dir, workspace / "pretrained" / "model.ckpt"),
             f"--export_dir={export_dir}", f"--export_tflite={tmp_path / 'albert.tflite'}")
  results = dict(line.split(" = ") for line in
                 (output_dir / "eval_results.txt").read_text().splitlines())
  assert float(results["eval_loss"]) < np.log(4) - 0.3, results  # it learnt something
  names = {name for name, _ in tf.train.list_variables(str(output_dir))}
  assert "bert/encoder/transformer/group_0/inner_group_1/LayerNorm_1/gamma" in names
  assert "output_weights" in names
  check_export_classifies_as_predict(workspace / "data" / "test.tsv", output_dir, export_dir,
                                     sorted(TOPICS), tmp_path)
  texts = (workspace / "data" / "test.tsv").read_text().splitlines()[1:]
  lite = interpreter(str(tmp_path / "albert.tflite")).get_signature_runner("classify")(
      text_a=np.array(texts, dtype=object))
  np.testing.assert_allclose(lite["probabilities"], np.loadtxt(output_dir / "test_results.tsv"),
                             atol=1e-4)


def test_extract_features_reads_albert(workspace, tmp_path):
  (tmp_path / "input.txt").write_text("The cat paints art. ||| A vote today.\nCode and atoms.\n")
  run_script("extract_features.py", f"--input_file={tmp_path / 'input.txt'}",
             f"--output_file={tmp_path / 'out.jsonl'}",
             f"--spm_model_file={workspace / 'spm.model'}",
             f"--bert_config_file={workspace / 'albert_config.json'}",
             f"--init_checkpoint={workspace / 'pretrained' / 'model.ckpt'}",
             "--layers=-1,-6", "--max_seq_length=24")
  rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
  assert len(rows) == 2
  first = rows[0]["features"][0]
  assert first["token"] == "[CLS]"
  assert [layer["index"] for layer in first["layers"]] == [-1, -6]  # 3 layers x 2 blocks
  assert len(first["layers"][0]["values"]) == 32


def test_neither_vocabulary_is_refused(workspace, tmp_path):
  result = run_script("run_classifier.py", "--task_name=tsv", f"--data_dir={workspace / 'data'}",
                      f"--bert_config_file={workspace / 'albert_config.json'}",
                      f"--output_dir={tmp_path / 'out'}", "--max_seq_length=24", "--do_train",
                      check=False)
  assert result.returncode != 0
  assert "--vocab_file (BERT's WordPiece vocabulary) or --spm_model_file" in result.stderr


@pytest.mark.slow
def test_albert_end_to_end(workspace, tmp_path):
  """SOP and n-gram data from raw text, MLM + SOP pretraining with LAMB, fine-tuning
  from that checkpoint, export, and raw text classified in a fresh process."""
  spm = f"--spm_model_file={workspace / 'spm.model'}"
  config = f"--bert_config_file={workspace / 'albert_config.json'}"
  records = tmp_path / "sop.tfrecord"
  run_script("create_pretraining_data.py", f"--input_file={workspace / 'corpus.txt'}",
             f"--output_file={records}", spm, "--sop", "--ngram=3", "--max_seq_length=24",
             "--max_predictions_per_seq=4", "--dupe_factor=2")
  labels = [int(tf.train.Example.FromString(r.numpy()).features.feature[
      "next_sentence_labels"].int64_list.value[0]) for r in tf.data.TFRecordDataset(records)]
  assert 0.3 < np.mean(labels) < 0.7, np.mean(labels)
  pretrained = tmp_path / "pretraining"
  run_script("run_pretraining.py", f"--input_file={records}", f"--output_dir={pretrained}",
             config, "--do_train", "--do_eval", "--optimizer=lamb", "--learning_rate=1e-3",
             "--max_seq_length=24", "--max_predictions_per_seq=4", "--train_batch_size=8",
             "--eval_batch_size=8", "--num_train_steps=30", "--num_warmup_steps=3",
             "--max_eval_steps=5", "--save_checkpoints_steps=30", "--log_steps=10")
  results = dict(line.split(" = ") for line in
                 (pretrained / "eval_results.txt").read_text().splitlines())
  assert float(results["masked_lm_loss"]) < np.log(120), results  # below chance
  names = {name for name, _ in tf.train.list_variables(str(pretrained))}
  assert "cls/predictions/transform/dense/kernel" in names
  assert "bert/encoder/embedding_hidden_mapping_in/kernel/adam_m" in names
  output_dir, export_dir = tmp_path / "classifier", tmp_path / "export"
  run_script("run_classifier.py",
             *classifier_args(workspace, output_dir, tf.train.latest_checkpoint(pretrained)),
             f"--export_dir={export_dir}")
  check_export_classifies_as_predict(workspace / "data" / "test.tsv", output_dir, export_dir,
                                     sorted(TOPICS), tmp_path)


def _tagged_sentence(rng):
  """Words of a workspace sentence, its period split off; science and art words tagged."""
  words = _sentence(rng, rng.choice(sorted(TOPICS))).rstrip(".").split() + ["."]
  kinds = {word: kind for kind, topic in (("SCI", "science"), ("ART", "art"))
           for word in TOPICS[topic]}
  return words, [f"B-{kinds[w.lower()]}" if w.lower() in kinds else "O" for w in words]


def test_run_ner_with_sentencepiece_predicts_and_serves_the_same(workspace, tmp_path):
  """run_ner.py on the ALBERT checkpoint with --spm_model_file: trains, evaluates,
  predicts and exports; the SavedModel, in a fresh process, tags as --do_predict."""
  rng = np.random.RandomState(1)
  for split, count in (("train", 120), ("dev", 24), ("test", 12)):
    lines = ["-DOCSTART- O", ""]
    for words, tags in (_tagged_sentence(rng) for _ in range(count)):
      lines += [f"{w}\t{t}" if split != "test" else w for w, t in zip(words, tags)] + [""]
    (tmp_path / f"{split}.conll").write_text("\n".join(lines) + "\n", encoding="utf-8")
  output_dir, export_dir = tmp_path / "output", tmp_path / "export"
  run_script("run_ner.py", f"--train_file={tmp_path / 'train.conll'}",
             f"--eval_file={tmp_path / 'dev.conll'}", f"--predict_file={tmp_path / 'test.conll'}",
             f"--spm_model_file={workspace / 'spm.model'}",
             f"--bert_config_file={workspace / 'albert_config.json'}",
             f"--init_checkpoint={workspace / 'pretrained' / 'model.ckpt'}",
             f"--output_dir={output_dir}", f"--export_dir={export_dir}", "--do_train",
             "--do_eval", "--do_predict", "--max_seq_length=24", "--train_batch_size=8",
             "--learning_rate=1e-3", "--num_train_epochs=6", "--log_steps=20")
  results = dict(line.split(" = ") for line in
                 (output_dir / "eval_results.txt").read_text().splitlines())
  assert float(results["eval_f1"]) > 0.5, results  # the tags follow from the words

  predicted = _read_columns(output_dir / "test_predictions.txt")
  texts = [" ".join(c[0] for c in sentence) for sentence in predicted]
  (tmp_path / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
  result = subprocess.run([sys.executable, "-c", SERVE_SCRIPT, str(export_dir),
                           str(tmp_path / "texts.json")], capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  served = json.loads(result.stdout.strip().splitlines()[-1])
  assert [output["tags"] for output in served] == [[c[1] for c in s] for s in predicted]
  assert any(tag != "O" for output in served for tag in output["tags"])
