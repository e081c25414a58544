"""Flags of a training run (its directory, steps, batches, optimizer and numerics), defined
once for run_pretraining.py, run_classifier.py, run_squad.py, run_ner.py and
run_distillation.py, and the loop, checkpoints and training they make.

Names and defaults are the original scripts'; the last group is ours. Library
code never reads flags: the scripts pass values on, as do the other flag modules'
values that these helpers take as arguments.
"""

import os

import numpy as np
import tensorflow as tf
from absl import flags, logging

import bucket_flags  # noqa: F401  (--group_by_length)
import tpu_flags
from modeling import checkpoint
from modeling.data import files, length_buckets
from modeling.training import loop, optimization, run_checkpoints, steps

flags.DEFINE_string("output_dir", None,
                    "Where checkpoints, summaries and results are written.")
flags.DEFINE_bool("do_train", False, "Whether to run training.")
flags.DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.")
flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.")
flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for eval.")
flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate for Adam.")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "How often to save the model checkpoint.")
flags.DEFINE_integer("iterations_per_loop", 1000,
                     "Most steps run on the device per host call.")
# Ours.
COMPUTE_DTYPES = {"none": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}
flags.DEFINE_integer("seed", 12345, "Seed of the initialisation, dropout and data order.")
flags.DEFINE_integer("keep_checkpoint_max", 5, "Most recent checkpoints kept (0: all).")
flags.DEFINE_integer("log_steps", 100, "Log and write summaries every this many steps.")
flags.DEFINE_enum("optimizer", "adamw", list(optimization.OPTIMIZERS),
                  "adamw: the original AdamWeightDecay (no bias correction); "
                  "adamw_corrected: the same with Adam's bias correction (PyTorch's and "
                  "Keras' AdamW); lamb: LAMB (You et al. 2019).")
flags.DEFINE_enum("mixed_precision", "none", list(COMPUTE_DTYPES),
                  "Compute dtype of the matmuls (variables, optimizer and checkpoints stay "
                  "float32): bf16 for TPUs and CPUs with bf16 units, fp16 (with dynamic "
                  "loss scaling) for GPUs.")
flags.DEFINE_bool("use_xla", False, "jit_compile (XLA) the forward and backward pass of the "
                  "train step (off by default: slower on the CPUs measured; see README). "
                  "--jit_whole_step compiles all of the step.")
flags.DEFINE_bool("decay_after_warmup", False,
                  "Decay the learning rate linearly from its peak at the end of the warmup to "
                  "0 at the last step (Hugging Face's schedule), instead of the original's "
                  "decay over all steps, which ends the warmup at (1 - warmup proportion) of "
                  "the peak.")
flags.DEFINE_bool("jit_optimizer", False,
                  "Compile each variable's optimizer update with XLA (one fused pass over the "
                  "variable and its slots; values can differ in the last bit). Not with "
                  "--jit_whole_step, which compiles the update already.")
flags.DEFINE_bool("remove_padding", False,
                  "Run the encoder's per-token layers (all but attention) on the real tokens "
                  "only, skipping the padding's share of their matmuls; the outputs at "
                  "padded positions become zeros, which no head of this script reads (not "
                  "with --use_xla or --use_tpu: its shapes vary with every batch).")
flags.DEFINE_integer("num_accumulation_steps", 1,
                     "Split each batch of --train_batch_size examples into this many "
                     "micro-batches whose gradients are summed before one update (same "
                     "update, less memory).")

FLAGS = flags.FLAGS


def refuse_flags(names, reason):
  """Raises ValueError naming the flags of `names` given on the command line, which
  cannot take effect in this run (`reason` says why)."""
  given = [f"--{name}" for name in names if FLAGS[name].present]
  if given:
    raise ValueError(f"{', '.join(given)}: {reason}")


def compute_dtype_from_flags(use_tpu):
  """The model's compute dtype of --mixed_precision (checked against --use_tpu)."""
  if FLAGS.mixed_precision == "fp16" and use_tpu:
    raise ValueError("--mixed_precision=fp16 is for GPUs; TPUs compute in bfloat16: use "
                     "--mixed_precision=bf16 with --use_tpu")
  return COMPUTE_DTYPES[FLAGS.mixed_precision]


def remove_padding_from_flags(use_tpu):
  """--remove_padding, refused where shapes must be fixed (--use_tpu, --use_xla,
  --jit_whole_step): each batch's real tokens would be a new shape to compile."""
  if FLAGS.remove_padding:
    # The flags themselves, not jit_whole_step_from_flags(): that is also --use_tpu.
    fixed = [name for name, given in (("--use_tpu", use_tpu), ("--use_xla", FLAGS.use_xla),
                                      ("--jit_whole_step", FLAGS.jit_whole_step)) if given]
    if fixed:
      raise ValueError(f"--remove_padding with {', '.join(fixed)}: the real tokens of each "
                       "batch are a new shape, and XLA compiles a program for every shape; "
                       "drop one of them")
  return FLAGS.remove_padding


def trainer_from_flags(strategy, model, optimizer, is_chief):
  """The training loop of the shared flags for a model with `loss` and `loss_totals`.

  Raises:
    ValueError: --num_accumulation_steps does not divide --train_batch_size over
      the replicas (the message names both flags).
  """
  replicas = strategy.num_replicas_in_sync
  if FLAGS.num_accumulation_steps < 1 or (
      FLAGS.train_batch_size % (FLAGS.num_accumulation_steps * replicas)):
    raise ValueError(
        f"--num_accumulation_steps={FLAGS.num_accumulation_steps} must divide "
        f"--train_batch_size={FLAGS.train_batch_size} into micro-batches that split over "
        f"{replicas} replicas: use a divisor of {FLAGS.train_batch_size // replicas}")
  train_step = steps.TrainStep(
      strategy, model.loss, optimizer, FLAGS.train_batch_size, totals_fn=model.loss_totals,
      num_accumulation_steps=FLAGS.num_accumulation_steps, use_xla=FLAGS.use_xla,
      jit_whole_step=tpu_flags.jit_whole_step_from_flags(),
      dynamic_loss_scale=FLAGS.mixed_precision == "fp16", seed=FLAGS.seed)
  return loop.Trainer(train_step, FLAGS.log_steps, FLAGS.iterations_per_loop,
                      summary_dir=FLAGS.output_dir, is_chief=is_chief)


def fine_tuning_schedule(num_examples, num_train_epochs, warmup_proportion):
  """(num_train_steps, num_warmup_steps) as the original fine-tuning scripts count them;
  (0, 0) without --do_train.

  Raises:
    ValueError: the examples make no step of --train_batch_size.
  """
  if not FLAGS.do_train:
    return 0, 0
  num_train_steps = int(num_examples / FLAGS.train_batch_size * num_train_epochs)
  if num_train_steps < 1:
    raise ValueError(f"{num_examples} training examples make no step of "
                     f"--train_batch_size={FLAGS.train_batch_size}")
  return num_train_steps, int(num_train_steps * warmup_proportion)


def training_from_flags(strategy, make_model, num_train_steps, num_warmup_steps, is_chief,
                        fresh_heads, init_checkpoint):
  """A task's model, optimizer, trainer and checkpoints, resumed or initialised, after
  seeding TensorFlow with --seed.

  Args:
    strategy: the tf.distribute strategy.
    make_model: () -> the task's tf.Module (with `loss` and `loss_totals`, and
      optionally `trained_variables`, else all its trainable variables are
      trained), called under the strategy's scope.
    num_train_steps, num_warmup_steps: the learning-rate schedule (0 when not
      training).
    is_chief: whether this worker writes.
    fresh_heads: regexes of the variables `init_checkpoint` may lack when
      training (--do_train); without training, none may be absent.
    init_checkpoint: the checkpoint a fresh run starts from (--init_checkpoint),
      or None.

  Returns:
    (model, optimizer, trainer, checkpoints, start), `start` as
    `run_checkpoints.restore_or_initialize` returns it.
  """
  if FLAGS.jit_optimizer and tpu_flags.jit_whole_step_from_flags():
    raise ValueError("--jit_optimizer cannot take effect with --jit_whole_step (or --use_tpu): "
                     "the whole step, update included, is compiled already")
  tf.random.set_seed(FLAGS.seed)
  with strategy.scope():
    model = make_model()
    optimizer = optimization.create_optimizer(
        FLAGS.optimizer, getattr(model, "trained_variables", model.trainable_variables),
        FLAGS.learning_rate, max(num_train_steps, 1), num_warmup_steps, FLAGS.jit_optimizer,
        FLAGS.decay_after_warmup)
  trainer = trainer_from_flags(strategy, model, optimizer, is_chief)
  checkpoints = run_checkpoints.CheckpointManager(
      FLAGS.output_dir, [model, optimizer, trainer.state], FLAGS.keep_checkpoint_max, is_chief)
  trained = {id(v) for v in optimizer.trained_variables}
  unused = [checkpoint.checkpoint_name(v) for v in model.trainable_variables
            if id(v) not in trained]  # e.g. the pooler under a span head
  start = run_checkpoints.restore_or_initialize(checkpoints, init_checkpoint, model,
                                                fresh_heads, training=FLAGS.do_train,
                                                unused=unused)
  return model, optimizer, trainer, checkpoints, start


def check_outputs(output_names, inputs):
  """Refuses, before any work, a file the run writes in --output_dir that is one of
  its inputs (same file after links), e.g. `--predict_file=out/predictions.json`.

  Args:
    output_names: file names the run writes in --output_dir.
    inputs: [(flag, path)] the files the run reads; None paths (flags not given)
      are skipped.
  """
  files.check_outputs(
      [("--output_dir", os.path.join(FLAGS.output_dir, name)) for name in output_names],
      [(flag, path) for flag, path in inputs if path])


def train_on_bucketed_arrays(trainer, arrays, buckets, num_train_steps, checkpoints):
  """Trains to num_train_steps on `arrays` ({name: np.ndarray [N, ...]}) in batches of
  --train_batch_size drawn by length bucket (`length_buckets.TrainingPlan`);
  returns as `train_from_flags`."""
  buckets = length_buckets.training_buckets(buckets, FLAGS.length_buckets, FLAGS.group_by_length,
                                            tpu_flags.jit_whole_step_from_flags())
  plan = length_buckets.TrainingPlan(arrays["input_mask"], buckets, FLAGS.train_batch_size,
                                     FLAGS.seed, num_train_steps, FLAGS.group_by_length)
  # Compiled (XLA, TPU), the step is one program per shape: say how many, up front.
  logging.info("The train step's shapes (compiled: a program each): batch %d by length %s",
               FLAGS.train_batch_size,
               ", ".join(str(n) for n in np.unique(plan.lengths[trainer.batches_done:])))
  return train_from_flags(trainer, plan.dataset(arrays, trainer.batches_done), num_train_steps,
                          checkpoints)


def pretrain_from_flags(trainer, records, checkpoints, num_train_steps):
  """Trains to num_train_steps on `records` (a `pretraining_input.PretrainingRecords`),
  from where a resumed run left them; returns as `train_from_flags`."""
  skip_records = trainer.batches_done * FLAGS.train_batch_size
  return records.reading(lambda: train_from_flags(
      trainer, records.dataset(FLAGS.train_batch_size, True, skip_records),
      num_train_steps, checkpoints))


def evaluate_records_from_flags(strategy, trainer, records, metrics_fn, max_eval_steps):
  """`trainer.evaluate` of `metrics_fn` over max_eval_steps batches of `records`.

  Raises:
    ValueError: --eval_batch_size does not split over the replicas.
  """
  if FLAGS.eval_batch_size % strategy.num_replicas_in_sync:
    raise ValueError(f"--eval_batch_size={FLAGS.eval_batch_size} does not split over "
                     f"{strategy.num_replicas_in_sync} replicas")
  return records.reading(lambda: trainer.evaluate(
      records.dataset(FLAGS.eval_batch_size, False), metrics_fn, max_eval_steps))


def train_from_flags(trainer, dataset, num_train_steps, checkpoints):
  """Trains to num_train_steps; returns None, or the exit status after a stop signal."""
  result = trainer.train(dataset, num_train_steps, checkpoints, FLAGS.save_checkpoints_steps)
  if result.signal is None:
    return None
  logging.warning("Stopped by signal %d at step %d; rerun the same command to resume",
                  result.signal, result.step)
  return 128 + result.signal
