"""The generic training loop and checkpoint manager, on a toy regression task."""

import os
import signal

import numpy as np
import pytest
import tensorflow as tf

from modeling import checkpoint
from modeling.data import files
from modeling.model import layers
from modeling.training import loop, optimization, run_checkpoints
from tiny import make_trainer

BATCH = 4


class Toy(tf.Module):
  """y = dropout(x) W + b with the original's naming, and its loss share."""

  def __init__(self, dropout_rate=0.0):
    super().__init__()
    self.dropout_rate = dropout_rate
    self.kernel = tf.Variable(tf.random.stateless_normal([3, 2], seed=[1, 2]),
                              name="toy/dense/kernel")
    self.bias = tf.Variable(tf.zeros([2]), name="toy/dense/bias")

  @staticmethod
  def loss_totals(batch):
    """The loss denominator of a batch: the sum of its example weights."""
    return {"weight": tf.reduce_sum(batch["w"])}

  def loss(self, batch, totals):
    """Weighted squared error, sum(w * se) / sum(w) over the update: this batch's share."""
    x = layers.dropout(batch["x"], self.dropout_rate, training=True)
    predictions = tf.matmul(x, self.kernel) + self.bias  # [B, 2]
    squared_error = tf.reduce_sum(tf.square(predictions - batch["y"]), -1)  # [B]
    return tf.reduce_sum(batch["w"] * squared_error) / totals["weight"]

  def metrics(self, batch):
    loss = tf.reduce_sum(tf.square(tf.matmul(batch["x"], self.kernel) + self.bias - batch["y"]))
    return {"mse": (loss, tf.cast(tf.shape(batch["x"])[0], tf.float32))}


def toy_dataset(poisoned=(), skip=0, batch_size=BATCH):
  """Endless batches {"x": [B, 3], "y": [B, 2], "w": [B]} from batch `skip` on.

  The inputs of the batches numbered in `poisoned` (counted before `skip`) are NaN.
  """
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, batch_size, 3)).astype(np.float32)
  y = rng.normal(size=(64, batch_size, 2)).astype(np.float32)
  w = rng.uniform(0.1, 2.0, size=(64, batch_size)).astype(np.float32)
  for index in poisoned:
    x[index] = np.nan
  return tf.data.Dataset.from_tensor_slices({"x": x, "y": y, "w": w}).skip(skip).repeat()


def make(directory, keep=5, dropout_rate=0.0, **trainer_args):
  model = Toy(dropout_rate)
  opt = optimization.create_optimizer("adamw", model.trainable_variables, 0.01, 100, 0)
  trainer = make_trainer(tf.distribute.get_strategy(), model.loss, opt,
                         trainer_args.pop("batch_size", BATCH), totals_fn=model.loss_totals,
                         **trainer_args)
  checkpoints = run_checkpoints.CheckpointManager(directory, [model, opt, trainer.state],
                                       keep_checkpoint_max=keep)
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
  (tmp_path / ".model.ckpt-11.tmp-0123.index").write_text("half written")
  model2, opt2, checkpoints2, trainer2 = make(tmp_path, keep=2)
  assert not (tmp_path / ".model.ckpt-11.tmp-0123.index").exists()
  assert run_checkpoints.restore_or_initialize(checkpoints2) == "resumed"
  assert trainer2.step == 10
  np.testing.assert_array_equal(model2.kernel.numpy(), model.kernel.numpy())
  trainer2.train(toy_dataset(), 12, checkpoints2, save_checkpoints_steps=4)
  assert [os.path.basename(p) for p in
          tf.train.get_checkpoint_state(str(tmp_path)).all_model_checkpoint_paths] == [
              "model.ckpt-10", "model.ckpt-12"]


def _train_to_12(directory):
  """A run that saved every step, keeping model.ckpt-8 to -12; its final kernel."""
  model, _, checkpoints, trainer = make(directory, keep=5)
  trainer.train(toy_dataset(), 12, checkpoints, save_checkpoints_steps=1)
  return model.kernel.numpy()


def _steps(directory):
  return sorted(int(p.split("-")[-1].split(".")[0])
                for p in tf.io.gfile.glob(str(directory / "model.ckpt-*.index")))


def test_a_missing_latest_checkpoint_resumes_from_the_newest_that_exists(tmp_path, caplog):
  _train_to_12(tmp_path)
  kernel_11 = tf.train.load_checkpoint(str(tmp_path / "model.ckpt-11")).get_tensor(
      "toy/dense/kernel")
  for path in tf.io.gfile.glob(str(tmp_path / "model.ckpt-12.*")):
    os.remove(path)
  model, _, checkpoints, trainer = make(tmp_path, keep=5)
  assert "names model.ckpt-12, which is missing" in caplog.text
  assert run_checkpoints.restore_or_initialize(checkpoints) == "resumed"
  assert trainer.step == 11
  np.testing.assert_array_equal(model.kernel.numpy(), kernel_11)
  trainer.train(toy_dataset(skip=11), 13, checkpoints, save_checkpoints_steps=1)
  assert _steps(tmp_path) == [9, 10, 11, 12, 13]
  # ckpt-11 is the one that was there, not overwritten.
  np.testing.assert_array_equal(tf.train.load_checkpoint(str(tmp_path / "model.ckpt-11"))
                                .get_tensor("toy/dense/kernel"), kernel_11)


def test_a_missing_state_file_resumes_from_the_newest_checkpoint(tmp_path, caplog):
  kernel = _train_to_12(tmp_path)
  os.remove(tmp_path / "checkpoint")
  model, _, checkpoints, trainer = make(tmp_path, keep=5)
  assert "the state file is missing" in caplog.text
  assert run_checkpoints.restore_or_initialize(checkpoints) == "resumed"
  assert trainer.step == 12
  np.testing.assert_array_equal(model.kernel.numpy(), kernel)
  assert _steps(tmp_path) == [8, 9, 10, 11, 12]


def test_an_incomplete_checkpoint_is_passed_over(tmp_path):
  _train_to_12(tmp_path)
  for path in tf.io.gfile.glob(str(tmp_path / "model.ckpt-12.data-*")):
    os.remove(path)
  _, _, checkpoints, trainer = make(tmp_path, keep=5)
  assert checkpoints.latest == str(tmp_path / "model.ckpt-11")
  run_checkpoints.restore_or_initialize(checkpoints)
  # Reaching step 12 again would overwrite what is left of ckpt-12: refused.
  with pytest.raises(FileExistsError, match="model.ckpt-12 exists already"):
    trainer.train(toy_dataset(skip=11), 12, checkpoints, save_checkpoints_steps=1)


def test_never_starts_afresh_over_checkpoint_files(tmp_path):
  _train_to_12(tmp_path)
  for path in tf.io.gfile.glob(str(tmp_path / "model.ckpt-*.index")):
    os.remove(path)
  with pytest.raises(FileExistsError, match="no complete checkpoint to resume from"):
    make(tmp_path, keep=5)
  assert len(tf.io.gfile.glob(str(tmp_path / "model.ckpt-*.data-*"))) == 5


def test_a_full_disk_during_a_save_names_the_path_and_keeps_the_last_checkpoint(tmp_path):
  """RLIMIT_FSIZE makes a write fail with EFBIG ("File too large"), as a full disk would."""
  resource = pytest.importorskip("resource")
  model, opt, checkpoints, trainer = make(tmp_path, keep=5)
  trainer.train(toy_dataset(), 2, checkpoints, save_checkpoints_steps=2)
  big = tf.Variable(tf.zeros([64, 1024]), name="toy/big")  # 256 KB: over the limit below.
  checkpoints.variables = [model, opt, trainer.state, big]
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
  try:
    with pytest.raises(OSError, match=r"cannot write checkpoint .*model.ckpt-3: .*too large"):
      checkpoints.save(3)
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, previous)
  assert checkpoints.latest == str(tmp_path / "model.ckpt-2")
  assert sorted(os.listdir(tmp_path)) == sorted(
      ["checkpoint", "model.ckpt-2.index", "model.ckpt-2.data-00000-of-00001"])


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
    trainer.train(toy_dataset(poisoned=[4]), 20, checkpoints, save_checkpoints_steps=3)
  assert checkpoints.latest == str(tmp_path / "model.ckpt-3")
  assert not tf.io.gfile.glob(str(tmp_path / "model.ckpt-5*"))
  # Nor does a direct save of non-finite weights go through.
  with pytest.raises(FloatingPointError, match="variable toy/dense/(bias|kernel) holds NaN"):
    checkpoints.save(int(opt.global_step))
  assert checkpoints.latest == str(tmp_path / "model.ckpt-3")


def test_sigterm_saves_and_stops(tmp_path):
  model, _, checkpoints, trainer = make(tmp_path, log_steps=1)

  def send_sigterm_at_step_3(batch, totals):
    tf.py_function(lambda step: os.kill(os.getpid(), signal.SIGTERM) if step == 2 else None,
                   [trainer.optimizer.global_step], [])
    return model.loss(batch, totals)

  trainer.train_step.loss_fn = send_sigterm_at_step_3
  result = trainer.train(toy_dataset(), 1000, checkpoints, save_checkpoints_steps=1000)
  assert result == loop.TrainResult(3, signal.SIGTERM)
  assert checkpoints.latest == str(tmp_path / "model.ckpt-3")
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # The handler is removed.


def test_a_second_signal_while_stopping_exits_quietly_with_128_plus_signal():
  with loop._StopSignals() as signals:
    os.kill(os.getpid(), signal.SIGTERM)
    assert signals.received == signal.SIGTERM
    with pytest.raises(SystemExit) as exit_info:
      os.kill(os.getpid(), signal.SIGTERM)
  assert exit_info.value.code == 128 + signal.SIGTERM
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_restore_or_initialize(tmp_path):
  model, _, checkpoints, _ = make(tmp_path / "run")
  assert run_checkpoints.restore_or_initialize(checkpoints) == "fresh"
  encoder_only = tf.Variable(tf.ones([3, 2]), name="toy/dense/kernel")
  init = checkpoint.save(tmp_path / "init" / "model.ckpt", [encoder_only])
  with pytest.raises(ValueError, match="missing from the checkpoint: toy/dense/bias"):
    run_checkpoints.restore_or_initialize(checkpoints, init, model)
  assert run_checkpoints.restore_or_initialize(
      checkpoints, init, model, (r"/bias$",)) == "initialized"
  # Without training, a variable the checkpoint lacks would stay random: refused.
  with pytest.raises(ValueError, match="has no toy/dense/bias: without training"):
    run_checkpoints.restore_or_initialize(checkpoints, init, model, (r"/bias$",), training=False)
  np.testing.assert_array_equal(model.kernel.numpy(), np.ones([3, 2]))


def test_evaluate_and_results_file(tmp_path):
  model, _, _, trainer = make(tmp_path)
  results = trainer.evaluate(toy_dataset(), model.metrics, 3)
  batches = list(toy_dataset().take(3).as_numpy_iterator())
  expected = np.mean([np.mean(np.sum(np.square(b["x"] @ model.kernel.numpy() - b["y"]), -1))
                      for b in batches])
  assert results["mse"] == pytest.approx(expected, rel=1e-5)
  assert results["global_step"] == 0
  files.write_eval_results(str(tmp_path / "eval_results.txt"), results)
  lines = (tmp_path / "eval_results.txt").read_text().splitlines()
  assert lines == ["global_step = 0", f"mse = {results['mse']!s}"]  # str(), as the original


def test_bad_arguments_are_named(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("")
  with pytest.raises(PermissionError, match="output_dir=.*file/sub is not writable"):
    run_checkpoints.CheckpointManager(blocker / "sub", [])
  with pytest.raises(ValueError, match="log_steps=0 must be positive"):
    make(tmp_path, log_steps=0)
  _, _, checkpoints, trainer = make(tmp_path)
  with pytest.raises(ValueError, match="save_checkpoints_steps=0"):
    trainer.train(toy_dataset(), 1, checkpoints, save_checkpoints_steps=0)
  with pytest.raises(ValueError, match="num_accumulation_steps=3 micro-batches"):
    make(tmp_path, num_accumulation_steps=3)
  with pytest.raises(ValueError, match="num_accumulation_steps=2 needs a totals_fn"):
    make_trainer(tf.distribute.get_strategy(), lambda batch: 0.0, trainer.optimizer, BATCH,
                 num_accumulation_steps=2)


# ----------------------------------------------------------------------------
# Accumulation, loss scaling, the dropout stream.

def _weights(*modules):
  """{checkpoint name: numpy value} of every variable."""
  return {name: v.numpy() for name, v in checkpoint.named_variables(list(modules)).items()}


def _assert_close(first, second, tolerance):
  assert set(first) == set(second)
  for name in first:
    np.testing.assert_allclose(first[name], second[name], atol=tolerance, rtol=0, err_msg=name)


@pytest.mark.parametrize("steps", [2, 4])
def test_accumulation_gives_the_update_of_one_large_batch(tmp_path, steps):
  # Batches of 8 weighted examples: the loss divides by the weight of the whole batch.
  whole = make(tmp_path / "whole", batch_size=8)
  whole[3].train(toy_dataset(batch_size=8), 3, whole[2], save_checkpoints_steps=3)
  split = make(tmp_path / "split", batch_size=8, num_accumulation_steps=steps)
  split[3].train(toy_dataset(batch_size=8), 3, split[2], save_checkpoints_steps=3)
  assert split[3].step == 3
  _assert_close(_weights(split[0], split[1]), _weights(whole[0], whole[1]), 1e-6)
  assert split[3].batches_done == 3


def test_loss_scaling_skips_non_finite_steps(tmp_path, caplog):
  caplog.set_level("INFO")
  model, opt, checkpoints, trainer = make(
      tmp_path / "scaled", log_steps=1, dynamic_loss_scale=True, initial_loss_scale=8.0,
      loss_scale_growth_steps=2, summary_dir=str(tmp_path / "scaled"))
  trainer.train(toy_dataset(poisoned=[2]), 4, checkpoints, save_checkpoints_steps=2)
  # Batch 2 was skipped: 4 steps took 5 batches; global_step counts the applied ones.
  assert (trainer.step, trainer.batches_done, int(trainer.state.skipped_steps)) == (4, 5, 1)
  # 8 -> 16 after two finite steps, 8 on the overflow, 16 after two more.
  assert float(trainer.state.loss_scale) == 16.0
  assert "skipped 1 of steps 3-3 for non-finite gradients; loss scale now 8" in caplog.text
  assert "loss_scale 16 skipped 1" in caplog.text
  assert "loss nan" not in caplog.text  # A host call of skipped steps logs no step line.
  # The same weights as a run that never saw batch 2 (scaling by powers of 2 is exact).
  clean = make(tmp_path / "clean")
  dataset = toy_dataset().enumerate().filter(lambda i, _: i != 2).map(lambda _, b: b)
  clean[3].train(dataset, 4, clean[2], save_checkpoints_steps=4)
  _assert_close(_weights(model, opt), _weights(clean[0], clean[1]), 1e-6)
  # The checkpoint is finite float32 with the scale under a name the original ignores,
  # and a resumed run continues from the same batch and scale.
  saved = tf.train.load_checkpoint(checkpoints.latest)
  assert saved.get_tensor("bert_tf2/loss_scale") == 16.0
  assert saved.get_tensor("bert_tf2/skipped_steps") == 1
  resumed = make(tmp_path / "scaled", dynamic_loss_scale=True)
  assert run_checkpoints.restore_or_initialize(resumed[2]) == "resumed"
  assert (resumed[3].batches_done, float(resumed[3].state.loss_scale)) == (5, 16.0)
  # At a scale of 1, non-finite gradients are the model's, not the scale's: stop.
  _, _, checkpoints, trainer = make(tmp_path / "floor", dynamic_loss_scale=True,
                                    initial_loss_scale=1.0)
  with pytest.raises(FloatingPointError, match="not finite in steps 1-4 even at a loss scale.*"
                                               "No checkpoint was saved before it"):
    trainer.train(toy_dataset(poisoned=[1]), 4, checkpoints, save_checkpoints_steps=4)


def test_dropout_stream_is_checkpointed_so_resumption_is_exact(tmp_path):
  straight = make(tmp_path / "straight", dropout_rate=0.5, seed=3)
  straight[3].train(toy_dataset(), 6, straight[2], save_checkpoints_steps=6)

  first = make(tmp_path / "resumed", dropout_rate=0.5, seed=3)
  first[3].train(toy_dataset(), 3, first[2], save_checkpoints_steps=3)
  tf.random.set_seed(99)  # Op-level randomness has no say in the masks.
  model, opt, checkpoints, trainer = make(tmp_path / "resumed", dropout_rate=0.5, seed=3)
  assert run_checkpoints.restore_or_initialize(checkpoints) == "resumed"
  trainer.train(toy_dataset(skip=trainer.batches_done), 6, checkpoints,
                save_checkpoints_steps=6)
  _assert_close(_weights(model, opt), _weights(straight[0], straight[1]), 0.0)
  assert "bert_tf2/dropout_rng" in _weights(trainer.state)

  # The masks matter: another seed trains other weights.
  other = make(tmp_path / "other", dropout_rate=0.5, seed=4)
  other[3].train(toy_dataset(), 6, other[2], save_checkpoints_steps=6)
  assert not np.allclose(other[0].kernel.numpy(), straight[0].kernel.numpy())
