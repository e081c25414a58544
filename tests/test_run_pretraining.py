"""run_pretraining.py: parity with the original, checkpoints, resumption, distribution, bad input.

The data are tiny random pretraining TFRecords written here (the features of
DESIGN.md section 4); the model is a 2-layer, hidden-32 BERT.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from modeling import checkpoint
from modeling.model.config import BertConfig
from modeling.tasks import pretraining
from modeling.training import optimization, run_checkpoints
from tests import oracle
from tiny import make_trainer

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SEQ, PRED, VOCAB = 16, 4, 100

TINY_CONFIG = {
    "vocab_size": VOCAB, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 64, "max_position_embeddings": 32, "type_vocab_size": 2,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
    "initializer_range": 0.02,
}


def write_config(path, **changes):
  """Writes the tiny config (dropout 0 unless changed); returns the path."""
  with open(path, "w", encoding="utf-8") as writer:
    json.dump(dict(TINY_CONFIG, **changes), writer)
  return str(path)


def random_examples(count, seed, seq=SEQ, pred=PRED, vocab=VOCAB):
  """`count` random pretraining examples as dicts of numpy arrays (TFRecord dtypes)."""
  rng = np.random.default_rng(seed)
  examples = []
  for _ in range(count):
    length = int(rng.integers(pred + 2, seq + 1))
    ids = np.zeros(seq, np.int64)
    ids[:length] = rng.integers(5, vocab, length)
    segments = np.zeros(seq, np.int64)
    segments[length // 2:length] = 1
    num = int(rng.integers(1, pred + 1))
    positions = np.zeros(pred, np.int64)
    positions[:num] = np.sort(rng.choice(np.arange(1, length), num, replace=False))
    masked_ids = np.zeros(pred, np.int64)
    masked_ids[:num] = rng.integers(5, vocab, num)
    weights = np.zeros(pred, np.float32)
    weights[:num] = 1.0
    examples.append({
        "input_ids": ids, "input_mask": (np.arange(seq) < length).astype(np.int64),
        "segment_ids": segments, "masked_lm_positions": positions,
        "masked_lm_ids": masked_ids, "masked_lm_weights": weights,
        "next_sentence_labels": np.array([rng.integers(0, 2)], np.int64)})
  return examples


def serialize(example):
  """A tf.train.Example byte string of one example dict."""
  def feature(value):
    if value.dtype == np.float32:
      return tf.train.Feature(float_list=tf.train.FloatList(value=value))
    return tf.train.Feature(int64_list=tf.train.Int64List(value=value))
  return tf.train.Example(features=tf.train.Features(
      feature={k: feature(v) for k, v in example.items()})).SerializeToString()


def write_records(path, count, seed=0, **lengths):
  """Writes `count` random examples to a TFRecord file; returns the path."""
  with tf.io.TFRecordWriter(str(path)) as writer:
    for example in random_examples(count, seed, **lengths):
      writer.write(serialize(example))
  return str(path)


def batch_of(examples):
  """Stacks example dicts into the int32/float32 batch the input pipeline yields."""
  return {k: np.stack([e[k] for e in examples]).astype(
      np.float32 if k == "masked_lm_weights" else np.int32) for k in examples[0]}


def run_script(args, env=None, timeout=300):
  """Runs run_pretraining.py with `args`; returns the CompletedProcess."""
  full_env = dict(os.environ, **(env or {}))
  full_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  return subprocess.run([sys.executable, os.path.join(REPO_DIR, "run_pretraining.py"), *args],
                        capture_output=True, text=True, env=full_env, cwd=REPO_DIR,
                        timeout=timeout)


def script_args(config, input_file, output_dir, **flags):
  """Command-line flags for a tiny run; keyword arguments override or add flags."""
  values = {"bert_config_file": config, "input_file": input_file, "output_dir": output_dir,
            "max_seq_length": SEQ, "max_predictions_per_seq": PRED, "train_batch_size": 8,
            "eval_batch_size": 8, "learning_rate": 1e-3, "num_train_steps": 6,
            "num_warmup_steps": 2, "save_checkpoints_steps": 3, "log_steps": 1,
            "max_eval_steps": 2, "do_train": True}
  values.update(flags)
  args = []
  for name, value in values.items():
    if isinstance(value, bool):
      args.append(f"--{name}" if value else f"--no{name}")
    else:
      args.append(f"--{name}={value}")
  return args


def read_checkpoint(prefix):
  """{name: numpy value} of every entry of a checkpoint."""
  reader = tf.train.load_checkpoint(str(prefix))
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


# ----------------------------------------------------------------------------
# Parity with the original training, both ways of checkpoint compatibility.

ORACLE_TRAIN_SCRIPT = """
import json
import sys
import types
import numpy as np
import original_bert
tf = original_bert.tf
from bert import run_pretraining

# tf.estimator is gone from TF 2.16+: a stand-in for the two names model_fn uses.
tf.estimator = types.SimpleNamespace(
    ModeKeys=types.SimpleNamespace(TRAIN="train", EVAL="eval"),
    tpu=types.SimpleNamespace(TPUEstimatorSpec=lambda **kwargs: types.SimpleNamespace(**kwargs)))

config_file, batch_file, init_ckpt, ours_ckpt, out_ckpt = sys.argv[1:6]
lr, total, warmup, steps = float(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])
config = original_bert.modeling.BertConfig.from_json_file(config_file)
batch = dict(np.load(batch_file))
results = {}


def build(mode, init_checkpoint):
  tf.reset_default_graph()
  model_fn = run_pretraining.model_fn_builder(config, init_checkpoint, lr, total, warmup,
                                              use_tpu=False, use_one_hot_embeddings=False)
  features = {k: tf.constant(v) for k, v in batch.items()}
  return model_fn(features, None, mode, {})


# 1. Train `steps` steps from init_ckpt and save with the original's Saver.
spec = build("train", init_ckpt)
# The original groups the update with `global_step += 1` unordered, a race
# (google-research/bert#1050); run them in the order its comments intend.
increment = [op for op in spec.train_op.control_inputs if op.type == "Assign"]
update = [op for op in spec.train_op.control_inputs if op.type != "Assign"]
with tf.Session() as sess:
  sess.run(tf.global_variables_initializer())
  results["losses"] = []
  for _ in range(steps):
    results["losses"].append(float(sess.run(spec.loss)))
    sess.run(update)
    sess.run(increment)
  tf.train.Saver().save(sess, out_ckpt)

# 2. Our training checkpoint restores into the original training graph, slots and all.
spec = build("train", None)
with tf.Session() as sess:
  tf.train.Saver().restore(sess, ours_ckpt)
  results["restored_loss"] = float(sess.run(spec.loss))
  results["restored_step"] = int(sess.run(tf.train.get_global_step()))

# 3. The original's eval metrics on our checkpoint.
spec = build("eval", ours_ckpt)
metric_fn, tensors = spec.eval_metrics
metrics = metric_fn(*tensors)
with tf.Session() as sess:
  sess.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
  sess.run([update for _, update in metrics.values()])
  results["eval"] = {k: float(sess.run(value)) for k, (value, _) in metrics.items()}
  results["eval"]["loss"] = float(sess.run(spec.loss))
print(json.dumps(results))
"""


def _build(config, lr, total, warmup, optimizer="adamw", **model_args):
  """PretrainingModel and optimizer under the default strategy."""
  model = pretraining.PretrainingModel(config, **model_args)
  opt = optimization.create_optimizer(optimizer, model.trainable_variables, lr, total, warmup)
  return model, opt


def _trainer(model, opt, batch_size, strategy=None, **args):
  """The run_pretraining Trainer of `model` (default strategy unless given)."""
  return make_trainer(strategy or tf.distribute.get_strategy(), model.loss, opt,
                      batch_size, totals_fn=model.loss_totals, **args)


def test_training_matches_original_and_checkpoints_interchange(tmp_path):
  oracle.require()
  config_file = write_config(tmp_path / "bert_config.json")
  config = BertConfig.from_json_file(config_file)
  batch = batch_of(random_examples(4, seed=3))
  np.savez(tmp_path / "batch.npz", **batch)
  lr, total, warmup, steps = 1e-3, 10, 1, 3

  tf.random.set_seed(1)
  model, opt = _build(config, lr, total, warmup)
  init_prefix = checkpoint.save(tmp_path / "init" / "model.ckpt", model)
  checkpoints = run_checkpoints.CheckpointManager(tmp_path / "ours", [model, opt])
  trainer = _trainer(model, opt, 4, log_steps=1)
  trainer.train(tf.data.Dataset.from_tensors(batch).repeat(), steps, checkpoints,
                save_checkpoints_steps=steps)
  ours_prefix = checkpoints.latest
  ours_loss = float(trainer.evaluate(tf.data.Dataset.from_tensors(batch).repeat(),
                                     model.eval_metrics, 1)["loss"])

  out = json.loads(oracle.run(ORACLE_TRAIN_SCRIPT, config_file, tmp_path / "batch.npz",
                              init_prefix, ours_prefix, tmp_path / "original" / "model.ckpt-3",
                              lr, total, warmup, steps).strip().splitlines()[-1])

  # Same weights, slots and step as the original's training.
  expected = read_checkpoint(tmp_path / "original" / "model.ckpt-3")
  ours = read_checkpoint(ours_prefix)
  assert set(ours) == set(expected)
  assert int(ours["global_step"]) == int(expected["global_step"]) == steps
  worst = max(float(np.max(np.abs(ours[k] - expected[k]))) for k in expected)
  print(f"largest difference from the original after {steps} steps: {worst:.2e}")
  assert worst < 1e-5, worst
  # Ours restores into the original training graph, with its loss and step.
  assert out["restored_step"] == steps
  assert out["restored_loss"] == pytest.approx(ours_loss, abs=1e-5)
  # Eval metrics as the original's metric_fn.
  results = trainer.evaluate(tf.data.Dataset.from_tensors(batch).repeat(), model.eval_metrics, 1)
  for key, value in out["eval"].items():
    assert float(results[key]) == pytest.approx(value, abs=1e-5), key
  # modeling.checkpoint check accepts our training checkpoint.
  check = subprocess.run([sys.executable, "-m", "modeling.checkpoint", "check",
                          "--bert_config_file", config_file, "--task", "pretraining",
                          ours_prefix], capture_output=True, text=True, cwd=REPO_DIR)
  assert check.returncode == 0, check.stdout + check.stderr

  # An original TF1 training checkpoint resumes here with its step and slots.
  model2, opt2 = _build(config, lr, total, warmup)
  original_dir = run_checkpoints.CheckpointManager(tmp_path / "resume", [model2, opt2])
  original_dir.restore(str(tmp_path / "original" / "model.ckpt-3"))
  assert int(opt2.global_step) == steps
  name = "bert/encoder/layer_1/output/dense/kernel"
  m, v = opt2.slots[name]
  np.testing.assert_array_equal(m.numpy(), expected[f"{name}/adam_m"])
  np.testing.assert_array_equal(v.numpy(), expected[f"{name}/adam_v"])
  trainer2 = _trainer(model2, opt2, 4, log_steps=1)
  trainer2.train(tf.data.Dataset.from_tensors(batch).repeat(), steps + 1, original_dir, 100)
  assert trainer2.step == steps + 1


def test_train_step_compiles_with_xla(tmp_path):
  config = BertConfig.from_json_file(write_config(tmp_path / "c.json", hidden_dropout_prob=0.1))
  model, opt = _build(config, 1e-3, 10, 0)
  trainer = _trainer(model, opt, 4)
  step = tf.function(trainer.train_step.replica_step, jit_compile=True)
  batch = {k: tf.constant(v) for k, v in batch_of(random_examples(4, seed=0)).items()}
  before = model.bert.embeddings.word_embeddings.numpy()
  loss, _, _, _ = step(batch)
  assert np.isfinite(float(loss)) and int(opt.global_step) == 1
  assert not np.array_equal(before, model.bert.embeddings.word_embeddings.numpy())


def _train_fixed(config, batch_size, steps, **trainer_args):
  """Weights and slots after `steps` steps on fixed batches, from a fixed start."""
  tf.random.set_seed(0)
  model, opt = _build(config, 1e-3, 10, 1, use_one_hot_embeddings=True)
  trainer = _trainer(model, opt, batch_size, **trainer_args)
  examples = random_examples(batch_size * steps, seed=4)
  dataset = tf.data.Dataset.from_tensor_slices(batch_of(examples)).batch(batch_size)
  iterator = iter(dataset)
  step = tf.function(lambda batch: trainer.train_step.replica_step(batch)[0])
  for _ in range(steps):
    step(next(iterator))
  assert trainer.step == steps
  return {name: v.numpy() for name, v in checkpoint.named_variables([model, opt]).items()}


def test_accumulation_equals_one_batch_k_times_larger(tmp_path):
  # Dense (one-hot) embedding gradients, so that clipping sees the same global norm.
  config = BertConfig.from_json_file(write_config(tmp_path / "c.json"))
  whole = _train_fixed(config, 8, 2)
  accumulated = _train_fixed(config, 8, 2, num_accumulation_steps=4)
  worst = max(float(np.max(np.abs(whole[k] - accumulated[k]))) for k in whole)
  assert worst < 1e-5, worst


@pytest.mark.slow
def test_xla_step_matches_and_runs_with_dropout_and_accumulation(tmp_path):
  config = BertConfig.from_json_file(write_config(tmp_path / "c.json"))
  plain = _train_fixed(config, 8, 2)
  compiled = _train_fixed(config, 8, 2, use_xla=True, num_accumulation_steps=2)
  worst = max(float(np.max(np.abs(plain[k] - compiled[k]))) for k in plain)
  assert worst < 1e-4, worst
  dropout = BertConfig.from_json_file(write_config(tmp_path / "d.json", hidden_dropout_prob=0.1,
                                                   attention_probs_dropout_prob=0.1))
  with_dropout = _train_fixed(dropout, 8, 2, use_xla=True, num_accumulation_steps=2)
  assert all(np.all(np.isfinite(v)) for v in with_dropout.values())


# ----------------------------------------------------------------------------
# Distribution: each matches a single-device run at the same global batch.

MIRRORED_SCRIPT = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, sys.argv[1])
from modeling import checkpoint
from modeling.data import pretraining_input
from modeling.model.config import BertConfig
from modeling.tasks import pretraining
from modeling.data.files import write_eval_results
from modeling.training import loop, optimization, run_checkpoints, steps

config = BertConfig.from_json_file(sys.argv[2])
files, out = sys.argv[3].split(","), sys.argv[4]
model = pretraining.PretrainingModel(config)
init = checkpoint.save(out + "/init/model.ckpt", model)
for name, strategy in (("single", tf.distribute.get_strategy()),
                       ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
  with strategy.scope():
    model = pretraining.PretrainingModel(config)
    opt = optimization.create_optimizer("adamw", model.trainable_variables, 1e-3, 10, 1)
  checkpoint.load(init, model)
  trainer = loop.Trainer(steps.TrainStep(strategy, model.loss, opt, 8,
                                         totals_fn=model.loss_totals), log_steps=2)
  checkpoints = run_checkpoints.CheckpointManager(f"{out}/{name}", [model, opt, trainer.state])
  assert trainer.strategy.num_replicas_in_sync == (2 if name == "mirrored" else 1)
  dataset = pretraining_input.pretraining_dataset(files, 16, 4, 8, True, seed=7)
  trainer.train(dataset, 4, checkpoints, save_checkpoints_steps=4)
  eval_dataset = pretraining_input.pretraining_dataset(files, 16, 4, 8, False)
  results = trainer.evaluate(eval_dataset, model.eval_metrics, 3)
  write_eval_results(f"{out}/{name}/eval_results.txt", results)
"""


def _assert_same_checkpoints(first, second, tolerance=1e-5):
  a, b = read_checkpoint(first), read_checkpoint(second)
  assert set(a) == set(b)
  worst = max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a)
  assert worst <= tolerance, worst
  return worst


def _eval_results(path):
  with open(path, encoding="utf-8") as reader:
    return dict(line.strip().split(" = ") for line in reader)


def test_mirrored_two_cpus_matches_single_device(tmp_path):
  files = [write_records(tmp_path / f"data-{i}.tfrecord", 24, seed=i) for i in range(2)]
  config = write_config(tmp_path / "bert_config.json")
  result = subprocess.run(
      [sys.executable, "-c", MIRRORED_SCRIPT, REPO_DIR, config, ",".join(files), tmp_path],
      capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert result.returncode == 0, result.stderr[-4000:]
  _assert_same_checkpoints(tmp_path / "single" / "model.ckpt-4",
                           tmp_path / "mirrored" / "model.ckpt-4")
  single = _eval_results(tmp_path / "single" / "eval_results.txt")
  mirrored = _eval_results(tmp_path / "mirrored" / "eval_results.txt")
  assert set(single) == set(mirrored)
  for key in single:
    assert float(mirrored[key]) == pytest.approx(float(single[key]), abs=1e-5), key


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


@pytest.mark.slow
def test_two_worker_run_matches_single_device(tmp_path):
  files = ",".join(write_records(tmp_path / f"data-{i}.tfrecord", 24, seed=i) for i in range(2))
  config_file = write_config(tmp_path / "bert_config.json")
  model_module = _build(BertConfig.from_json_file(config_file), 1e-3, 6, 2)[0]
  init = checkpoint.save(tmp_path / "init" / "model.ckpt", model_module)
  args = dict(init_checkpoint=init, do_eval=True)
  single = run_script(script_args(config_file, files, tmp_path / "single", **args))
  assert single.returncode == 0, single.stderr[-4000:]

  workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
  processes = []
  for index in range(2):
    tf_config = json.dumps({"cluster": {"worker": workers},
                            "task": {"type": "worker", "index": index}})
    env = dict(os.environ, TF_CONFIG=tf_config, TF_CPP_MIN_LOG_LEVEL="2")
    processes.append(subprocess.Popen(
        [sys.executable, "run_pretraining.py",
         *script_args(config_file, files, tmp_path / f"multi-{index}", **args)],
        cwd=REPO_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  outputs = [p.communicate(timeout=300) for p in processes]
  for process, (_, err) in zip(processes, outputs):
    assert process.returncode == 0, err[-4000:]
  assert "on 2 replicas" in outputs[0][1], outputs[0][1][-3000:]
  # Only the chief (worker 0) writes checkpoints and results.
  assert not os.path.exists(tmp_path / "multi-1" / "model.ckpt-6.index")
  _assert_same_checkpoints(tmp_path / "single" / "model.ckpt-6",
                           tmp_path / "multi-0" / "model.ckpt-6")
  single_eval = _eval_results(tmp_path / "single" / "eval_results.txt")
  multi_eval = _eval_results(tmp_path / "multi-0" / "eval_results.txt")
  for key in single_eval:
    assert float(multi_eval[key]) == pytest.approx(float(single_eval[key]), abs=1e-5), key


# ----------------------------------------------------------------------------
# Long jobs: kill -9 and resume, SIGTERM, eval-only runs.

def _wait_for(predicate, process, timeout=120):
  deadline = time.time() + timeout
  while not predicate():
    if process.poll() is not None:
      raise AssertionError(f"the run ended early ({process.returncode})")
    if time.time() > deadline:
      process.kill()
      raise AssertionError("timed out")
    time.sleep(0.05)


def _latest_step(directory):
  latest = tf.train.latest_checkpoint(str(directory))
  return int(latest.rsplit("-", 1)[1]) if latest else 0


@pytest.mark.slow
def test_kill_9_then_rerun_ends_as_an_uninterrupted_run(tmp_path):
  files = ",".join(write_records(tmp_path / f"data-{i}.tfrecord", 24, seed=i) for i in range(2))
  # Dropout on: its masks come from the checkpointed generator.
  config = write_config(tmp_path / "bert_config.json", hidden_dropout_prob=0.1,
                        attention_probs_dropout_prob=0.1)
  flags = dict(num_train_steps=12, save_checkpoints_steps=4, seed=5, keep_checkpoint_max=2)
  straight = run_script(script_args(config, files, tmp_path / "straight", **flags))
  assert straight.returncode == 0, straight.stderr[-4000:]

  args = script_args(config, files, tmp_path / "killed", **flags)
  process = subprocess.Popen([sys.executable, "run_pretraining.py", *args], cwd=REPO_DIR,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  _wait_for(lambda: _latest_step(tmp_path / "killed") >= 4, process)
  process.send_signal(signal.SIGKILL)
  process.wait()
  killed_at = _latest_step(tmp_path / "killed")
  assert 4 <= killed_at < 12
  resumed = run_script(args)
  assert resumed.returncode == 0, resumed.stderr[-4000:]
  assert f"Resuming from {tmp_path / 'killed'}/model.ckpt-{killed_at}" in resumed.stderr
  _assert_same_checkpoints(tmp_path / "straight" / "model.ckpt-12",
                           tmp_path / "killed" / "model.ckpt-12", tolerance=1e-6)
  # Retention: the two newest, named by the state file as the original's Estimator does.
  state = tf.train.get_checkpoint_state(str(tmp_path / "killed"))
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      "model.ckpt-8", "model.ckpt-12"]
  assert not tf.io.gfile.glob(str(tmp_path / "killed" / "model.ckpt-4*"))


@pytest.mark.slow
def test_sigterm_saves_then_rerun_resumes(tmp_path):
  files = write_records(tmp_path / "data.tfrecord", 24)
  config = write_config(tmp_path / "bert_config.json")
  log = tmp_path / "log.txt"
  args = script_args(config, files, tmp_path / "out", num_train_steps=100000,
                     save_checkpoints_steps=100000)
  with open(log, "w", encoding="utf-8") as stderr:
    process = subprocess.Popen([sys.executable, "run_pretraining.py", *args], cwd=REPO_DIR,
                               stdout=subprocess.DEVNULL, stderr=stderr)
    _wait_for(lambda: "step 3/100000" in log.read_text(encoding="utf-8"), process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 128 + signal.SIGTERM
  step = _latest_step(tmp_path / "out")
  assert step >= 3
  assert int(read_checkpoint(tmp_path / "out" / f"model.ckpt-{step}")["global_step"]) == step
  assert "rerun the same command to resume" in log.read_text(encoding="utf-8")
  resumed = run_script(script_args(config, files, tmp_path / "out", num_train_steps=step + 2,
                                   do_eval=True))
  assert resumed.returncode == 0, resumed.stderr[-4000:]
  assert f"Training from step {step} to {step + 2}" in resumed.stderr
  results = _eval_results(tmp_path / "out" / "eval_results.txt")
  assert sorted(results) == ["global_step", "loss", "masked_lm_accuracy", "masked_lm_loss",
                             "next_sentence_accuracy", "next_sentence_loss"]
  assert int(results["global_step"]) == step + 2


# ----------------------------------------------------------------------------
# Bad input: each a clear error naming the file, flag or value.

def _main(*args, **flags):
  """Runs run_pretraining.main in this process with tiny-run flags."""
  import run_pretraining  # pylint: disable=import-outside-toplevel
  run_pretraining.FLAGS.unparse_flags()
  run_pretraining.FLAGS(["run_pretraining.py", *script_args(*args, **flags)])
  return run_pretraining.main([])


@pytest.fixture
def tiny(tmp_path):
  """(config file, data file, output dir) of a valid tiny run."""
  return (write_config(tmp_path / "bert_config.json"),
          write_records(tmp_path / "data.tfrecord", 24), str(tmp_path / "out"))


def test_input_file_comma_lists_and_globs(tmp_path):
  from modeling.data import pretraining_input  # pylint: disable=import-outside-toplevel
  paths = [write_records(tmp_path / f"part-{i}.tfrecord", 2, seed=i) for i in range(3)]
  other = write_records(tmp_path / "other.rec", 2)
  assert pretraining_input.expand_input_files(f"{tmp_path}/part-*.tfrecord, {other}") == (
      paths + [other])
  with pytest.raises(FileNotFoundError, match="no file matches .*missing-"):
    pretraining_input.expand_input_files(f"{other},{tmp_path}/missing-*")


def test_no_input_file_matches(tiny):
  config, _, out = tiny
  with pytest.raises(FileNotFoundError, match="--input_file: no file matches .*nothing"):
    _main(config, out + "/nothing*.tfrecord", out)


def test_records_of_another_max_seq_length(tiny, tmp_path):
  config, _, out = tiny
  data = write_records(tmp_path / "long.tfrecord", 4, seq=32)
  with pytest.raises(ValueError, match=r"long.tfrecord: record 0 has input_ids of length 32 but "
                                       r"--max_seq_length=16"):
    _main(config, data, out)
  data = write_records(tmp_path / "preds.tfrecord", 4, pred=6)
  with pytest.raises(ValueError, match=r"preds.tfrecord: record 0 has masked_lm_positions of "
                                       r"length 6 but --max_predictions_per_seq=4"):
    _main(config, data, out)


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_damaged_tfrecord_is_named(tiny, tmp_path, damage):
  config, good, out = tiny
  bad = tmp_path / "bad.tfrecord"
  content = bytearray(open(good, "rb").read())
  if damage == "corrupt":
    content[len(content) // 2] ^= 0xFF  # A record in the middle fails its CRC.
  else:
    content = content[:-7]  # The last record is cut short.
  bad.write_bytes(bytes(content))
  with pytest.raises(ValueError, match=r"bad.tfrecord: corrupt or truncated TFRecord file"):
    _main(config, f"{good},{bad}", out)


def test_max_seq_length_above_max_position_embeddings(tiny):
  config, data, out = tiny
  with pytest.raises(ValueError, match=r"exceeds max_position_embeddings=32 .*"
                                       r"\(got --max_seq_length 64\)"):
    _main(config, data, out, max_seq_length=64)


def test_init_checkpoint_that_does_not_fit_the_config(tiny, tmp_path):
  config, data, out = tiny
  other = BertConfig.from_json_file(write_config(tmp_path / "wide.json", hidden_size=48))
  init = checkpoint.save(tmp_path / "wide" / "model.ckpt", _build(other, 1e-3, 6, 2)[0].bert)
  with pytest.raises(ValueError, match=r"(?s)does not fit the model:.*"
                                       r"bert/embeddings/word_embeddings: checkpoint \[100, 48\]"):
    _main(config, data, out, init_checkpoint=init)


def test_output_dir_not_writable(tiny, tmp_path):
  config, data, _ = tiny
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  with pytest.raises(PermissionError, match=r"--output_dir=.*a_file/out is not writable"):
    _main(config, data, str(blocker / "out"))


def test_init_checkpoint_without_heads_starts_them_fresh(tiny, tmp_path, caplog):
  config, data, out = tiny
  encoder = _build(BertConfig.from_json_file(config), 1e-3, 6, 2)[0].bert
  init = checkpoint.save(tmp_path / "encoder" / "model.ckpt", encoder)
  with caplog.at_level("INFO"):
    assert _main(config, data, out, init_checkpoint=init, num_train_steps=1) == 0
  assert "Freshly initialised" in caplog.text and "cls/predictions/output_bias" in caplog.text
  trained = read_checkpoint(tf.train.latest_checkpoint(out))
  assert int(trained["global_step"]) == 1
  # Everything of the encoder came from the init checkpoint (one small step away).
  start = encoder.embeddings.word_embeddings.numpy()
  assert np.max(np.abs(trained["bert/embeddings/word_embeddings"] - start)) < 1e-2


def _write_with_bad_id(path, count, first_bad, feature, value):
  """Records from `first_bad` on have one id `value` in `feature`."""
  examples = random_examples(count, 0)
  for example in examples[first_bad:]:
    example[feature][1] = value
  with tf.io.TFRecordWriter(str(path)) as writer:
    for example in examples:
      writer.write(serialize(example))
  return str(path)


@pytest.mark.parametrize("bad_record, feature, value, message", [
    (0, "input_ids", VOCAB + 10, r"record 0 has input_ids 110, outside \[0, 100\) of vocab_size"),
    (0, "segment_ids", 2, r"record 0 has segment_ids 2, outside \[0, 2\) of type_vocab_size"),
    # Past the first record, which the start-up check reads: found by the input pipeline.
    (1, "masked_lm_ids", VOCAB, r"record 1 has masked_lm_ids 100, outside \[0, 100\)"),
    (1, "input_ids", -3, r"record 1 has input_ids -3, outside \[0, 100\)"),
])
def test_ids_outside_the_vocabulary_name_file_and_record(tiny, tmp_path, bad_record, feature,
                                                          value, message):
  """With one-hot embeddings (--use_tpu) they would silently get zero embeddings."""
  config, _, out = tiny
  bad = _write_with_bad_id(tmp_path / "bad.tfrecord", 24, bad_record, feature, value)
  with pytest.raises(ValueError, match=r"bad.tfrecord: " + message):
    _main(config, bad, out, num_train_steps=3)


def test_eval_only_refuses_an_init_checkpoint_without_heads(tiny, tmp_path):
  config, data, out = tiny
  encoder = _build(BertConfig.from_json_file(config), 1e-3, 6, 2)[0].bert
  init = checkpoint.save(tmp_path / "encoder" / "model.ckpt", encoder)
  with pytest.raises(ValueError, match=r"encoder/model.ckpt has no cls/predictions/output_bias.*"
                                       r"without training"):
    _main(config, data, out, init_checkpoint=init, do_train=False, do_eval=True)
  assert not os.path.exists(os.path.join(out, "eval_results.txt"))


def test_an_input_file_in_the_output_dir_is_never_overwritten(tiny, tmp_path):
  config, data, out = tiny
  os.makedirs(out)
  named_as_output = os.path.join(out, "eval_results.txt")
  os.link(data, named_as_output)
  with pytest.raises(ValueError, match=r"--input_file=.*eval_results.txt is also an output"):
    _main(config, named_as_output, out, do_eval=True)
