"""A two-level training loop on tf.distribute with checkpoints in the original layout.

Inner level (device): `Trainer.replica_step` runs on every replica through
`strategy.run`: the loss totals all-reduced, forward pass and gradients of
this replica's share of the loss (over K micro-batches with accumulation;
XLA-compiled with use_xla), an all-reduce (SUM) over replicas, loss
unscaling (fp16), then the optimizer update. A tf.function runs up to
`iterations_per_loop` of them in one host call.

Outer level (host): a plain Python loop in `Trainer.train` that owns
checkpoints, TensorBoard summaries, log lines, non-finite checks and
SIGTERM/SIGINT.

The loop knows nothing about BERT. A task supplies
  totals_fn(batch) -> {name: float32 scalar}: what its loss divides by,
      summed over a batch (e.g. {"examples": B});
  loss_fn(batch, totals) -> float32 scalar: the batch's share of the loss of
      the update, `totals` being totals_fn summed over the whole global batch
      (every replica and micro-batch), so that the shares sum to the
      global-batch loss (e.g. a mean divides by totals["examples"]);
  metrics_fn(batch) -> {name: (numerator, denominator)} for evaluation, each a
      float32 scalar summed over replicas and steps; the metric is the ratio.
Build the model and the optimizer under `strategy.scope()`.

Checkpoints are name-based, `model.ckpt-<step>` in the output directory with
a `checkpoint` state file, as the original Estimator writes them; they hold
the model, `global_step` and the Adam slots, so the original code can read them
and original training checkpoints resume here, plus the `TrainingState` (dropout
random state, loss scale) under `bert_tf2/` names the original ignores.
"""

import dataclasses
import logging
import math
import os
import re
import signal
import threading
import time

import numpy as np
import tensorflow as tf

from modeling import checkpoint
from modeling.data import files
from modeling.model import layers

logger = logging.getLogger(__name__)

STATE_FILE = "checkpoint"

# Checkpoint names that may be absent when resuming: those of TrainingState.
OPTIONAL_STATE = (r"^bert_tf2/",)

# What `tf.summary.scalar` writes, without needing the tensorboard package.
_SCALAR_METADATA = tf.compat.v1.SummaryMetadata(
    plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars"))


class CheckpointManager:
  """Training checkpoints `<directory>/<basename>-<step>` with retention.

  A checkpoint becomes visible only once complete: `checkpoint.save` writes
  under a temporary name and renames, then the `checkpoint` state file (what
  `tf.train.latest_checkpoint` reads) is replaced atomically. A crash at any
  moment leaves the last good checkpoint in place and named by the state file.

  The files decide, not the state file: a run resumes from the newest complete
  checkpoint in the directory (index and every data shard present) even when
  the state file is missing or names a checkpoint that is gone, and it never
  starts afresh over `<basename>-*` files nor writes over an existing
  checkpoint.
  """

  def __init__(self, directory, variables, keep_checkpoint_max=5, is_chief=True,
               basename="model.ckpt"):
    """Args:
      directory: the output directory; created if absent.
      variables: a tf.Module, tf.Variables or a list of them (everything saved).
      keep_checkpoint_max: how many recent checkpoints to keep (0 or None: all).
      is_chief: only the chief writes; other workers of a multi-worker run
        read only.
      basename: file name prefix, "model.ckpt" as the original.

    Raises:
      PermissionError: the directory cannot be created or written.
      FileExistsError: the directory holds `<basename>-*` files but no complete
        checkpoint (a fresh start would overwrite them).
    """
    self.directory = os.fspath(directory)
    self.variables = variables
    self.keep_checkpoint_max = keep_checkpoint_max
    self.is_chief = is_chief
    self.basename = basename
    if is_chief:
      _check_writable(self.directory)
      for stale in tf.io.gfile.glob(os.path.join(self.directory, f".{basename}-*.tmp-*")):
        tf.io.gfile.remove(stale)  # Left by a crash (or a full disk) during a save.
    complete = self.complete_checkpoints()
    state = tf.train.get_checkpoint_state(self.directory)
    recorded = [os.path.basename(p) for p in state.all_model_checkpoint_paths] if state else []
    latest_recorded = os.path.basename(state.model_checkpoint_path) if state else None
    newest = max(complete) if complete else None
    if newest is None:
      leftovers = tf.io.gfile.glob(os.path.join(self.directory, f"{basename}-*"))
      if leftovers:
        raise FileExistsError(
            f"{self.directory} holds {len(leftovers)} {basename}-* files (e.g. "
            f"{os.path.basename(sorted(leftovers)[0])}) but no complete checkpoint to "
            "resume from (an index and all its data files); starting afresh would overwrite "
            "them: move them away or choose another --output_dir")
    elif latest_recorded != complete[newest]:
      logger.warning(
          "%s: %s; resuming from the newest complete checkpoint, %s", self.directory,
          f"the state file names {latest_recorded}, which is missing or incomplete"
          if latest_recorded and latest_recorded not in complete.values()
          else "the state file is missing" if state is None
          else f"the state file names {latest_recorded}, older than the files",
          complete[newest])
    # Retention goes on with the state file's list (those still there) and any
    # newer complete checkpoint it does not know; older unknown ones are left alone.
    known = {os.path.basename(p) for p in recorded}
    since = max((s for s, n in complete.items() if n in known), default=-1)
    self._kept = [complete[s] for s in sorted(complete) if complete[s] in known or s > since]
    self._latest = newest

  def complete_checkpoints(self):
    """{step: basename} of the complete checkpoints in the directory."""
    found = {}
    prefix = os.path.join(self.directory, f"{self.basename}-")
    for index in tf.io.gfile.glob(prefix + "*.index"):
      step = index[len(prefix):-len(".index")]
      if not step.isdigit():
        continue
      shards = tf.io.gfile.glob(f"{index[:-len('.index')]}.data-*-of-*")
      if shards and len(shards) == int(shards[0].rsplit("-of-", 1)[1]):
        found[int(step)] = f"{self.basename}-{step}"
    return found

  @property
  def latest(self):
    """The newest complete checkpoint prefix, or None."""
    if self._latest is None:
      return None
    return os.path.join(self.directory, f"{self.basename}-{self._latest}")

  def restore(self, prefix):
    """Loads every variable from `prefix`; returns the LoadReport.

    Strict except for the `TrainingState` variables (OPTIONAL_STATE), which the
    original's checkpoints lack: those stay as initialised.
    """
    return checkpoint.load(prefix, self.variables, allow_missing=OPTIONAL_STATE)

  def save(self, step):
    """Writes `<basename>-<step>` and makes it the latest; returns its prefix.

    Returns None, writing nothing, on a worker that is not the chief.

    Raises:
      FloatingPointError: a variable holds NaN or Inf (nothing is written).
      FileExistsError: a checkpoint of that step exists already (it is kept).
      OSError: the disk is full or not writable (the path and cause named; the
        last good checkpoint stays the latest).
    """
    if not self.is_chief:
      return None
    prefix = os.path.join(self.directory, f"{self.basename}-{step}")
    if tf.io.gfile.glob(prefix + ".*"):
      raise FileExistsError(
          f"not saving step {step}: {prefix} exists already and is not overwritten; the last "
          f"checkpoint of this run is {self.latest}")
    for name, variable in checkpoint.named_variables(self.variables).items():
      if variable.dtype.is_floating and not bool(tf.reduce_all(tf.math.is_finite(variable))):
        raise FloatingPointError(
            f"not saving step {step}: variable {name} holds NaN or Inf; the last good "
            f"checkpoint is {self.latest}")
    checkpoint.save(prefix, self.variables)
    name = os.path.basename(prefix)
    self._kept = [p for p in self._kept if p != name] + [name]
    self._latest = step
    dropped = []
    if self.keep_checkpoint_max:
      dropped = self._kept[:-self.keep_checkpoint_max]
      self._kept = self._kept[-self.keep_checkpoint_max:]
    self._write_state()
    for old in dropped:
      for path in tf.io.gfile.glob(os.path.join(self.directory, old) + ".*"):
        tf.io.gfile.remove(path)
    return prefix

  def _write_state(self):
    """Replaces the `checkpoint` file atomically, paths relative as the Estimator's."""
    lines = [f'model_checkpoint_path: "{self._kept[-1]}"']
    lines += [f'all_model_checkpoint_paths: "{p}"' for p in self._kept]
    write_atomically(os.path.join(self.directory, STATE_FILE), "\n".join(lines) + "\n")


def _check_writable(directory):
  """Creates `directory` and checks a file can be written there."""
  try:
    tf.io.gfile.makedirs(directory)
    probe = os.path.join(directory, f".write-test-{os.getpid()}")
    with tf.io.gfile.GFile(probe, "w") as writer:
      writer.write("")
    tf.io.gfile.remove(probe)
  except (tf.errors.OpError, OSError) as error:
    raise PermissionError(f"--output_dir={directory} is not writable: "
                          f"{getattr(error, 'message', error)}") from None


def restore_or_initialize(checkpoints, init_checkpoint=None, init_variables=None,
                          allow_missing=(), training=True, unused=()):
  """Resumes from the latest checkpoint of a run, else starts from `init_checkpoint`.

  Args:
    checkpoints: the run's CheckpointManager. When it has a checkpoint (ours or
      one the original code wrote in the same directory), every variable is
      loaded from it, `global_step` and the Adam slots included.
    init_checkpoint: a pretrained checkpoint (prefix or directory) or None.
    init_variables: what to fill from `init_checkpoint` (the model; the optimizer
      starts fresh, as the original's `init_from_checkpoint`).
    allow_missing: regexes of `init_variables` that may be absent from
      `init_checkpoint` and start freshly initialised (e.g. `^cls/`).
    training: whether the run trains. Without training, a variable absent from
      `init_checkpoint` would stay random in every result: refused.
    unused: names of `init_variables` the task never reads (the pooler under a
      span or per-token head): they may be absent, training or not (a Hugging
      Face `BertForQuestionAnswering` has no pooler).

  Returns:
    "resumed", "initialized" or "fresh".

  Raises:
    ValueError: not training, and `init_checkpoint` lacks variables (named).
  """
  latest = checkpoints.latest
  if latest:
    report = checkpoints.restore(latest)
    logger.info("Resuming from %s: %d variables", latest, len(report.loaded))
    return "resumed"
  if init_checkpoint:
    allow_missing = tuple(allow_missing) + tuple(f"^{re.escape(name)}$" for name in unused)
    report = checkpoint.load(init_checkpoint, init_variables, allow_missing=allow_missing)
    logger.info("Initialised from %s", report)
    needed = [name for name in report.missing if name not in unused]
    if needed and not training:
      raise ValueError(
          f"--init_checkpoint={init_checkpoint} has no {', '.join(needed)}: without "
          "training (--do_train) they would stay random and every result would be noise. "
          "Train first, or give a fine-tuned checkpoint (or an --output_dir holding one)")
    if report.missing:
      logger.info("Freshly initialised (absent from %s): %s", init_checkpoint,
                  ", ".join(report.missing))
    return "initialized"
  return "fresh"


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


class TrainingState(tf.Module):
  """Training-loop state beyond the model and optimizer, checkpointed under `bert_tf2/`.

  The original's code ignores these names (its Saver reads only its own
  variables), and a checkpoint without them (the original's, or an older one
  of ours) resumes with them freshly initialised.

  Attributes:
    dropout_rng_state: int64 [3] variable `bert_tf2/dropout_rng`, the Philox
      state of `dropout_rng`, the tf.random.Generator of every dropout mask.
    loss_scale: float32 variable `bert_tf2/loss_scale`, or None without
      dynamic loss scaling.
    good_steps: int64 variable `bert_tf2/loss_scale_good_steps`, finite steps
      since the scale last changed (None without loss scaling).
    skipped_steps: int64 variable `bert_tf2/skipped_steps`, steps skipped for
      non-finite gradients since the start (None without loss scaling).
  """

  def __init__(self, seed, dynamic_loss_scale=False, initial_loss_scale=2.0 ** 15):
    """Creates the variables; call under the strategy's scope."""
    super().__init__(name="bert_tf2")
    self.dropout_rng_state = tf.Variable(tf.random.create_rng_state(seed, "philox"),
                                         trainable=False, name="bert_tf2/dropout_rng")
    self.dropout_rng = tf.random.Generator(state=self.dropout_rng_state, alg="philox")
    self.loss_scale = self.good_steps = self.skipped_steps = None
    if dynamic_loss_scale:
      # Updated in replica context with values identical on every replica.
      first = tf.VariableAggregation.ONLY_FIRST_REPLICA
      self.loss_scale = tf.Variable(float(initial_loss_scale), trainable=False,
                                    aggregation=first, name="bert_tf2/loss_scale")
      self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, aggregation=first,
                                    name="bert_tf2/loss_scale_good_steps")
      self.skipped_steps = tf.Variable(0, dtype=tf.int64, trainable=False, aggregation=first,
                                       name="bert_tf2/skipped_steps")



class Trainer:
  """Runs a task's training and evaluation steps under a strategy.

  Example (run_pretraining.py and run_classifier.py):
    with strategy.scope():
      model = ...                                   # tf.Module, original names
      optimizer = optimization.create_optimizer("adamw", model.trainable_variables, ...)
    trainer = loop.Trainer(strategy, model.loss, optimizer, global_batch_size=32,
                           totals_fn=model.loss_totals, seed=12345)
    checkpoints = loop.CheckpointManager(output_dir, [model, optimizer, trainer.state])
    loop.restore_or_initialize(checkpoints, init_checkpoint, model, (r"^output_",))
    dataset = make_dataset(skip_batches=trainer.batches_done)  # global batches
    trainer.train(dataset, num_train_steps, checkpoints, save_checkpoints_steps=1000)
    trainer.evaluate(eval_dataset, metrics_fn, num_steps=100)

  Mixed precision: the model computes in bf16/fp16 with float32 variables, so
  gradients, optimizer slots and checkpoints stay float32. With
  `dynamic_loss_scale` (for fp16) the loss is multiplied by `loss_scale`
  before the gradients are taken and the gradients divided by it after the
  all-reduce; a step whose gradients are not all finite changes no variable
  and does not advance `global_step` (as NVIDIA's BERT): it halves the scale
  (down to 1) and counts in `skipped_steps`. After `loss_scale_growth_steps`
  finite steps in a row the scale doubles.

  Gradient accumulation: with `num_accumulation_steps` K, each replica's part
  of a global batch is cut into K micro-batches whose gradients are summed in
  a loop before one update, so `global_batch_size` examples make one step
  whatever K is (the memory of a batch K times smaller). As the losses divide
  by totals of the whole update (`totals_fn`), the update equals that of one
  undivided batch (exactly so with dense gradients; gradients of a gathered
  embedding are made dense before the sum, and the global norm of a
  tf.IndexedSlices gradient, which the unaccumulated step clips as the
  original does, counts its duplicate rows separately). Nothing of it is
  saved: the sums are loop variables, zero at each step's start.
  """

  def __init__(self, strategy, loss_fn, optimizer, global_batch_size, log_steps=100,
               iterations_per_loop=1000, summary_dir=None, is_chief=True, totals_fn=None,
               num_accumulation_steps=1, use_xla=False, dynamic_loss_scale=False,
               initial_loss_scale=2.0 ** 15, loss_scale_growth_steps=2000, seed=0):
    """Args:
      strategy: a tf.distribute.Strategy (the default strategy for one device).
      loss_fn: with `totals_fn`, (batch, totals) -> float32 scalar, the share
        of a (micro-)batch in the loss of the update, whose denominators are
        `totals`; without, batch -> this replica's float32 share of the
        global-batch loss.
      optimizer: an `optimization.AdamWeightDecay` or `Lamb` (owns `global_step`).
      global_batch_size: examples per step (per update) over all replicas.
      log_steps: a log line and summaries every this many steps.
      iterations_per_loop: most steps run on device per host call.
      summary_dir: where TensorBoard summaries go; None for none.
      is_chief: whether this worker logs and writes summaries.
      totals_fn: batch -> {name: float32 scalar} what the loss divides by,
        summed over a batch; summed over the replicas and micro-batches of an
        update and passed to `loss_fn`. Needed for accumulation.
      num_accumulation_steps: K micro-batches per replica per update.
      use_xla: jit_compile the forward and backward pass (with the
        accumulation loop); the all-reduce and the update stay outside, so it
        works under every strategy.
      dynamic_loss_scale: scale the loss (for float16 compute).
      initial_loss_scale, loss_scale_growth_steps: the scale at the start and
        the finite steps in a row that double it.
      seed: seed of the dropout random stream (`TrainingState.dropout_rng`).

    Raises:
      ValueError: a count is not positive, the batch does not split evenly
        over the replicas and micro-batches, or accumulation without totals_fn.
    """
    for name, value in (("global_batch_size", global_batch_size), ("log_steps", log_steps),
                        ("iterations_per_loop", iterations_per_loop),
                        ("num_accumulation_steps", num_accumulation_steps),
                        ("loss_scale_growth_steps", loss_scale_growth_steps)):
      if value <= 0:
        raise ValueError(f"{name}={value} must be positive")
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
      raise ValueError(f"the batch size {global_batch_size} does not split over "
                       f"{replicas} replicas; use a multiple of {replicas}")
    if global_batch_size % (replicas * num_accumulation_steps):
      raise ValueError(
          f"the batch size {global_batch_size} does not split into num_accumulation_steps="
          f"{num_accumulation_steps} micro-batches on each of {replicas} replicas; use a "
          f"multiple of {replicas * num_accumulation_steps}")
    if num_accumulation_steps > 1 and totals_fn is None:
      raise ValueError(f"num_accumulation_steps={num_accumulation_steps} needs a totals_fn")
    self.strategy = strategy
    self.loss_fn = loss_fn
    self.totals_fn = totals_fn
    self.optimizer = optimizer
    self.global_batch_size = global_batch_size
    self.num_accumulation_steps = num_accumulation_steps
    self.loss_scale_growth_steps = loss_scale_growth_steps
    self.log_steps = log_steps
    self.iterations_per_loop = iterations_per_loop
    self.is_chief = is_chief
    with strategy.scope():
      self.state = TrainingState(seed, dynamic_loss_scale, initial_loss_scale)
    self._summary_dir = summary_dir if is_chief else None
    self._writer = None  # Created at the first log line.
    self._gradients_fn = (tf.function(self._gradients, jit_compile=True) if use_xla
                          else self._gradients)
    self._train_loop = tf.function(self._device_loop)

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

  def replica_step(self, batch):
    """One training step on one replica.

    Args:
      batch: this replica's part of the global batch (a dict of tensors with
        the batch as first dimension).

    Returns:
      (loss share, learning rate, grad norm, applied): float32 scalars;
      `applied` is 0 for a step skipped by loss scaling, else 1.
    """
    context = tf.distribute.get_replica_context()
    totals = None
    if self.totals_fn is not None:
      totals = context.all_reduce(tf.distribute.ReduceOp.SUM, self.totals_fn(batch))
    with layers.dropout_generator(self.state.dropout_rng):
      loss, gradients = self._gradients_fn(batch, totals)
    # Each replica's loss is its share of the global-batch loss, so the SUM of
    # the replicas' gradients is the gradient of the global-batch loss.
    gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
    finite = None
    if self.state.loss_scale is not None:
      gradients, finite = self._unscale(gradients)
    learning_rate, grad_norm = self.optimizer.apply_gradients(gradients, apply=finite)
    applied = tf.constant(1.0) if finite is None else tf.cast(finite, tf.float32)
    return loss, learning_rate, grad_norm, applied

  def _gradients(self, batch, totals):
    """(loss share float32 scalar, gradients) of one replica's batch.

    The gradients are of the loss times the loss scale (when scaling), summed
    over `num_accumulation_steps` micro-batches.
    """
    variables = self.optimizer.trained_variables
    scale = self.state.loss_scale

    def loss_and_gradients(micro_batch):
      with tf.GradientTape() as tape:
        loss = (self.loss_fn(micro_batch) if self.totals_fn is None
                else self.loss_fn(micro_batch, totals))
        scaled = loss if scale is None else loss * scale
      return loss, tape.gradient(scaled, variables)

    steps = self.num_accumulation_steps
    if steps == 1:
      return loss_and_gradients(batch)
    micro_batches = tf.nest.map_structure(
        lambda x: tf.reshape(x, [steps, -1] + x.shape[1:].as_list()), batch)  # [K, b/K, ...]

    def accumulate(index, loss_sum, gradient_sums):
      loss, gradients = loss_and_gradients(
          tf.nest.map_structure(lambda x: x[index], micro_batches))
      return (index + 1, loss_sum + loss,
              [s + tf.convert_to_tensor(g) for s, g in zip(gradient_sums, gradients)])

    zeros = [tf.zeros(v.shape, tf.float32) for v in variables]
    _, loss, gradients = tf.while_loop(lambda index, *_: index < steps, accumulate,
                                       (tf.constant(0), tf.constant(0.0), zeros))
    return loss, gradients

  def _unscale(self, gradients):
    """Divides the summed gradients by the loss scale and updates the scale.

    Returns:
      (gradients, finite): finite is a bool scalar, whether every gradient is.
    """
    state = self.state
    scale = state.loss_scale.read_value()
    unscaled = []
    for gradient in gradients:
      if isinstance(gradient, tf.IndexedSlices):
        unscaled.append(tf.IndexedSlices(gradient.values / scale, gradient.indices,
                                         gradient.dense_shape))
      else:
        unscaled.append(gradient / scale)
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(
        g.values if isinstance(g, tf.IndexedSlices) else g)) for g in unscaled])
    good = tf.where(finite, state.good_steps + 1, tf.constant(0, tf.int64))
    grow = good >= self.loss_scale_growth_steps
    state.loss_scale.assign(tf.where(finite, tf.where(grow, scale * 2.0, scale),
                                     tf.maximum(scale / 2.0, 1.0)))
    state.good_steps.assign(tf.where(grow, tf.constant(0, tf.int64), good))
    state.skipped_steps.assign_add(tf.cast(tf.logical_not(finite), tf.int64))
    return unscaled, finite

  def _device_loop(self, iterator, steps):
    """Runs `steps` global batches.

    Returns:
      (mean loss over the applied steps (NaN if none), last learning rate, last
      grad norm, number of applied steps), float32 scalars.
    """
    strategy = self.strategy
    loss_sum = applied_sum = tf.constant(0.0)
    learning_rate = grad_norm = tf.constant(0.0)
    for _ in tf.range(steps):
      loss, rate, norm, applied = strategy.run(self.replica_step, args=(next(iterator),))
      applied = strategy.reduce(tf.distribute.ReduceOp.MEAN, applied, axis=None)
      loss = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
      loss_sum += tf.where(applied > 0.0, loss, 0.0)
      applied_sum += applied
      learning_rate = strategy.reduce(tf.distribute.ReduceOp.MEAN, rate, axis=None)
      grad_norm = strategy.reduce(tf.distribute.ReduceOp.MEAN, norm, axis=None)
    mean_loss = tf.where(applied_sum > 0.0, loss_sum / tf.maximum(applied_sum, 1.0), np.nan)
    return mean_loss, learning_rate, grad_norm, applied_sum

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
    logger.info("Training from step %d to %d, %d examples per step on %d replicas", step,
                num_train_steps, self.global_batch_size, self.strategy.num_replicas_in_sync)
    iterator = iter(self.strategy.experimental_distribute_dataset(dataset))
    log_start, log_time = self.batches_done, time.time()
    with _StopSignals() as signals:
      while step < num_train_steps and signals.received is None:
        stop = self._next_stop(step, num_train_steps, save_checkpoints_steps)
        scale = self.state.loss_scale
        scale_before = None if scale is None else float(scale.numpy())
        loss, learning_rate, grad_norm, applied = (
            float(x) for x in self._train_loop(iterator, tf.constant(stop - step)))
        skipped = stop - step - round(applied)
        if not math.isfinite(loss) and (scale is None or applied):
          raise FloatingPointError(
              f"the loss is {loss} in steps {step + 1}-{stop}; stopping without saving. The "
              f"last good checkpoint is {checkpoints.latest}; lower --learning_rate or check "
              "the input data")
        if skipped:
          if scale_before <= 1.0:
            raise FloatingPointError(
                f"the gradients are not finite in steps {step + 1}-{stop} even at a loss "
                f"scale of 1; stopping without saving. The last good checkpoint is "
                f"{checkpoints.latest}; lower --learning_rate or check the input data")
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
      if signals.received is not None and saved_step != step:
        self._save(checkpoints, step)
    return TrainResult(step, signals.received)

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
    """
    strategy = self.strategy

    @tf.function
    def eval_step(batch):
      parts = strategy.run(metrics_fn, args=(batch,))
      return tf.nest.map_structure(
          lambda x: strategy.reduce(tf.distribute.ReduceOp.SUM, x, axis=None), parts)

    totals = {}
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    for _ in range(num_steps):
      for name, (numerator, denominator) in eval_step(next(iterator)).items():
        previous = totals.get(name, (0.0, 0.0))
        totals[name] = (previous[0] + float(numerator), previous[1] + float(denominator))
    results = {name: np.float32(num / den) if den else float("nan")
               for name, (num, den) in totals.items()}
    results["global_step"] = self.step
    return results


def write_atomically(path, text):
  """Writes `text` to `path` through a temporary file renamed into place.

  A reader never sees a half-written file, and a crash leaves the old one.
  """
  with files.atomic_open(path, "w") as writer:
    writer.write(text)


def write_eval_results(path, results):
  """Writes `key = value` lines sorted by key, as the original `eval_results.txt`."""
  write_atomically(path, "".join(f"{key} = {results[key]!s}\n" for key in sorted(results)))


def _duration(seconds):
  """Formats seconds as e.g. '1h02m' or '45s'."""
  seconds = int(seconds)
  if seconds >= 3600:
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
  if seconds >= 60:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds}s"
