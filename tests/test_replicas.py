"""Several replicas equal one: MirroredStrategy over 2 and 4 logical CPU devices against one.

For the classifier (length-bucketed batches), NER, SQuAD and pretraining with
gradient accumulation, the same global batches train the same initial weights
on one device and on 2 or 4 replicas (each a share of every batch); the weights
after training and the evaluation's outputs must agree within 1e-5. Splitting
the CPU must happen before TensorFlow starts, and two MirroredStrategy of other sizes
cannot share a process (their collectives' groups collide), so the runs of each count
are in a subprocess of their own.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TESTS_DIR)
REPLICAS = (2, 4)
GLOBAL_BATCH, SEQ, PRED, STEPS = 8, 16, 5, 3
BUCKETS = [8, SEQ]


def _rows(count=16, seed=0, **labels):
  """Rows [count, SEQ] with lengths over both BUCKETS, plus `labels` {name: (maker)}."""
  rng = np.random.RandomState(seed)
  rows = {k: np.zeros([count, SEQ], np.int32) for k in ("input_ids", "input_mask",
                                                         "segment_ids")}
  for row in range(count):
    length = int(rng.randint(3, SEQ + 1))
    rows["input_ids"][row, :length] = rng.randint(1, 99, length)
    rows["input_mask"][row, :length] = 1
    rows["segment_ids"][row, length // 2:length] = 1
  for name, make in labels.items():
    rows[name] = make(rng, count)
  return rows


def _case(name, directory):
  """(model maker, training dataset maker, evaluation, TrainStep arguments) of a case.

  The evaluation maps (strategy, model, trainer) to {name: np.ndarray}, as the
  task's script evaluates.
  """
  # pylint: disable=import-outside-toplevel  (after the CPU is split)
  from modeling.data import length_buckets, pretraining_input
  from modeling.tasks import classifier, ner, pretraining, squad
  from modeling.training import array_predictor
  from tiny import tiny_config
  config = tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)

  def without_head_dropout(model):
    # The original's fixed 0.1 dropout of the classifier head: each replica draws
    # its own masks, so only dropout-free runs can be equal.
    model.head.dropout_rate = 0.0
    return model

  def bucketed(rows):
    return lambda: length_buckets.training_batches(rows, BUCKETS, GLOBAL_BATCH, 7, STEPS)

  if name == "classifier_bucketed":
    rows = _rows(label_ids=lambda rng, n: rng.randint(0, 3, n).astype(np.int32))

    def evaluate(strategy, model, trainer):
      del trainer
      outputs = array_predictor.predict(strategy, model.predict_step, rows, GLOBAL_BATCH,
                                        BUCKETS)
      metrics = classifier.eval_metrics(outputs, rows["label_ids"], False)
      return dict(outputs, **{k: np.float64(v) for k, v in metrics.items()})
    return (lambda: without_head_dropout(classifier.ClassifierModel(config, 3)), bucketed(rows),
            evaluate, {})
  if name == "ner":
    rows = _rows(label_ids=lambda rng, n: rng.randint(0, 5, [n, SEQ]).astype(np.int32),
                 label_weights=lambda rng, n: rng.randint(0, 2, [n, SEQ]).astype(np.int32))

    def evaluate(strategy, model, trainer):
      del trainer
      return array_predictor.predict(strategy, model.predict_step, rows, GLOBAL_BATCH,
                                     BUCKETS, sequence_outputs=("predicted", "label_log_prob"))
    return lambda: without_head_dropout(ner.NerModel(config, 5)), bucketed(rows), evaluate, {}
  if name == "squad":
    spans = lambda rng, n: rng.randint(0, SEQ, n).astype(np.int32)  # noqa: E731
    rows = _rows(start_positions=spans, end_positions=spans)

    def evaluate(strategy, model, trainer):
      del trainer
      return array_predictor.predict(strategy, model.predict_step, rows, GLOBAL_BATCH)
    return lambda: squad.SquadModel(config), bucketed(rows), evaluate, {}
  # pretraining_accumulation
  from test_run_pretraining import write_records  # pylint: disable=import-outside-toplevel
  path = write_records(os.path.join(directory, "records.tfrecord"), 40, seq=SEQ, pred=PRED,
                       vocab=config.vocab_size)

  def evaluate(strategy, model, trainer):
    del strategy
    dataset = pretraining_input.pretraining_dataset([path], SEQ, PRED, GLOBAL_BATCH, False)
    return trainer.evaluate(dataset, model.eval_metrics, 2)
  return (lambda: pretraining.PretrainingModel(config),
          lambda: pretraining_input.pretraining_dataset([path], SEQ, PRED, GLOBAL_BATCH, True,
                                                        seed=7),
          evaluate, {"num_accumulation_steps": 2})


CASES = ("classifier_bucketed", "ner", "squad", "pretraining_accumulation")


def train_and_evaluate(strategy, name, initial, directory, kind):
  """Trains case `name` (its files in `directory`) from the weights `initial`
  ({checkpoint name: value}) for STEPS under `strategy`, then evaluates it; the
  checkpoints go to `directory/kind`.

  Returns:
    ({checkpoint name: np.ndarray} of the last checkpoint, {output: np.ndarray}).
  """
  # pylint: disable=import-outside-toplevel  (after the CPU is split)
  from modeling import checkpoint
  from modeling.training import optimization, run_checkpoints
  from tiny import make_trainer
  make_model, make_dataset, evaluate, step_args = _case(name, directory)
  with strategy.scope():
    model = make_model()
    opt = optimization.create_optimizer(
        "adamw", getattr(model, "trained_variables", model.trainable_variables), 1e-3, STEPS, 1)
  for variable_name, variable in checkpoint.named_variables(model).items():
    variable.assign(initial[variable_name])
  trainer = make_trainer(strategy, model.loss, opt, GLOBAL_BATCH, totals_fn=model.loss_totals,
                         **step_args)
  checkpoints = run_checkpoints.CheckpointManager(os.path.join(directory, kind),
                                                  [model, opt, trainer.state])
  trainer.train(make_dataset(), STEPS, checkpoints, save_checkpoints_steps=STEPS)
  reader = tf.train.load_checkpoint(checkpoints.latest)
  saved = {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
           if n != "bert_tf2/dropout_rng"}  # Per-replica streams: not comparable.
  outputs = evaluate(strategy, model, trainer)
  return saved, {k: np.asarray(v, np.float64) for k, v in outputs.items()}


def main(directory, replicas):
  """Splits the CPU, runs every case on one device and on `replicas`; prints one JSON line
  {case: {"weights": worst difference, "global_step": [one device's, the replicas'],
  "outputs": {name: worst difference}}, "jit_whole_step": its refusal}."""
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
  # pylint: disable=import-outside-toplevel  (after the CPU is split)
  from modeling import checkpoint
  from modeling.training import steps
  single = tf.distribute.get_strategy()
  mirrored = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])
  assert mirrored.num_replicas_in_sync == replicas
  results = {}
  for name in CASES:
    tf.random.set_seed(0)
    case_dir = os.path.join(directory, name)
    os.makedirs(case_dir)
    make_model = _case(name, case_dir)[0]
    initial = {k: v.numpy() for k, v in checkpoint.named_variables(make_model()).items()}
    runs = [train_and_evaluate(strategy, name, initial, case_dir, kind)
            for kind, strategy in (("single", single), ("mirrored", mirrored))]
    (weights, outputs), (other_weights, other_outputs) = runs
    assert set(weights) == set(other_weights) and set(outputs) == set(other_outputs), name
    results[name] = {
        "weights": max(float(np.max(np.abs(weights[k] - other_weights[k]))) for k in weights),
        "global_step": [int(weights["global_step"]), int(other_weights["global_step"])],
        "outputs": {k: float(np.max(np.abs(outputs[k] - other_outputs[k]))) for k in outputs}}
  try:
    steps.TrainStep(mirrored, None, None, GLOBAL_BATCH, jit_whole_step=True)
    results["jit_whole_step"] = "accepted"
  except ValueError as error:
    results["jit_whole_step"] = str(error)
  print(json.dumps(results))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  """{replicas: `main`'s results}."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
             PYTHONPATH=os.pathsep.join([REPO_DIR, TESTS_DIR]))
  results = {}
  for replicas in REPLICAS:
    directory = tmp_path_factory.mktemp(f"replicas-{replicas}")
    done = subprocess.run([sys.executable, __file__, str(directory), str(replicas)], env=env,
                          cwd=REPO_DIR, capture_output=True, text=True, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    results[replicas] = json.loads(done.stdout.strip().splitlines()[-1])
  return results


@pytest.mark.slow
@pytest.mark.parametrize("replicas", REPLICAS)
@pytest.mark.parametrize("name", CASES)
def test_replicas_train_and_evaluate_as_one_device(results, name, replicas):
  result = results[replicas][name]
  assert result["global_step"] == [STEPS, STEPS]
  assert result["weights"] <= 1e-5, result
  assert result["outputs"] and max(result["outputs"].values()) <= 1e-5, result


@pytest.mark.slow
def test_jit_whole_step_is_refused_over_several_replicas(results):
  assert results[2]["jit_whole_step"].startswith(
      "--jit_whole_step compiles the all-reduce and the update into the replica step, which "
      "MirroredStrategy over 2 replicas cannot"), results[2]["jit_whole_step"]


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]))
