"""Distillation: the loss against NumPy, the student's initialisation, the teacher kept
apart and unchanged, and run_distillation.py end to end (both modes, resumption)."""

import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from modeling import checkpoint
from modeling.model.config import BertConfig
from modeling.tasks import distillation, pretraining
from modeling.tasks.classifier import ClassifierModel
from modeling.training import optimization, run_checkpoints
from test_run_pretraining import read_checkpoint, write_config, write_records
from tiny import make_trainer, tiny_config, tiny_inputs

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEQ, PRED = 16, 4


# ----------------------------------------------------------------------------
# The loss against a NumPy implementation.

def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _numpy_kl(teacher, student, temperature):
  """KL(softmax(teacher/T) || softmax(student/T)) of each row, float64."""
  t, s = _log_softmax(teacher / temperature), _log_softmax(student / temperature)
  return (np.exp(t) * (t - s)).sum(-1)


def numpy_masked_lm_loss(student, teacher, ids, weights, student_hidden, teacher_hidden, mask,
                         alpha_ce, alpha_mlm, alpha_cos, temperature):
  """DistilBERT's loss written out in float64: weighted masked positions, real tokens."""
  student, teacher = student.astype(np.float64), teacher.astype(np.float64)
  w = weights.reshape(-1).astype(np.float64)
  ce = temperature ** 2 * (w * _numpy_kl(teacher, student, temperature)).sum() / (w.sum() + 1e-5)
  nll = -_log_softmax(student)[np.arange(len(w)), ids.reshape(-1)]
  mlm = (w * nll).sum() / (w.sum() + 1e-5)
  s, t = student_hidden.astype(np.float64), teacher_hidden.astype(np.float64)
  cos = (s * t).sum(-1) / (np.linalg.norm(s, axis=-1) * np.linalg.norm(t, axis=-1))
  real = mask.astype(np.float64)
  cosine = (real * (1 - cos)).sum() / real.sum()
  return alpha_ce * ce + alpha_mlm * mlm + alpha_cos * cosine, {
      "distill_ce": ce, "masked_lm_loss": mlm, "cosine_loss": cosine}


def _fixed_outputs(batch=3, seq=7, pred=4, vocab=50, hidden=12, seed=0):
  """Logits, hidden states and a batch with padding tokens and zero-weight positions."""
  rng = np.random.default_rng(seed)
  mask = np.zeros([batch, seq], np.int32)
  for row, length in enumerate([seq, 4, 2][:batch]):
    mask[row, :length] = 1
  weights = np.zeros([batch, pred], np.float32)
  for row, count in enumerate([4, 2, 0][:batch]):  # The last row: no real prediction.
    weights[row, :count] = 1.0
  return {
      "student": rng.normal(0, 3, [batch * pred, vocab]).astype(np.float32),
      "teacher": rng.normal(0, 3, [batch * pred, vocab]).astype(np.float32),
      "ids": rng.integers(0, vocab, [batch, pred]).astype(np.int32),
      "weights": weights, "mask": mask,
      # Padding tokens get large random states: they must not count.
      "student_hidden": rng.normal(0, 1, [batch, seq, hidden]).astype(np.float32),
      "teacher_hidden": rng.normal(0, 1, [batch, seq, hidden]).astype(np.float32),
  }


def _tf_masked_lm_loss(objective, o, rows=slice(None)):
  """The loss share of the batch rows `rows`, totals over the whole batch."""
  pred = o["ids"].shape[1]
  flat = slice(None if rows.start is None else rows.start * pred,
               None if rows.stop is None else rows.stop * pred)
  totals = distillation.MaskedLMDistillation.loss_totals(
      {"masked_lm_weights": o["weights"], "input_mask": o["mask"]})
  sums = distillation.masked_lm_sums(
      objective, o["student"][flat], o["teacher"][flat], o["ids"][rows], o["weights"][rows],
      o["student_hidden"][rows], o["teacher_hidden"][rows], o["mask"][rows])
  return distillation.loss_share(objective, sums, totals, distillation._MASKED_LM_TERMS), sums


@pytest.mark.parametrize("alphas, temperature", [((5.0, 2.0, 1.0), 2.0),
                                                 ((0.5, 0.0, 3.0), 1.0),
                                                 ((1.0, 1.0, 0.0), 4.0)])
def test_masked_lm_loss_matches_numpy(alphas, temperature):
  o = _fixed_outputs()
  objective = distillation.Objective(*alphas, temperature=temperature)
  expected, terms = numpy_masked_lm_loss(
      o["student"], o["teacher"], o["ids"], o["weights"], o["student_hidden"],
      o["teacher_hidden"], o["mask"], *alphas, temperature)
  loss, sums = _tf_masked_lm_loss(objective, o)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-6)
  for name, (total, count) in sums.items():
    np.testing.assert_allclose(float(total) / (float(count) + (name != "cosine_loss") * 1e-5),
                               terms[name], rtol=1e-6, err_msg=name)
  assert set(sums) == {"masked_lm_loss"} | {
      name for name, alpha in (("distill_ce", alphas[0]), ("cosine_loss", alphas[2])) if alpha}
  # The shares of parts of the batch (replicas, micro-batches) add up to the loss.
  parts = sum(float(_tf_masked_lm_loss(objective, o, slice(a, b))[0])
              for a, b in ((0, 1), (1, 3)))
  np.testing.assert_allclose(parts, expected, rtol=1e-6)


def test_padding_and_zero_weight_positions_do_not_count():
  o = _fixed_outputs()
  objective = distillation.Objective()
  loss, _ = _tf_masked_lm_loss(objective, o)
  changed = dict(o)
  rng = np.random.default_rng(1)
  weightless = o["weights"].reshape(-1) == 0
  for name in ("student", "teacher"):
    changed[name] = o[name].copy()
    changed[name][weightless] = rng.normal(0, 9, changed[name][weightless].shape)
  for name in ("student_hidden", "teacher_hidden"):
    changed[name] = o[name].copy()
    changed[name][o["mask"] == 0] = rng.normal(0, 9, changed[name][o["mask"] == 0].shape)
  changed["ids"] = np.where(o["weights"] == 0, 0, o["ids"])
  np.testing.assert_array_equal(float(_tf_masked_lm_loss(objective, changed)[0]), float(loss))


def test_classifier_loss_matches_numpy():
  rng = np.random.default_rng(2)
  student, teacher = (rng.normal(0, 2, [5, 3]).astype(np.float32) for _ in range(2))
  labels = rng.integers(0, 3, 5)
  nll = -_log_softmax(student.astype(np.float64))[np.arange(5), labels]
  objective = distillation.Objective(alpha_ce=0.7, alpha_label=0.3, temperature=3.0)
  sums = distillation.classifier_sums(objective, student, teacher, tf.constant(nll, tf.float32))
  loss = distillation.loss_share(objective, sums, {"examples": 5.0},
                                 distillation._CLASSIFIER_TERMS)
  expected = (0.7 * 9.0 * _numpy_kl(teacher.astype(np.float64), student.astype(np.float64),
                                    3.0).mean() + 0.3 * nll.mean())
  np.testing.assert_allclose(float(loss), expected, rtol=1e-6)


def test_objective_checks():
  with pytest.raises(ValueError, match="--temperature=0.0 must be positive"):
    distillation.Objective(temperature=0.0).check(False)
  with pytest.raises(ValueError, match="--alpha_cos=-1.0 must not be negative"):
    distillation.Objective(alpha_cos=-1.0).check(False)
  with pytest.raises(ValueError, match="nothing to learn from the teacher.*run_pretraining"):
    distillation.Objective(alpha_ce=0.0, alpha_cos=0.0).check(False)
  with pytest.raises(ValueError, match="nothing to learn.*run_classifier"):
    distillation.Objective(alpha_ce=0.0).check(True)


# ----------------------------------------------------------------------------
# The student's initialisation.

def test_default_student_layers_take_every_other_layer():
  assert distillation.default_student_layers(6, 3) == [0, 2, 4]
  assert distillation.default_student_layers(12, 6) == [0, 2, 4, 6, 8, 10]
  assert distillation.default_student_layers(12, 4) == [0, 3, 6, 9]
  assert distillation.parse_student_layers("5, 1", 6, 2) == [5, 1]
  for text, message in (("0,2", "names 2 layers; the student config has num_hidden_layers=3"),
                        ("0,2,6", "layer 6 is not one of the teacher's 0..5"),
                        ("0,a,2", "must be comma-separated layer indexes")):
    with pytest.raises(ValueError, match=message):
      distillation.parse_student_layers(text, 6, 3)
  with pytest.raises(ValueError, match="student has 4 layers, the teacher 2"):
    distillation.parse_student_layers(None, 2, 4)


@pytest.mark.parametrize("task_specific", [False, True])
def test_student_starts_as_the_chosen_teacher_layers_bit_for_bit(task_specific):
  teacher_config = tiny_config(num_hidden_layers=4)
  student_config = tiny_config(num_hidden_layers=2)
  if task_specific:
    model = distillation.ClassifierDistillation(student_config, teacher_config, 3)
  else:
    model = distillation.MaskedLMDistillation(student_config, teacher_config)
  layers = [3, 0]
  copied = distillation.init_from_teacher_layers(model.student, model.teacher, layers)
  teacher = checkpoint.named_variables(model.teacher)
  student = checkpoint.named_variables(model.student)
  assert sorted(copied) == sorted(student)
  for name, variable in student.items():
    source = re.sub(r"^bert/encoder/layer_(\d+)/",
                    lambda match: f"bert/encoder/layer_{layers[int(match[1])]}/", name)
    np.testing.assert_array_equal(variable.numpy(), teacher[source].numpy(), err_msg=name)
  heads = [n for n in student if n.startswith(("cls/", "output_", "bert/pooler/"))]
  assert heads and all(n in copied for n in heads)


def test_only_what_the_teacher_checkpoint_holds_is_copied():
  model = distillation.MaskedLMDistillation(tiny_config(num_hidden_layers=2),
                                            tiny_config(num_hidden_layers=2))
  before = model.student.masked_lm.output_bias.numpy()
  copied = distillation.init_from_teacher_layers(
      model.student, model.teacher, [0, 1],
      {n for n in checkpoint.named_variables(model.teacher) if not n.startswith("cls/")})
  assert not [n for n in copied if n.startswith("cls/")]
  np.testing.assert_array_equal(model.student.masked_lm.output_bias.numpy(), before)


def test_other_widths_are_refused_with_the_differences_named():
  with pytest.raises(ValueError, match=r"differs from the teacher's in hidden_size 48 \(student\) "
                                       r"vs 32 \(teacher\); intermediate_size 40 \(student\) vs "
                                       r"37 \(teacher\).*--student_init=random"):
    distillation.check_same_widths(tiny_config(hidden_size=48, intermediate_size=40),
                                   tiny_config())
  distillation.check_same_widths(tiny_config(num_hidden_layers=1, hidden_dropout_prob=0.0),
                                 tiny_config(num_hidden_layers=3))
  with pytest.raises(ValueError, match="vocab_size=98 differs from the teacher's 99"):
    distillation.MaskedLMDistillation(tiny_config(vocab_size=98), tiny_config())
  with pytest.raises(ValueError, match="--alpha_cos compares hidden states.*hidden_size=48"):
    distillation.MaskedLMDistillation(tiny_config(hidden_size=48), tiny_config())
  # Another width is fine without the cosine loss (a random or checkpoint student).
  distillation.MaskedLMDistillation(tiny_config(hidden_size=48), tiny_config(),
                                    distillation.Objective(alpha_cos=0.0))


# ----------------------------------------------------------------------------
# The teacher: not tracked, not trained, unchanged.

def _batch():
  return {k: v for k, v in tiny_inputs(batch_size=4, seq_length=SEQ).items()
          if k != "next_sentence_labels"}


def test_identical_student_and_teacher_have_no_distillation_loss():
  config = tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  model = distillation.MaskedLMDistillation(config, config)
  distillation.init_from_teacher_layers(model.student, model.teacher, [0, 1])
  batch = _batch()
  metrics = tf.distribute.get_strategy().run(model.eval_metrics, (batch,))
  ratio = lambda name: float(metrics[name][0]) / float(metrics[name][1])  # noqa: E731
  assert abs(ratio("distill_ce")) < 1e-6 and abs(ratio("cosine_loss")) < 1e-6
  assert ratio("masked_lm_accuracy") == ratio("teacher_masked_lm_accuracy")
  reference = pretraining.PretrainingModel(config, next_sentence=False)
  by_name = checkpoint.named_variables(reference)  # The student's names.
  for name, variable in checkpoint.named_variables(model.student).items():
    by_name[name].assign(variable)
  expected = tf.distribute.get_strategy().run(reference.eval_metrics, (batch,))["masked_lm_loss"]
  np.testing.assert_allclose(ratio("masked_lm_loss"), float(expected[0]) / float(expected[1]),
                             rtol=1e-6)


@pytest.mark.parametrize("task_specific", [False, True])
def test_teacher_is_not_tracked_trained_or_changed(tmp_path, task_specific):
  teacher_config = tiny_config(num_hidden_layers=3)
  student_config = tiny_config(num_hidden_layers=2)
  if task_specific:
    teacher = ClassifierModel(teacher_config, 3)
    model = distillation.ClassifierDistillation(student_config, teacher_config, 3)
    batch = dict(_batch(), label_ids=np.array([0, 2, 1, 2], np.int32))
  else:
    teacher = pretraining.PretrainingModel(teacher_config, next_sentence=False)
    model = distillation.MaskedLMDistillation(student_config, teacher_config)
    batch = _batch()
  checkpoint.save(tmp_path / "teacher.ckpt", teacher)
  model.load_teacher(str(tmp_path / "teacher.ckpt"))
  distillation.init_from_teacher_layers(model.student, model.teacher, [0, 2])
  teacher_ids = {id(v) for v in model.teacher.variables}
  assert not teacher_ids & {id(v) for v in model.variables}
  assert {v.name for v in model.variables} == {v.name for v in model.student.variables}
  optimizer = optimization.create_optimizer("adamw", model.trained_variables, 1e-2, 10, 0)
  assert not teacher_ids & {id(v) for v in optimizer.trained_variables}
  before = {n: v.numpy() for n, v in checkpoint.named_variables(model.teacher).items()}
  student_before = {n: v.numpy() for n, v in checkpoint.named_variables(model.student).items()}
  trainer = make_trainer(tf.distribute.get_strategy(), model.loss, optimizer, 4,
                         totals_fn=model.loss_totals, log_steps=3)
  checkpoints = run_checkpoints.CheckpointManager(tmp_path / "out",
                                                  [model, optimizer, trainer.state])
  dataset = tf.data.Dataset.from_tensors(batch).repeat()
  assert trainer.train(dataset, 3, checkpoints, 3).step == 3
  for name, value in checkpoint.named_variables(model.teacher).items():
    np.testing.assert_array_equal(value.numpy(), before[name], err_msg=name)
  changed = [n for n, v in checkpoint.named_variables(model.student).items()
             if not np.array_equal(v.numpy(), student_before[n])]
  assert len(changed) > len(student_before) // 2
  # The checkpoint holds the student (original names), its Adam slots and the loop state.
  saved = set(read_checkpoint(tmp_path / "out" / "model.ckpt-3"))
  student_names = set(checkpoint.named_variables(model.student))
  trained = {checkpoint.checkpoint_name(v) for v in model.trained_variables}
  assert saved == (student_names | {f"{n}/adam_{m}" for n in trained for m in "mv"}
                   | {"global_step", "bert_tf2/dropout_rng"})


def test_teacher_checkpoint_without_the_heads_it_needs(tmp_path):
  config = tiny_config()
  checkpoint.save(tmp_path / "encoder.ckpt", ClassifierModel(config, 3).bert)
  encoder = str(tmp_path / "encoder.ckpt")
  with pytest.raises(ValueError, match="has no masked-LM head.*--alpha_ce=0"):
    distillation.MaskedLMDistillation(config, config).load_teacher(encoder)
  report = distillation.MaskedLMDistillation(
      config, config, distillation.Objective(alpha_ce=0.0)).load_teacher(encoder)
  assert report.missing and all(n.startswith("cls/") for n in report.missing)
  with pytest.raises(ValueError, match="has no classifier head"):
    distillation.ClassifierDistillation(config, config, 3).load_teacher(encoder)
  checkpoint.save(tmp_path / "two.ckpt", ClassifierModel(config, 2))
  with pytest.raises(ValueError, match="classifies into 2 classes, the task has 3"):
    distillation.ClassifierDistillation(config, config, 3).load_teacher(
        str(tmp_path / "two.ckpt"))


# ----------------------------------------------------------------------------
# run_distillation.py end to end.

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far", "away", "computer",
         "program", "code", "vote", "law", "paint", "art", "atom", "star", "."]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
TOPICS = {"computers": ["computer", "program", "code"], "politics": ["vote", "law"],
          "art": ["paint", "art"], "science": ["atom", "star"]}


def run_script(script, *args, check=True):
  result = subprocess.run([sys.executable, os.path.join(REPO_DIR, script), *args],
                          capture_output=True, text=True, cwd=REPO_DIR,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=600)
  if check:
    assert result.returncode == 0, result.stderr[-5000:]
  return result


def _flags(**values):
  return [f"--{k}" if v is True else f"--no{k}" if v is False else f"--{k}={v}"
          for k, v in values.items()]


def _digest(directory):
  return {p: hashlib.sha256(open(os.path.join(directory, p), "rb").read()).hexdigest()
          for p in sorted(os.listdir(directory))}


@pytest.fixture(scope="module")
def general(tmp_path_factory):
  """A 4-layer teacher with the masked-LM head, a 2-layer student config, records."""
  root = tmp_path_factory.mktemp("general")
  teacher_config = write_config(root / "teacher.json", num_hidden_layers=4)
  student_config = write_config(root / "student.json", num_hidden_layers=2,
                                hidden_dropout_prob=0.1)
  tf.random.set_seed(0)
  teacher = pretraining.PretrainingModel(BertConfig.from_json_file(teacher_config),
                                         next_sentence=False)
  checkpoint.save(root / "teacher" / "model.ckpt", teacher)
  records = write_records(root / "data.tfrecord", 48)
  return root, teacher_config, student_config, str(root / "teacher" / "model.ckpt"), records


def _general_args(general, output_dir, **flags):
  root, teacher_config, student_config, teacher, records = general
  values = dict(input_file=records, output_dir=output_dir, teacher_config_file=teacher_config,
                teacher_checkpoint=teacher, student_config_file=student_config,
                max_seq_length=SEQ, max_predictions_per_seq=PRED, train_batch_size=8,
                eval_batch_size=8, learning_rate=1e-3, num_train_steps=6, num_warmup_steps=2,
                save_checkpoints_steps=3, log_steps=1, max_eval_steps=2, do_train=True)
  values.update(flags)
  return _flags(**values)


@pytest.mark.slow
def test_general_distillation_resumes_exactly_and_writes_the_student(general, tmp_path):
  root, _, student_config, _, _ = general
  out = tmp_path / "out"
  teacher_files = _digest(root / "teacher")
  run_script("run_distillation.py", *_general_args(general, out, do_eval=True))
  straight = read_checkpoint(out / "model.ckpt-6")
  results = dict(line.split(" = ") for line in
                 (out / "eval_results.txt").read_text().splitlines())
  assert set(results) == {"cosine_loss", "distill_ce", "global_step", "loss",
                          "masked_lm_accuracy", "masked_lm_loss", "teacher_masked_lm_accuracy"}
  for path in out.glob("model.ckpt-6.*"):
    path.unlink()
  log = run_script("run_distillation.py", *_general_args(general, out)).stderr
  assert "Resuming from" in log and "Student initialised" not in log
  resumed = read_checkpoint(out / "model.ckpt-6")
  assert set(straight) == set(resumed)
  for name in straight:
    np.testing.assert_allclose(straight[name], resumed[name], atol=1e-6, err_msg=name)
  # The student, in the original layout: no teacher, no next-sentence head.
  student = pretraining.PretrainingModel(BertConfig.from_json_file(student_config),
                                         next_sentence=False)
  names = set(checkpoint.named_variables(student))
  assert names <= set(straight)
  assert {n for n in straight if n.startswith(("bert/", "cls/")) and "adam" not in n} == names
  assert json.loads((out / "bert_config.json").read_text()) == json.loads(
      open(student_config, encoding="utf-8").read())
  assert _digest(root / "teacher") == teacher_files
  # The student checkpoint is a plain BERT: run_pretraining evaluates it.
  evaluated = tmp_path / "mlm"
  run_script("run_pretraining.py", f"--input_file={general[4]}", f"--output_dir={evaluated}",
             f"--bert_config_file={out / 'bert_config.json'}",
             f"--init_checkpoint={out / 'model.ckpt-6'}", "--do_eval", "--next_sentence=false",
             f"--max_seq_length={SEQ}", f"--max_predictions_per_seq={PRED}",
             "--eval_batch_size=8", "--max_eval_steps=2")
  ours = float(results["masked_lm_accuracy"])
  theirs = dict(line.split(" = ") for line in
                (evaluated / "eval_results.txt").read_text().splitlines())
  np.testing.assert_allclose(float(theirs["masked_lm_accuracy"]), ours, atol=1e-6)


@pytest.mark.slow
def test_general_distillation_with_dynamic_masking(tmp_path):
  from test_create_pretraining_data import VOCAB as WORDS_VOCAB, make_documents, write_corpus, \
      write_vocab  # pylint: disable=import-outside-toplevel
  # pylint: disable-next=import-outside-toplevel
  from modeling.data import pretraining_data, pretraining_records, tokenization
  vocab_file = write_vocab(tmp_path)
  records = tmp_path / "unmasked.tfrecord"
  pretraining_records.create_pretraining_data(
      [write_corpus(tmp_path / "corpus.txt", make_documents(30, seed=3, max_sentences=8))],
      [str(records)], tokenization.FullTokenizer(vocab_file),
      pretraining_data.PretrainingRecipe(max_seq_length=SEQ, max_predictions_per_seq=PRED,
                                         dupe_factor=1, masking="dynamic",
                                         packing="full_sentences", next_sentence=False))
  teacher_config = write_config(tmp_path / "teacher.json", vocab_size=len(WORDS_VOCAB),
                                num_hidden_layers=2)
  student_config = write_config(tmp_path / "student.json", vocab_size=len(WORDS_VOCAB),
                                num_hidden_layers=1)
  checkpoint.save(tmp_path / "teacher.ckpt", pretraining.PretrainingModel(
      BertConfig.from_json_file(teacher_config), next_sentence=False))
  general = (tmp_path, teacher_config, student_config, str(tmp_path / "teacher.ckpt"),
             str(records))
  args = _general_args(general, tmp_path / "out", num_train_steps=2, save_checkpoints_steps=2)
  refused = run_script("run_distillation.py", *args, check=False)
  assert refused.returncode != 0 and "record 0 is not masked" in refused.stderr
  run_script("run_distillation.py", *args, "--dynamic_masking", f"--vocab_file={vocab_file}",
             "--do_eval", "--student_init=random")
  results = (tmp_path / "out" / "eval_results.txt").read_text()
  assert "masked_lm_accuracy" in results and "global_step = 2" in results


@pytest.fixture(scope="module")
def task(tmp_path_factory):
  """A tsv task, its vocabulary, and a 4-layer teacher fine-tuned by run_classifier.py."""
  root = tmp_path_factory.mktemp("task")
  (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
  teacher_config = write_config(root / "teacher.json", vocab_size=len(VOCAB),
                                num_hidden_layers=4)
  write_config(root / "student.json", vocab_size=len(VOCAB), num_hidden_layers=2,
               hidden_dropout_prob=0.1)
  rng = np.random.RandomState(0)
  data = root / "data"
  data.mkdir()
  for split, count in (("train", 64), ("dev", 19)):
    rows = ["label\ttext"]
    for topic in rng.choice(sorted(TOPICS), count):
      words = list(rng.choice(TOPICS[topic], 3)) + list(rng.choice(WORDS[:10], 3))
      rng.shuffle(words)
      rows.append(f"{topic}\t{' '.join(words)}")
    (data / f"{split}.tsv").write_text("\n".join(rows) + "\n")
  run_script("run_classifier.py", "--task_name=tsv", f"--data_dir={data}",
             f"--vocab_file={root / 'vocab.txt'}", f"--bert_config_file={teacher_config}",
             f"--output_dir={root / 'teacher'}", "--do_train", f"--max_seq_length={SEQ}",
             "--train_batch_size=8", "--learning_rate=2e-3", "--num_train_epochs=4",
             "--log_steps=8")
  return root


def _task_args(task, output_dir, *extra):
  return ["--task_name=tsv", f"--data_dir={task / 'data'}", f"--vocab_file={task / 'vocab.txt'}",
          f"--teacher_config_file={task / 'teacher.json'}",
          f"--teacher_checkpoint={task / 'teacher'}",
          f"--student_config_file={task / 'student.json'}", f"--output_dir={output_dir}",
          f"--max_seq_length={SEQ}", "--train_batch_size=8", "--eval_batch_size=5",
          "--learning_rate=2e-3", "--num_train_epochs=1", "--save_checkpoints_steps=4",
          "--log_steps=4", *extra]


@pytest.mark.slow
def test_task_distillation_resumes_and_run_classifier_evaluates_and_exports(task, tmp_path):
  out = tmp_path / "out"
  teacher_files = _digest(task / "teacher")
  run_script("run_distillation.py", *_task_args(task, out, "--do_train", "--do_eval"))
  results = dict(line.split(" = ") for line in
                 (out / "eval_results.txt").read_text().splitlines())
  assert set(results) == {"eval_accuracy", "eval_loss", "global_step", "loss",
                          "teacher_eval_accuracy"}
  assert results["global_step"] == "8"
  straight = read_checkpoint(out / "model.ckpt-8")
  for path in out.glob("model.ckpt-8.*"):
    path.unlink()
  assert "Resuming from" in run_script("run_distillation.py",
                                       *_task_args(task, out, "--do_train")).stderr
  resumed = read_checkpoint(out / "model.ckpt-8")
  for name in straight:
    np.testing.assert_allclose(straight[name], resumed[name], atol=1e-6, err_msg=name)
  assert _digest(task / "teacher") == teacher_files
  # run_classifier.py evaluates the student checkpoint as its own, and exports it.
  evaluated, export = tmp_path / "evaluated", tmp_path / "export"
  run_script("run_classifier.py", "--task_name=tsv", f"--data_dir={task / 'data'}",
             f"--vocab_file={task / 'vocab.txt'}", f"--bert_config_file={out / 'bert_config.json'}",
             f"--init_checkpoint={out}", f"--output_dir={evaluated}",  # its latest
             "--do_eval", f"--max_seq_length={SEQ}", "--eval_batch_size=5",
             f"--export_dir={export}")
  theirs = dict(line.split(" = ") for line in
                (evaluated / "eval_results.txt").read_text().splitlines())
  np.testing.assert_allclose(float(theirs["eval_accuracy"]), float(results["eval_accuracy"]))
  np.testing.assert_allclose(float(theirs["eval_loss"]), float(results["eval_loss"]), rtol=1e-5)
  assert (export / "saved_model.pb").exists()


REFUSALS_SCRIPT = """
import json
import sys
import run_distillation
for args in json.loads(sys.argv[1]):
  run_distillation.FLAGS.unparse_flags()
  run_distillation.FLAGS(["run_distillation.py", *args])
  try:
    run_distillation.main([])
    print(json.dumps("no error"))
  except (ValueError, FileNotFoundError) as error:
    print(json.dumps(str(error)))
"""


@pytest.mark.slow
def test_flags_of_the_other_mode_and_bad_teachers_are_refused(task, general, tmp_path):
  cases = [
      (_task_args(task, tmp_path / "a", "--do_train", "--num_train_steps=5"),
       "--num_train_steps: general distillation only"),
      (_general_args(general, tmp_path / "b", num_train_epochs=2),
       "--num_train_epochs: task-specific distillation only; pass --task_name"),
      (_general_args(general, tmp_path / "c", init_checkpoint=general[3]),
       "--init_checkpoint: give the student's starting checkpoint as --student_init=PATH"),
      (_general_args(general, tmp_path / "d", student_layers="0,1,2"),
       "--student_layers='0,1,2' names 3 layers; the student config has num_hidden_layers=2"),
      (_general_args(general, os.path.dirname(general[3])),
       "is in --output_dir=.*where the student's checkpoints go"),
      (_task_args(task, tmp_path / "e", "--do_train",
                  f"--teacher_checkpoint={task / 'missing'}"),
       "checkpoint not found"),
      (_task_args(task, tmp_path / "f", "--do_eval"),
       "--do_eval without --do_train needs a student checkpoint in --output_dir"),
      (_task_args(task, tmp_path / "g", "--do_train", "--task_name=sts-b"),
       "--task_name=sts-b is a regression task: there are no class probabilities"),
      (_general_args(general, tmp_path / "h", masked_lm_prob=0.9, do_whole_word_mask=True),
       "--masked_lm_prob, --do_whole_word_mask: the records' masks were drawn by "
       "create_pretraining_data.py; these apply with --dynamic_masking only"),
  ]
  result = subprocess.run([sys.executable, "-c", REFUSALS_SCRIPT,
                           json.dumps([[str(a) for a in args] for args, _ in cases])],
                          capture_output=True, text=True, cwd=REPO_DIR, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_DIR))
  assert result.returncode == 0, result.stderr[-3000:]
  errors = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('"')]
  assert len(errors) == len(cases), result.stdout
  for (_, message), error in zip(cases, errors):
    assert re.search(message, error), (message, error)
