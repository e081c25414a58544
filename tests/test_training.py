"""The generic training loop and checkpoint manager, on a toy regression task."""

import os
import signal

import numpy as np
import pytest
import tensorflow as tf

from modeling import checkpoint, optimization, training

BATCH = 4


class Toy(tf.Module):
  """y = x W + b with the original's naming, and its loss share."""

  def __init__(self):
    super().__init__()
    self.kernel = tf.Variable(tf.random.stateless_normal([3, 2], seed=[1, 2]),
                              name="toy/dense/kernel")
    self.bias = tf.Variable(tf.zeros([2]), name="toy/dense/bias")

  def loss(self, batch):
    """Mean squared error over the global batch: this replica's share, float32 scalar."""
    context = tf.distribute.get_replica_context()
    predictions = tf.matmul(batch["x"], self.kernel) + self.bias  # [B, 2]
    global_batch = tf.cast(tf.shape(batch["x"])[0] * context.num_replicas_in_sync, tf.float32)
    return tf.reduce_sum(tf.square(predictions - batch["y"])) / global_batch

  def metrics(self, batch):
    loss = tf.reduce_sum(tf.square(tf.matmul(batch["x"], self.kernel) + self.bias - batch["y"]))
    return {"mse": (loss, tf.cast(tf.shape(batch["x"])[0], tf.float32))}


def toy_dataset(poison_from=None):
  """Endless batches {"x": [4, 3], "y": [4, 2]}; inputs become NaN from batch `poison_from`."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, BATCH, 3)).astype(np.float32)
  y = rng.normal(size=(64, BATCH, 2)).astype(np.float32)
  if poison_from is not None:
    x[poison_from:] = np.nan
  return tf.data.Dataset.from_tensor_slices({"x": x, "y": y}).repeat()


def make(directory, keep=5, **trainer_args):
  model = Toy()
  opt = optimization.create_optimizer("adamw", model.trainable_variables, 0.01, 100, 0)
  checkpoints = training.CheckpointManager(directory, [model, opt], keep_checkpoint_max=keep)
  trainer = training.Trainer(tf.distribute.get_strategy(), model.loss, opt, BATCH,
                             **trainer_args)
  return model, opt, checkpoints, trainer


def test_checkpoints_retention_and_state_file(tmp_path):
  model, opt, checkpoints, trainer = make(tmp_path, keep=2, log_steps=3)
  trainer.train(toy_dataset(), 10, checkpoints, save_checkpoints_steps=4)
  state = tf.train.get_checkpoint_state(str(tmp_path))
  assert state.model_checkpoint_path == str(tmp_path / "model.ckpt-10")
  assert list(state.all_model_checkpoint_paths) == [str(tmp_path / "model.ckpt-8"),
                                                    str(tmp_path / "model.ckpt-10")]
  # Relative paths, as the Estimator writes them, so the directory can move.
  assert '"model.ckpt-10"' in (tmp_path / "checkpoint").read_text()
  assert not tf.io.gfile.glob(str(tmp_path / "model.ckpt-4*"))
  saved = tf.train.load_checkpoint(str(tmp_path / "model.ckpt-10"))
  assert int(saved.get_tensor("global_step")) == 10
  np.testing.assert_array_equal(saved.get_tensor("toy/dense/kernel"), model.kernel.numpy())
  np.testing.assert_array_equal(saved.get_tensor("toy/dense/kernel/adam_v"),
                                opt.slots["toy/dense/kernel"][1].numpy())

  # A new manager continues the retention list; stale temporary files are removed.
  (tmp_path / "model.ckpt-11.tmp-0123.index").write_text("half written")
  model2, opt2, checkpoints2, trainer2 = make(tmp_path, keep=2)
  assert not (tmp_path / "model.ckpt-11.tmp-0123.index").exists()
  assert training.restore_or_initialize(checkpoints2) == "resumed"
  assert trainer2.step == 10
  np.testing.assert_array_equal(model2.kernel.numpy(), model.kernel.numpy())
  trainer2.train(toy_dataset(), 12, checkpoints2, save_checkpoints_steps=4)
  assert [os.path.basename(p) for p in
          tf.train.get_checkpoint_state(str(tmp_path)).all_model_checkpoint_paths] == [
              "model.ckpt-10", "model.ckpt-12"]


def test_summaries_and_host_calls(tmp_path):
  _, _, checkpoints, trainer = make(tmp_path, log_steps=2, iterations_per_loop=3,
                                    summary_dir=str(tmp_path))
  assert [trainer._next_stop(s, 10, 5) for s in (0, 2, 4, 5, 9)] == [2, 4, 5, 6, 10]
  trainer.train(toy_dataset(), 5, checkpoints, save_checkpoints_steps=5)
  tags = {}
  for path in tf.io.gfile.glob(str(tmp_path / "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        tags.setdefault(value.tag, []).append(event.step)
  assert set(tags) == {"loss", "learning_rate", "grad_norm", "examples_per_second"}
  assert tags["loss"] == [2, 4, 5]


def test_non_finite_loss_stops_without_saving(tmp_path):
  _, opt, checkpoints, trainer = make(tmp_path, log_steps=1)
  with pytest.raises(FloatingPointError, match=r"the loss is nan in steps 5-5.*model.ckpt-3"):
    trainer.train(toy_dataset(poison_from=4), 20, checkpoints, save_checkpoints_steps=3)
  assert checkpoints.latest == str(tmp_path / "model.ckpt-3")
  assert not tf.io.gfile.glob(str(tmp_path / "model.ckpt-5*"))
  # Nor does a direct save of non-finite weights go through.
  with pytest.raises(FloatingPointError, match="variable toy/dense/(bias|kernel) holds NaN"):
    checkpoints.save(int(opt.global_step))
  assert checkpoints.latest == str(tmp_path / "model.ckpt-3")


def test_sigterm_saves_and_stops(tmp_path):
  model, _, checkpoints, trainer = make(tmp_path, log_steps=1)

  def send_sigterm_at_step_3(batch):
    tf.py_function(lambda step: os.kill(os.getpid(), signal.SIGTERM) if step == 2 else None,
                   [trainer.optimizer.global_step], [])
    return model.loss(batch)

  trainer.loss_fn = send_sigterm_at_step_3
  result = trainer.train(toy_dataset(), 1000, checkpoints, save_checkpoints_steps=1000)
  assert result == training.TrainResult(3, signal.SIGTERM)
  assert checkpoints.latest == str(tmp_path / "model.ckpt-3")
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # The handler is removed.


def test_restore_or_initialize(tmp_path):
  model, _, checkpoints, _ = make(tmp_path / "run")
  assert training.restore_or_initialize(checkpoints) == "fresh"
  encoder_only = tf.Variable(tf.ones([3, 2]), name="toy/dense/kernel")
  init = checkpoint.save(tmp_path / "init" / "model.ckpt", [encoder_only])
  with pytest.raises(ValueError, match="missing from the checkpoint: toy/dense/bias"):
    training.restore_or_initialize(checkpoints, init, model)
  assert training.restore_or_initialize(checkpoints, init, model, (r"/bias$",)) == "initialized"
  np.testing.assert_array_equal(model.kernel.numpy(), np.ones([3, 2]))


def test_evaluate_and_results_file(tmp_path):
  model, _, _, trainer = make(tmp_path)
  results = trainer.evaluate(toy_dataset(), model.metrics, 3)
  batches = list(toy_dataset().take(3).as_numpy_iterator())
  expected = np.mean([np.mean(np.sum(np.square(b["x"] @ model.kernel.numpy() - b["y"]), -1))
                      for b in batches])
  assert results["mse"] == pytest.approx(expected, rel=1e-5)
  assert results["global_step"] == 0
  training.write_eval_results(str(tmp_path / "eval_results.txt"), results)
  lines = (tmp_path / "eval_results.txt").read_text().splitlines()
  assert lines == ["global_step = 0", f"mse = {results['mse']!s}"]  # str(), as the original


def test_bad_arguments_are_named(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("")
  with pytest.raises(PermissionError, match="output_dir=.*file/sub is not writable"):
    training.CheckpointManager(blocker / "sub", [])
  with pytest.raises(ValueError, match="log_steps=0 must be positive"):
    make(tmp_path, log_steps=0)
  _, _, checkpoints, trainer = make(tmp_path)
  with pytest.raises(ValueError, match="save_checkpoints_steps=0"):
    trainer.train(toy_dataset(), 1, checkpoints, save_checkpoints_steps=0)
