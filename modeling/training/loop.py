"""The host level of training: the loop around the device steps.

`Trainer.train` is a plain Python loop that calls `steps.TrainStep.run` for up
to `iterations_per_loop` steps at a time and, between calls, owns the save
cadence, TensorBoard summaries, log lines, non-finite checks and SIGTERM/SIGINT;
`Trainer.evaluate` sums `steps.eval_step` over batches. As Orbit keeps its
controller apart from its trainer, this module holds no device code.

Example (run_pretraining.py and run_classifier.py):
  with strategy.scope():
    model = ...                                   # tf.Module, original names
    optimizer = optimization.create_optimizer("adamw", model.trainable_variables, ...)
  trainer = loop.Trainer(steps.TrainStep(strategy, model.loss, optimizer,
                                         global_batch_size=32,
                                         totals_fn=model.loss_totals, seed=12345))
  checkpoints = run_checkpoints.CheckpointManager(output_dir,
                                                  [model, optimizer, trainer.state])
  run_checkpoints.restore_or_initialize(checkpoints, init_checkpoint, model, (r"^output_",))
  dataset = make_dataset(skip_batches=trainer.batches_done)  # global batches
  trainer.train(dataset, num_train_steps, checkpoints, save_checkpoints_steps=1000)
  trainer.evaluate(eval_dataset, metrics_fn, num_steps=100)
"""

import contextlib
import dataclasses
import logging
import math
import signal
import threading
import time

import numpy as np
import tensorflow as tf

from modeling.training import distribution, steps

logger = logging.getLogger(__name__)

# What `tf.summary.scalar` writes, without needing the tensorboard package.
_SCALAR_METADATA = tf.compat.v1.SummaryMetadata(
    plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars"))


@dataclasses.dataclass
class TrainResult:
  """How `Trainer.train` ended: the step reached and the signal that stopped it, if any."""
  step: int
  signal: int = None


class _StopSignals:
  """Turns SIGTERM/SIGINT into a stop request while installed (main thread only).

  A second signal while a stop is pending ends the process at once, quietly,
  with status 128 + signal as the first would (`SystemExit`, so temporary files
  are still removed; checkpoints are renamed into place whole, so none is left
  half-written).
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.received is not None:
      logger.warning("Received signal %d again while stopping: exiting now; the last "
                     "complete checkpoint is kept", signum)
      raise SystemExit(128 + signum)
    self.received = signum
    logger.warning("Received signal %d: stopping after the current steps and saving a "
                   "checkpoint", signum)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in self.SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


def _last_good(checkpoints):
  """Where a run stopped for a non-finite loss can resume from, in words."""
  if checkpoints.latest is None:
    return "No checkpoint was saved before it"
  return f"The last good checkpoint is {checkpoints.latest}"


class Trainer:
  """Runs a `steps.TrainStep` from the host: train to a step, evaluate.

  Attributes:
    train_step: the device level.
    strategy, optimizer, state, global_batch_size: the train step's.
  """

  def __init__(self, train_step, log_steps=100, iterations_per_loop=1000, summary_dir=None,
               is_chief=True):
    """Args:
      train_step: a `steps.TrainStep`.
      log_steps: a log line and summaries every this many steps.
      iterations_per_loop: most steps run on device per host call.
      summary_dir: where TensorBoard summaries go; None for none.
      is_chief: whether this worker logs and writes summaries.

    Raises:
      ValueError: a count is not positive.
    """
    for name, value in (("log_steps", log_steps), ("iterations_per_loop", iterations_per_loop)):
      if value <= 0:
        raise ValueError(f"{name}={value} must be positive")
    self.train_step = train_step
    self.strategy = train_step.strategy
    self.optimizer = train_step.optimizer
    self.state = train_step.state
    self.global_batch_size = train_step.global_batch_size
    self.log_steps = log_steps
    self.iterations_per_loop = iterations_per_loop
    self.is_chief = is_chief
    self._summary_dir = summary_dir if is_chief else None
    self._writer = None  # Created at the first log line.

  @property
  def step(self):
    """The global step, as a Python int."""
    return int(self.optimizer.global_step.numpy())

  @property
  def batches_done(self):
    """Global batches trained on so far: steps, plus the skipped ones (Python int).

    Where the data pipeline of a resumed run starts.
    """
    skipped = self.state.skipped_steps
    return self.step + (0 if skipped is None else int(skipped.numpy()))

  def _next_stop(self, step, num_train_steps, save_checkpoints_steps):
    """The step at which the current host call ends."""
    def next_multiple(every):
      return (step // every + 1) * every
    return min(num_train_steps, step + self.iterations_per_loop, next_multiple(self.log_steps),
               next_multiple(save_checkpoints_steps))

  def train(self, dataset, num_train_steps, checkpoints, save_checkpoints_steps=1000):
    """Trains from the current global step to `num_train_steps`.

    Saves a checkpoint every `save_checkpoints_steps` and at the end; stops
    cleanly (saving first) on SIGTERM or SIGINT.

    Args:
      dataset: tf.data.Dataset of global batches, positioned at the current step.
      num_train_steps: the global step to reach.
      checkpoints: a CheckpointManager.
      save_checkpoints_steps: checkpoint interval in steps.

    Returns:
      A TrainResult.

    Raises:
      FloatingPointError: the loss became NaN or Inf; nothing after the last
        good checkpoint is saved.
    """
    if save_checkpoints_steps <= 0:
      raise ValueError(f"save_checkpoints_steps={save_checkpoints_steps} must be positive")
    step = self.step
    saved_step = step
    if step >= num_train_steps:
      logger.info("Global step %d already reaches num_train_steps=%d: nothing to train",
                  step, num_train_steps)
      return TrainResult(step)
    if self.train_step.jit_whole_step:
      steps.check_static_batch(dataset, "training")
    logger.info("Training from step %d to %d, %d examples per step on %d replicas", step,
                num_train_steps, self.global_batch_size, self.strategy.num_replicas_in_sync)
    iterator = iter(self.strategy.experimental_distribute_dataset(dataset))
    log_start, log_time = self.batches_done, time.time()
    stop_signal, vote = None, distribution.StopVote(self.strategy)
    with _StopSignals() as signals:
      while step < num_train_steps:
        stop = self._next_stop(step, num_train_steps, save_checkpoints_steps)
        with self._naming_lost_tasks(checkpoints, step, stop):
          # With several workers, all stop at the step one of them was signalled.
          stop_signal = vote(signals.received)
          if stop_signal is not None:
            break
          scale = self.state.loss_scale
          scale_before = None if scale is None else float(scale.numpy())
          loss, learning_rate, grad_norm, applied = (
              float(x) for x in self.train_step.run(iterator, tf.constant(stop - step)))
        skipped = stop - step - round(applied)
        if not math.isfinite(loss) and (scale is None or applied):
          raise FloatingPointError(
              f"the loss is {loss} in steps {step + 1}-{stop}; stopping without saving. "
              f"{_last_good(checkpoints)}; lower --learning_rate or check the input data")
        if skipped:
          if scale_before <= 1.0:
            raise FloatingPointError(
                f"the gradients are not finite in steps {step + 1}-{stop} even at a loss "
                f"scale of 1; stopping without saving. {_last_good(checkpoints)}; lower "
                "--learning_rate or check the input data")
          logger.warning("skipped %d of steps %d-%d for non-finite gradients; loss scale now "
                         "%g, %d steps skipped in all", skipped, step + 1, stop,
                         float(scale.numpy()), int(self.state.skipped_steps.numpy()))
        if self.step == step:
          continue  # Every step skipped: nothing new to log or save.
        step = self.step
        if step % self.log_steps == 0 or step == num_train_steps:
          now = time.time()
          batches_per_second = (self.batches_done - log_start) / max(now - log_time, 1e-9)
          self._log(step, num_train_steps, loss, learning_rate, grad_norm, batches_per_second)
          log_start, log_time = self.batches_done, now
        if step % save_checkpoints_steps == 0 or step == num_train_steps:
          self._save(checkpoints, step)
          saved_step = step
      stop_signal = stop_signal or signals.received
      if stop_signal is not None and saved_step != step:
        self._save(checkpoints, step)
    return TrainResult(step, stop_signal)

  @contextlib.contextmanager
  def _naming_lost_tasks(self, checkpoints, step, stop):
    """Turns the collective error a lost worker leaves the others into one line of ours.

    Raises:
      distribution.WorkerLostError: naming the lost tasks, the steps and the
        checkpoint a rerun of every task resumes from.
    """
    try:
      yield
    except tf.errors.OpError as error:
      lost = distribution.lost_tasks(self.strategy, error)
      if lost is None:
        raise
      resume = (f"a rerun of every task with the same flags resumes from "
                f"{checkpoints.latest or 'the start (no checkpoint was saved)'}"
                if self.is_chief else "a rerun of every task with the same flags resumes "
                f"from the chief's newest checkpoint in {checkpoints.directory}")
      steps_run = f"step {stop}" if stop == step + 1 else f"steps {step + 1}-{stop}"
      message = (f"{', '.join(lost) or 'another task'} of this multi-worker run stopped in "
                 f"{steps_run} (killed, preempted or crashed: see its log); {resume}")
      logger.error(message)
      raise distribution.WorkerLostError(message) from error

  def _save(self, checkpoints, step):
    prefix = checkpoints.save(step)
    if prefix:
      logger.info("Saved %s", prefix)

  def _log(self, step, num_train_steps, loss, learning_rate, grad_norm, steps_per_second):
    examples_per_second = steps_per_second * self.global_batch_size
    if not self.is_chief:
      return
    seconds_left = (num_train_steps - step) / steps_per_second if steps_per_second else 0
    scalars = {"loss": loss, "learning_rate": learning_rate, "grad_norm": grad_norm,
               "examples_per_second": examples_per_second}
    scaling = ""
    if self.state.loss_scale is not None:
      scalars["loss_scale"] = float(self.state.loss_scale.numpy())
      scalars["skipped_steps"] = float(self.state.skipped_steps.numpy())
      scaling = (f" loss_scale {scalars['loss_scale']:g} skipped "
                 f"{int(scalars['skipped_steps'])}")
    logger.info("step %d/%d loss %.4f lr %.3e grad_norm %.3f%s %.1f examples/s, %s left",
                step, num_train_steps, loss, learning_rate, grad_norm, scaling,
                examples_per_second, _duration(seconds_left))
    if self._summary_dir:
      self._writer = self._writer or tf.summary.create_file_writer(self._summary_dir)
      with self._writer.as_default(step=step):
        for tag, value in scalars.items():
          tf.summary.write(tag, tf.constant(value, tf.float32), metadata=_SCALAR_METADATA)
      self._writer.flush()

  def evaluate(self, dataset, metrics_fn, num_steps):
    """Runs `metrics_fn` over `num_steps` global batches.

    Args:
      dataset: tf.data.Dataset of global batches.
      metrics_fn: batch -> {name: (numerator, denominator)} on one replica.
      num_steps: batches to evaluate.

    Returns:
      {name: float} the ratio of the summed numerators and denominators, plus
      `global_step`.

    With the train step's `jit_whole_step`, `metrics_fn` is compiled whole and
    the batches must have a static batch dimension.
    """
    jit = self.train_step.jit_whole_step
    if jit:
      steps.check_static_batch(dataset, "evaluation")
    run = steps.eval_step(self.strategy, metrics_fn, jit_compile=jit)
    totals = {}
    iterator = iter(self.strategy.experimental_distribute_dataset(dataset))
    for _ in range(num_steps):
      for name, (numerator, denominator) in run(next(iterator)).items():
        previous = totals.get(name, (0.0, 0.0))
        totals[name] = (previous[0] + float(numerator), previous[1] + float(denominator))
    results = {name: np.float32(num / den) if den else float("nan")
               for name, (num, den) in totals.items()}
    results["global_step"] = self.step
    return results


def _duration(seconds):
  """Formats seconds as e.g. '1h02m' or '45s'."""
  seconds = int(seconds)
  if seconds >= 3600:
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
  if seconds >= 60:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds}s"
