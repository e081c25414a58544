"""Flags of a fine-tuning run's schedule (epochs and warmup), and the set-up of
run_classifier.py, run_squad.py and run_ner.py they complete."""

from typing import NamedTuple

import tensorflow as tf
from absl import flags

import shared_flags
from modeling.training import distribution, loop, optimization, run_checkpoints

flags.DEFINE_float("num_train_epochs", 3.0, "Total number of training epochs to perform "
                   "(run_distillation.py: with --task_name).")
flags.DEFINE_float("warmup_proportion", 0.1, "Proportion of training to perform linear "
                   "learning rate warmup for (run_distillation.py: with --task_name).")

FLAGS = flags.FLAGS


def schedule_from_flags(num_train_examples):
  """(num_train_steps, num_warmup_steps) of --num_train_epochs and --warmup_proportion
  (`shared_flags.fine_tuning_schedule`)."""
  return shared_flags.fine_tuning_schedule(num_train_examples, FLAGS.num_train_epochs,
                                           FLAGS.warmup_proportion)


class FineTuning(NamedTuple):
  """What `set_up_fine_tuning` sets up."""
  is_chief: bool
  model: tf.Module
  optimizer: optimization.AdamWeightDecay
  trainer: loop.Trainer
  checkpoints: run_checkpoints.CheckpointManager
  num_train_steps: int


def set_up_fine_tuning(strategy, num_train_examples, make_model, fresh_heads, init_checkpoint,
                       purpose):
  """The set-up of run_classifier, run_squad and run_ner: the schedule of
  --num_train_epochs, and the task's model, optimizer, trainer and checkpoints,
  resumed or initialised (`shared_flags.training_from_flags`).

  Args:
    strategy: the tf.distribute strategy.
    num_train_examples: the examples of an epoch (with --do_train).
    make_model: () -> the task's tf.Module, called under the strategy's scope.
    fresh_heads, init_checkpoint: as `shared_flags.training_from_flags`.
    purpose: what a run without --do_train needs a checkpoint for, for its error
      ("evaluate, predict or export").

  Returns:
    A FineTuning.

  Raises:
    ValueError: no --do_train, and neither a checkpoint in --output_dir nor an
      --init_checkpoint to start from.
  """
  is_chief = distribution.is_chief(strategy)
  num_train_steps, num_warmup_steps = schedule_from_flags(num_train_examples)
  model, optimizer, trainer, checkpoints, start = shared_flags.training_from_flags(
      strategy, make_model, num_train_steps, num_warmup_steps, is_chief, fresh_heads,
      init_checkpoint)
  if start == "fresh" and not num_train_steps:  # Without --do_train.
    raise ValueError(f"nothing to {purpose}: no checkpoint in --output_dir="
                     f"{checkpoints.directory} and no --init_checkpoint")
  return FineTuning(is_chief, model, optimizer, trainer, checkpoints, num_train_steps)
