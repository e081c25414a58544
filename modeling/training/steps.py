"""The device level of training: one replica's step and a loop of them on the device.

`TrainStep.replica_step` runs on every replica through `strategy.run`: the loss
totals all-reduced, forward pass and gradients of this replica's share of the
loss (over K micro-batches with accumulation; XLA-compiled with use_xla), an
all-reduce (SUM) over replicas, loss unscaling (fp16), then the optimizer
update. With `jit_whole_step` all of it is one XLA program (`jit_compile=True`),
the program a TPU compiles from the same code. `TrainStep.run` is a
tf.function running up to `iterations_per_loop` of them in one host call
(`loop.Trainer` is the host level). `eval_step` is the evaluation's
counterpart.

The steps know nothing about BERT. A task supplies
  totals_fn(batch) -> {name: float32 scalar}: what its loss divides by,
      summed over a batch (e.g. `example_totals`, {"examples": B});
  loss_fn(batch, totals) -> float32 scalar: the batch's share of the loss of
      the update, `totals` being totals_fn summed over the whole global batch
      (every replica and micro-batch), so that the shares sum to the
      global-batch loss (e.g. a mean divides by totals["examples"]);
  metrics_fn(batch) -> {name: (numerator, denominator)} for evaluation, each a
      float32 scalar summed over replicas and steps; the metric is the ratio.
Build the model and the optimizer under `strategy.scope()`.

XLA compiles one program per distinct input shape, so the batches a compiled
step sees must have a static batch dimension (`check_static_batch`) and take
their other lengths from a fixed set (the length buckets).
"""

import numpy as np
import tensorflow as tf

from modeling.model import layers


def compiles_replica_step(strategy):
  """Whether `strategy.run` itself XLA-compiles the whole replica step (TPUStrategy)."""
  return isinstance(strategy, (tf.distribute.TPUStrategy, tf.distribute.experimental.TPUStrategy))


def jit_replica_fn(strategy, fn):
  """`fn` as one jit_compile=True function for `strategy.run`.

  On a TPU, `strategy.run` compiles `fn` whole anyway, so it is returned as is.
  Elsewhere one replica must hold the whole strategy: the replica threads of a
  MirroredStrategy meet in `merge_call` and all-reduces on the host, which no
  compiled function can contain.

  Raises:
    ValueError: a strategy of several replicas that is not a TPUStrategy.
  """
  if compiles_replica_step(strategy):
    return fn
  if strategy.num_replicas_in_sync > 1:
    raise ValueError(
        f"--jit_whole_step compiles the all-reduce and the update into the replica step, "
        f"which {type(strategy).__name__} over {strategy.num_replicas_in_sync} replicas "
        "cannot (its replicas meet on the host); use it on one device or a TPU, and "
        "--use_xla (forward and backward compiled) with several GPUs or workers")
  return tf.function(fn, jit_compile=True)


def check_static_batch(dataset, what):
  """Raises ValueError unless every tensor of `dataset` has a known batch dimension.

  A compiled step (a TPU, --jit_whole_step) would otherwise meet a last, smaller
  batch: a program compiled for it alone, and on a TPU a batch that does not
  split over the cores. `what` names the dataset in the error.
  """
  unknown = sorted(name for name, spec in _named_specs(dataset.element_spec)
                   if spec.shape.rank is None or spec.shape.rank and spec.shape[0] is None)
  if unknown:
    raise ValueError(f"the {what} batches have no static batch dimension ({', '.join(unknown)}): "
                     "a compiled step needs batch(..., drop_remainder=True) or padded batches")


def _named_specs(element_spec):
  """[(name, tf.TensorSpec)] of an element spec: a dict's keys, else positions."""
  if isinstance(element_spec, dict):
    return sorted(element_spec.items())
  return [(str(index), spec) for index, spec in enumerate(tf.nest.flatten(element_spec))]


def example_totals(batch):
  """What a fine-tuning loss divides by, summed over a batch: {"examples": float32 scalar}."""
  return {"examples": tf.cast(tf.shape(batch["input_ids"])[0], tf.float32)}


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


class TrainStep:
  """A task's training step on every replica of a strategy, and the device loop of them.

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

  def __init__(self, strategy, loss_fn, optimizer, global_batch_size, totals_fn=None,
               num_accumulation_steps=1, use_xla=False, jit_whole_step=False,
               dynamic_loss_scale=False, initial_loss_scale=2.0 ** 15,
               loss_scale_growth_steps=2000, seed=0):
    """Args:
      strategy: a tf.distribute.Strategy (the default strategy for one device).
      loss_fn: with `totals_fn`, (batch, totals) -> float32 scalar, the share
        of a (micro-)batch in the loss of the update, whose denominators are
        `totals`; without, batch -> this replica's float32 share of the
        global-batch loss.
      optimizer: an `optimization.AdamWeightDecay` or `Lamb` (owns `global_step`).
      global_batch_size: examples per step (per update) over all replicas.
      totals_fn: batch -> {name: float32 scalar} what the loss divides by,
        summed over a batch; summed over the replicas and micro-batches of an
        update and passed to `loss_fn`. Needed for accumulation.
      num_accumulation_steps: K micro-batches per replica per update.
      use_xla: jit_compile the forward and backward pass (with the
        accumulation loop); the all-reduce and the update stay outside, so it
        works under every strategy.
      jit_whole_step: jit_compile the whole replica step: forward and
        backward with the accumulation loop, the all-reduces, loss scaling and
        the optimizer update (`jit_replica_fn`; one device or a TPU). The
        evaluation (`Trainer.evaluate`) is compiled too.
      dynamic_loss_scale: scale the loss (for float16 compute).
      initial_loss_scale, loss_scale_growth_steps: the scale at the start and
        the finite steps in a row that double it.
      seed: seed of the dropout random stream (`TrainingState.dropout_rng`).

    Raises:
      ValueError: a count is not positive, the batch does not split evenly
        over the replicas and micro-batches, accumulation without totals_fn, or
        jit_whole_step under a strategy that cannot compile it.
    """
    for name, value in (("global_batch_size", global_batch_size),
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
    with strategy.scope():
      self.state = TrainingState(seed, dynamic_loss_scale, initial_loss_scale)
    self.jit_whole_step = jit_whole_step
    # The whole step compiled holds the gradients' program: no nested one.
    self._gradients_fn = (tf.function(self._gradients, jit_compile=True)
                          if use_xla and not jit_whole_step else self._gradients)
    self._replica_step = (jit_replica_fn(strategy, self.replica_step) if jit_whole_step
                          else self.replica_step)
    self.run = tf.function(self._device_loop)

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
      loss, rate, norm, applied = strategy.run(self._replica_step, args=(next(iterator),))
      applied = strategy.reduce(tf.distribute.ReduceOp.MEAN, applied, axis=None)
      loss = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
      loss_sum += tf.where(applied > 0.0, loss, 0.0)
      applied_sum += applied
      learning_rate = strategy.reduce(tf.distribute.ReduceOp.MEAN, rate, axis=None)
      grad_norm = strategy.reduce(tf.distribute.ReduceOp.MEAN, norm, axis=None)
    mean_loss = tf.where(applied_sum > 0.0, loss_sum / tf.maximum(applied_sum, 1.0), np.nan)
    return mean_loss, learning_rate, grad_norm, applied_sum


def eval_step(strategy, metrics_fn, jit_compile=False):
  """A tf.function of a global batch: `metrics_fn` on each replica, summed over them.

  Args:
    strategy: the tf.distribute strategy.
    metrics_fn: batch -> {name: (numerator, denominator)} on one replica.
    jit_compile: compile `metrics_fn` whole (`jit_replica_fn`).

  Returns:
    global batch -> {name: (numerator, denominator)} float32 scalars.
  """
  replica_fn = jit_replica_fn(strategy, metrics_fn) if jit_compile else metrics_fn

  @tf.function
  def run(batch):
    parts = strategy.run(replica_fn, args=(batch,))
    return tf.nest.map_structure(
        lambda x: strategy.reduce(tf.distribute.ReduceOp.SUM, x, axis=None), parts)

  return run
