"""--jit_whole_step: every task's whole training step and evaluation step compile with XLA
(as a TPU compiles them) and give the numbers of the uncompiled steps; one program per
bucket and step kind.

Each case trains a tiny one-layer model (dropout on) for two steps from the same
initial weights and dropout stream, compiled and not, then evaluates it; the
weights after training and the evaluation's outputs must agree within 1e-5
(bf16 and fp16: within what their rounding allows).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import flagsaver

from modeling.data import (length_buckets, pretraining_data, pretraining_input,
                           pretraining_records, tokenization)
from modeling.tasks import classifier, distillation, ner, pretraining, squad
from modeling.training import array_predictor, optimization, run_checkpoints, steps
from tiny import make_trainer, tiny_config, tiny_inputs

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TESTS_DIR)
BATCH, SEQ, PRED, STEPS = 4, 16, 5, 2
LEARNING_RATE = 1e-3


def _config(**changes):
  return tiny_config(num_hidden_layers=1, **changes)


def _pretraining_batches(seed=0):
  return [tiny_inputs(BATCH, SEQ, num_predictions=PRED, seed=seed + s) for s in range(STEPS)]


def _with_labels(make_labels):
  """Batches of tiny inputs (no masked LM features) plus `make_labels(rng)`'s features."""
  batches = []
  for s in range(STEPS):
    rng = np.random.RandomState(10 + s)
    batch = {k: v for k, v in tiny_inputs(BATCH, SEQ, seed=s).items()
             if k in ("input_ids", "input_mask", "segment_ids")}
    batches.append(dict(batch, **make_labels(rng)))
  return batches


def _class_labels(rng):
  return {"label_ids": rng.randint(0, 3, [BATCH]).astype(np.int32)}


def _values(rng):
  return {"label_ids": rng.uniform(0, 5, [BATCH]).astype(np.float32)}


def _spans(rng):
  return {"start_positions": rng.randint(0, SEQ, [BATCH]).astype(np.int32),
          "end_positions": rng.randint(0, SEQ, [BATCH]).astype(np.int32)}


def _tags(rng):
  return {"label_ids": rng.randint(0, 5, [BATCH, SEQ]).astype(np.int32),
          "label_weights": (rng.uniform(size=[BATCH, SEQ]) < 0.7).astype(np.int32)}


def _masked_lm_only(batches):
  return [{k: v for k, v in b.items() if k != "next_sentence_labels"} for b in batches]


def _dynamically_masked_batches(directory):
  """Batches of unmasked records masked as they are read (--dynamic_masking)."""
  # pylint: disable-next=import-outside-toplevel
  from test_create_pretraining_data import make_documents, write_corpus, write_vocab
  vocab_file = write_vocab(directory)
  path = os.path.join(directory, "unmasked.tfrecord")
  pretraining_records.create_pretraining_data(
      [write_corpus(os.path.join(directory, "corpus.txt"), make_documents(20, seed=3))],
      [path], tokenization.FullTokenizer(vocab_file),
      pretraining_data.PretrainingRecipe(max_seq_length=SEQ, max_predictions_per_seq=PRED,
                                         dupe_factor=1, masking="dynamic"))
  records = pretraining_input.PretrainingRecords(path, _config(), SEQ, PRED, seed=1,
                                                 dynamic_masking=True, vocab_file=vocab_file)
  dataset = records.dataset(BATCH, True)
  steps.check_static_batch(dataset, "training")  # As a compiled step needs.
  return [{k: v.numpy() for k, v in batch.items()} for batch in dataset.take(STEPS)]


ALBERT = {"embedding_size": 8, "num_hidden_groups": 1, "inner_group_num": 1}

# name: (model maker, batches of a scratch directory, TrainStep arguments). Each
# case compiles two programs (train, eval), so the features share cases: plain
# BERT pretraining is the masked LM student, classification the classifier's.
CASES = {
    "albert_pretraining_one_hot_embeddings": (
        lambda: pretraining.PretrainingModel(_config(**ALBERT), use_one_hot_embeddings=True),
        lambda _: _pretraining_batches(), {}),
    "masked_lm_distillation_dynamic_masking_accumulation": (
        lambda: distillation.MaskedLMDistillation(_config(), tiny_config()),
        lambda directory: _masked_lm_only(_dynamically_masked_batches(directory)),
        {"num_accumulation_steps": 2}),
    "classifier_distillation_bf16": (
        lambda: distillation.ClassifierDistillation(_config(), tiny_config(), 3,
                                                    compute_dtype=tf.bfloat16),
        lambda _: _with_labels(_class_labels), {}),
    "sts_b_regression": (lambda: classifier.ClassifierModel(_config(), 1, is_regression=True),
                         lambda _: _with_labels(_values), {}),
    "squad_fp16_loss_scaling": (
        lambda: squad.SquadModel(_config(), compute_dtype=tf.float16),
        lambda _: _with_labels(_spans), {"dynamic_loss_scale": True}),
    "ner_accumulation": (lambda: ner.NerModel(_config(), 5), lambda _: _with_labels(_tags),
                         {"num_accumulation_steps": 2}),
}

# Worst difference allowed, compiled against uncompiled, in the weights after
# training (atol) and the evaluation outputs (rtol and atol). In half precision
# XLA fuses and rounds differently: a gradient entry near 0 may change sign,
# moving a weight by up to lr per step.
HALF_PRECISION = (2 * STEPS * LEARNING_RATE, 1e-2)
TOLERANCES = {"classifier_distillation_bf16": HALF_PRECISION,
              "squad_fp16_loss_scaling": HALF_PRECISION}


def _stack(batches):
  return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


def train_and_evaluate(make_model, batches, jit_whole_step, **step_args):
  """Trains a fresh model (seed 0) on `batches`, then evaluates it on them.

  Returns:
    ({variable name: np.ndarray} after training, {output name: np.ndarray}).
  """
  strategy = tf.distribute.get_strategy()
  tf.random.set_seed(0)
  model = make_model()
  trained = getattr(model, "trained_variables", model.trainable_variables)
  opt = optimization.create_optimizer("adamw", trained, LEARNING_RATE, 10, 1)
  trainer = make_trainer(strategy, model.loss, opt, BATCH, totals_fn=model.loss_totals,
                         jit_whole_step=jit_whole_step, seed=3, **step_args)
  dataset = tf.data.Dataset.from_tensor_slices(_stack(batches))
  trainer.train_step.run(iter(dataset), tf.constant(STEPS))
  assert trainer.step == STEPS
  if hasattr(model, "eval_metrics"):
    outputs = trainer.evaluate(dataset, model.eval_metrics, STEPS)
  else:  # The scripts' evaluation: every row once, the last batch padded.
    rows = {k: v.reshape((-1,) + v.shape[2:])[:2 * BATCH - 1]
            for k, v in _stack(batches).items()}
    outputs = array_predictor.predict(strategy, model.predict_step, rows, BATCH,
                                      jit_compile=jit_whole_step)
  weights = {v.name: v.numpy() for v in model.variables}
  return weights, {k: np.asarray(v, np.float64) for k, v in outputs.items()}


def compare(name, directory):
  """Case `name` trained and evaluated uncompiled and compiled.

  Returns:
    {"weights": worst weight difference, "weight_tolerance": its bound,
     "outputs": {output name: worst |difference| / (tol + tol * |uncompiled|)}}
    (an output passes at <= 1).
  """
  make_model, make_batches, step_args = CASES[name]
  batches = make_batches(directory)
  plain_weights, plain_outputs = train_and_evaluate(make_model, batches, False, **step_args)
  jit_weights, jit_outputs = train_and_evaluate(make_model, batches, True, **step_args)
  weight_tolerance, output_tolerance = TOLERANCES.get(name, (1e-5, 1e-5))
  if set(plain_weights) != set(jit_weights) or set(plain_outputs) != set(jit_outputs):
    raise AssertionError(f"{name}: the runs have different variables or outputs")
  return {
      "weights": max(float(np.max(np.abs(plain_weights[k] - jit_weights[k])))
                     for k in plain_weights),
      "weight_tolerance": weight_tolerance,
      "outputs": {k: float(np.max(np.abs(jit_outputs[k] - v) /
                                  (output_tolerance + output_tolerance * np.abs(v))))
                  for k, v in plain_outputs.items()}}


def _bucketed_rows(count=10, seed=4):
  """Classifier rows [count, SEQ] whose lengths fall in both buckets of BUCKETS."""
  rng = np.random.RandomState(seed)
  rows = {k: np.zeros([count, SEQ], np.int32) for k in ("input_ids", "input_mask",
                                                         "segment_ids")}
  for row, length in enumerate([3, 5, 8, 12, 16] * (count // 5)):
    rows["input_ids"][row, :length] = rng.randint(1, 99, length)
    rows["input_mask"][row, :length] = 1
  rows["label_ids"] = rng.randint(0, 3, count).astype(np.int32)
  return rows


BUCKETS = [8, SEQ]
BUCKETED_STEPS = 5


def bucketed_epoch(directory):
  """Trains a classifier on length-bucketed batches (save cadence 2: three host calls),
  then predicts every row twice, all compiled.

  Returns:
    the sorted bucket lengths of the training batches.
  """
  strategy = tf.distribute.get_strategy()
  rows = _bucketed_rows()
  tf.random.set_seed(0)
  model = classifier.ClassifierModel(_config(), 3)
  opt = optimization.create_optimizer("adamw", model.trainable_variables, LEARNING_RATE,
                                      BUCKETED_STEPS, 1)
  trainer = make_trainer(strategy, model.loss, opt, BATCH, totals_fn=model.loss_totals,
                         jit_whole_step=True)
  dataset = length_buckets.training_batches(rows, BUCKETS, BATCH, 0, BUCKETED_STEPS)
  checkpoints = run_checkpoints.CheckpointManager(directory, [model, opt, trainer.state])
  trainer.train(dataset, BUCKETED_STEPS, checkpoints, save_checkpoints_steps=2)
  for _ in range(2):  # An evaluation, then a prediction: no new program.
    array_predictor.predict(strategy, model.predict_step, rows, BATCH, BUCKETS,
                            jit_compile=True)
  return sorted({int(batch["input_ids"].shape[1]) for batch in dataset})


def _programs(dump_dir):
  """{"train": n, "predict": n}: the XLA programs compiled, from the modules XLA dumped."""
  names = [name for name in os.listdir(dump_dir) if name.endswith(".before_optimizations.txt")]
  return {kind: sum(fn in name for name in names)
          for kind, fn in (("train", "replica_step"), ("predict", "predict_step"))}


def main(directory):
  """Runs the bucketed epoch, then every case (XLA_FLAGS must be set before TensorFlow
  starts compiling, so in a process of their own); prints one JSON line
  {"bucketed_epoch": {"lengths": [...], "programs": {...}}, case: compare() or
  {"error": message}}."""
  dump_dir = os.path.join(directory, "xla_dump")
  results = {"bucketed_epoch": {"lengths": bucketed_epoch(os.path.join(directory, "bucketed"))}}
  results["bucketed_epoch"]["programs"] = _programs(dump_dir)
  for name in CASES:
    os.makedirs(os.path.join(directory, name))
    try:
      results[name] = compare(name, os.path.join(directory, name))
    except Exception as error:  # pylint: disable=broad-except  (reported by the test)
      results[name] = {"error": f"{type(error).__name__}: {error}"}
  print(json.dumps(results))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  """main()'s results, run in one subprocess whose XLA dumps each program it compiles
  and skips LLVM's optimisation passes: the same HLO (what a TPU would accept or
  refuse, and its numbers), compiled in about half the time."""
  directory = tmp_path_factory.mktemp("jit")
  flags = f"--xla_backend_optimization_level=0 --xla_dump_to={directory / 'xla_dump'}"
  env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip(),
             TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join([REPO_DIR, TESTS_DIR]))
  done = subprocess.run([sys.executable, __file__, str(directory)],
                        env=env, cwd=REPO_DIR, capture_output=True, text=True, timeout=1200,
                        check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_compiled_step_refuses_batches_without_a_static_batch_dimension(tmp_path):
  steps.check_static_batch(tf.data.Dataset.range(10).batch(3, drop_remainder=True), "training")
  ragged = tf.data.Dataset.from_tensor_slices(_stack(_pretraining_batches())).unbatch().batch(3)
  with pytest.raises(ValueError, match=r"the training batches have no static batch dimension "
                                       r"\(input_ids, input_mask, .*drop_remainder=True"):
    steps.check_static_batch(ragged, "training")
  model = classifier.ClassifierModel(_config(), 3)
  opt = optimization.create_optimizer("adamw", model.trainable_variables, 1e-3, 10, 1)
  trainer = make_trainer(tf.distribute.get_strategy(), model.loss, opt, 3,
                         totals_fn=model.loss_totals, jit_whole_step=True)
  checkpoints = run_checkpoints.CheckpointManager(tmp_path, [model, opt, trainer.state])
  with pytest.raises(ValueError, match="the training batches have no static batch"):
    trainer.train(ragged, 2, checkpoints)  # Before anything is compiled or run.
  with pytest.raises(ValueError, match="the evaluation batches have no static batch"):
    trainer.evaluate(ragged, model.predict_step, 1)
  assert trainer.step == 0 and checkpoints.latest is None


def test_use_tpu_turns_it_on_and_refuses_it_off():
  import tpu_flags  # pylint: disable=import-outside-toplevel  (defines the flags)
  def jit_whole_step(*argv):
    with flagsaver.flagsaver():
      tpu_flags.FLAGS.unparse_flags()
      tpu_flags.FLAGS(["test", *argv])
      return tpu_flags.jit_whole_step_from_flags()

  assert not jit_whole_step()
  assert jit_whole_step("--jit_whole_step")
  assert jit_whole_step("--use_tpu")
  with pytest.raises(ValueError, match="--nojit_whole_step cannot take effect with --use_tpu"):
    jit_whole_step("--use_tpu", "--nojit_whole_step")


@pytest.mark.slow
def test_a_bucketed_epoch_compiles_one_program_per_bucket_and_step_kind(results):
  epoch = results["bucketed_epoch"]
  assert epoch["lengths"] == BUCKETS  # Both buckets met in training.
  # Five steps in three host calls, two predictions of every row: one program
  # for each bucket length of each step kind, none for a remainder batch.
  assert epoch["programs"] == {"train": len(BUCKETS), "predict": len(BUCKETS)}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_whole_step_compiles_and_matches_the_uncompiled_step(results, name):
  result = results[name]
  assert "error" not in result, result.get("error")
  assert result["weights"] <= result["weight_tolerance"], result
  assert result["outputs"] and max(result["outputs"].values()) <= 1.0, result


if __name__ == "__main__":
  main(sys.argv[1])
