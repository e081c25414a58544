"""Flags shared by run_pretraining.py, run_classifier.py and run_squad.py, defined once.

Names and defaults are the original scripts'; the last group is ours. Library
code never reads flags: the scripts pass values on.
"""

import os
from typing import NamedTuple

import tensorflow as tf
from absl import flags, logging

from modeling import checkpoint
from modeling.data import files, length_buckets, tokenization
from modeling.training import distribution, loop, optimization, run_checkpoints, steps

flags.DEFINE_string("bert_config_file", None,
                    "The config json file corresponding to the pre-trained BERT model.")
flags.DEFINE_string("output_dir", None,
                    "Where checkpoints, summaries and results are written.")
flags.DEFINE_string("init_checkpoint", None,
                    "Initial checkpoint (usually from a pre-trained BERT model).")
flags.DEFINE_bool("preserve_unused_tokens", False,
                  "Keep a word that is an [unusedN] entry of the vocabulary whole, as "
                  "bert-tensorflow 1.0.4's flag of the same name.")
flags.DEFINE_string("spm_model_file", None,
                    "ALBERT's SentencePiece model (as ALBERT's scripts name it): tokenize with "
                    "it, with ALBERT's text preprocessing, instead of --vocab_file.")
flags.DEFINE_integer("max_seq_length", 128,
                     "The maximum total input sequence length after WordPiece tokenization.")
flags.DEFINE_bool("do_train", False, "Whether to run training.")
flags.DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.")
flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.")
flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for eval.")
flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate for Adam.")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "How often to save the model checkpoint.")
flags.DEFINE_integer("iterations_per_loop", 1000,
                     "Most steps run on the device per host call.")
flags.DEFINE_bool("use_tpu", False, "Whether to use TPU or GPU/CPU.")
flags.DEFINE_string("tpu_name", None, "The Cloud TPU to use (a name or grpc:// URL).")
flags.DEFINE_string("tpu_zone", None, "[Optional] GCE zone of the Cloud TPU.")
flags.DEFINE_string("gcp_project", None, "[Optional] Project of the Cloud TPU.")
flags.DEFINE_string("master", None, "[Optional] TensorFlow master URL.")
flags.DEFINE_integer("num_tpu_cores", 8, "Only used if `use_tpu` is True: TPU cores to use.")
# Ours.
COMPUTE_DTYPES = {"none": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}
flags.DEFINE_integer("seed", 12345, "Seed of the initialisation, dropout and data order.")
flags.DEFINE_integer("keep_checkpoint_max", 5, "Most recent checkpoints kept (0: all).")
flags.DEFINE_integer("log_steps", 100, "Log and write summaries every this many steps.")
flags.DEFINE_enum("optimizer", "adamw", list(optimization.OPTIMIZERS),
                  "adamw: the original AdamWeightDecay; lamb: LAMB (You et al. 2019).")
flags.DEFINE_enum("mixed_precision", "none", list(COMPUTE_DTYPES),
                  "Compute dtype of the matmuls (variables, optimizer and checkpoints stay "
                  "float32): bf16 for TPUs and CPUs with bf16 units, fp16 (with dynamic "
                  "loss scaling) for GPUs.")
flags.DEFINE_bool("use_xla", False, "jit_compile (XLA) the forward and backward pass of the "
                  "train step (off by default: slower on the CPUs measured; see README).")
flags.DEFINE_integer("num_accumulation_steps", 1,
                     "Split each batch of --train_batch_size examples into this many "
                     "micro-batches whose gradients are summed before one update (same "
                     "update, less memory).")

flags.DEFINE_string("length_buckets", "auto",
                    "Pad each fine-tuning, eval and predict batch (and each serving request) "
                    "to the smallest of these lengths that holds it: auto (multiples of 32 "
                    "up to --max_seq_length), a comma list, or none (always "
                    "--max_seq_length, as the original).")

FLAGS = flags.FLAGS


def compute_dtype_from_flags():
  """The model's compute dtype of --mixed_precision (checked against --use_tpu)."""
  if FLAGS.mixed_precision == "fp16" and FLAGS.use_tpu:
    raise ValueError("--mixed_precision=fp16 is for GPUs; TPUs compute in bfloat16: use "
                     "--mixed_precision=bf16 with --use_tpu")
  return COMPUTE_DTYPES[FLAGS.mixed_precision]


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
      dynamic_loss_scale=FLAGS.mixed_precision == "fp16", seed=FLAGS.seed)
  return loop.Trainer(train_step, FLAGS.log_steps, FLAGS.iterations_per_loop,
                      summary_dir=FLAGS.output_dir, is_chief=is_chief)


def strategy_from_flags():
  """The tf.distribute strategy the TPU flags and the machine call for."""
  return distribution.get_strategy(FLAGS.use_tpu, FLAGS.tpu_name, FLAGS.tpu_zone,
                                   FLAGS.gcp_project, FLAGS.master, FLAGS.num_tpu_cores)


def fine_tuning_schedule(num_examples, num_train_epochs, warmup_proportion):
  """(num_train_steps, num_warmup_steps) as the original fine-tuning scripts count them.

  Raises:
    ValueError: the examples make no step of --train_batch_size.
  """
  num_train_steps = int(num_examples / FLAGS.train_batch_size * num_train_epochs)
  if num_train_steps < 1:
    raise ValueError(f"{num_examples} training examples make no step of "
                     f"--train_batch_size={FLAGS.train_batch_size}")
  return num_train_steps, int(num_train_steps * warmup_proportion)


def training_from_flags(strategy, make_model, num_train_steps, num_warmup_steps, is_chief,
                        fresh_heads):
  """A task's model, optimizer, trainer and checkpoints, resumed or initialised.

  Args:
    strategy: the tf.distribute strategy.
    make_model: () -> the task's tf.Module (with `loss` and `loss_totals`, and
      optionally `trained_variables`, else all its trainable variables are
      trained), called under the strategy's scope.
    num_train_steps, num_warmup_steps: the learning-rate schedule (0 when not
      training).
    is_chief: whether this worker writes.
    fresh_heads: regexes of the variables --init_checkpoint may lack when
      training (--do_train); without training, none may be absent.

  Returns:
    (model, optimizer, trainer, checkpoints, start), `start` as
    `run_checkpoints.restore_or_initialize` returns it.
  """
  with strategy.scope():
    model = make_model()
    optimizer = optimization.create_optimizer(
        FLAGS.optimizer, getattr(model, "trained_variables", model.trainable_variables),
        FLAGS.learning_rate, max(num_train_steps, 1), num_warmup_steps)
  trainer = trainer_from_flags(strategy, model, optimizer, is_chief)
  checkpoints = run_checkpoints.CheckpointManager(
      FLAGS.output_dir, [model, optimizer, trainer.state], FLAGS.keep_checkpoint_max, is_chief)
  trained = {id(v) for v in optimizer.trained_variables}
  unused = [checkpoint.checkpoint_name(v) for v in model.trainable_variables
            if id(v) not in trained]  # e.g. the pooler under a span head
  start = run_checkpoints.restore_or_initialize(checkpoints, FLAGS.init_checkpoint, model,
                                                fresh_heads, training=FLAGS.do_train,
                                                unused=unused)
  return model, optimizer, trainer, checkpoints, start


class FineTuning(NamedTuple):
  """What `fine_tuning_from_flags` sets up."""
  strategy: tf.distribute.Strategy
  is_chief: bool
  model: tf.Module
  optimizer: optimization.AdamWeightDecay
  trainer: loop.Trainer
  checkpoints: run_checkpoints.CheckpointManager
  num_train_steps: int


def fine_tuning_from_flags(num_train_examples, make_model, fresh_heads, purpose):
  """The set-up of run_classifier, run_squad and run_ner: the seed, the strategy, the
  schedule of --num_train_epochs, and the task's model, optimizer, trainer and
  checkpoints, resumed or initialised (`training_from_flags`).

  Args:
    num_train_examples: the examples of an epoch (with --do_train).
    make_model: compute_dtype -> the task's tf.Module, called under the strategy's scope.
    fresh_heads: as `training_from_flags`.
    purpose: what a run without --do_train needs a checkpoint for, for its error
      ("evaluate, predict or export").

  Returns:
    A FineTuning.

  Raises:
    ValueError: no --do_train, and neither a checkpoint in --output_dir nor an
      --init_checkpoint to start from.
  """
  compute_dtype = compute_dtype_from_flags()
  tf.random.set_seed(FLAGS.seed)
  strategy = strategy_from_flags()
  is_chief = distribution.is_chief(strategy)
  num_train_steps = num_warmup_steps = 0
  if FLAGS.do_train:
    num_train_steps, num_warmup_steps = fine_tuning_schedule(
        num_train_examples, FLAGS.num_train_epochs, FLAGS.warmup_proportion)
  model, optimizer, trainer, checkpoints, start = training_from_flags(
      strategy, lambda: make_model(compute_dtype), num_train_steps, num_warmup_steps,
      is_chief, fresh_heads)
  if start == "fresh" and not FLAGS.do_train:
    raise ValueError(f"nothing to {purpose}: no checkpoint in --output_dir={FLAGS.output_dir} "
                     "and no --init_checkpoint")
  return FineTuning(strategy, is_chief, model, optimizer, trainer, checkpoints, num_train_steps)


def tokenizer_from_flags(config):
  """The tokenizer of --vocab_file or --spm_model_file, checked against the config.

  Returns:
    (tokenizer, [(flag, path)] of the file read, for `check_outputs`).
  """
  tokenizer = tokenization.create_tokenizer(FLAGS.vocab_file, FLAGS.do_lower_case,
                                            FLAGS.preserve_unused_tokens, FLAGS.spm_model_file)
  flag, path = (("--spm_model_file", FLAGS.spm_model_file) if FLAGS.spm_model_file
                else ("--vocab_file", FLAGS.vocab_file))
  config.check_vocab_size(len(tokenizer.vocab), path, flag)
  return tokenizer, [(flag, path)]


def check_outputs(output_names, inputs):
  """Refuses, before any work, a file the run writes in --output_dir that is one of
  its inputs (same file after links), e.g. `--predict_file=out/predictions.json`.

  Args:
    output_names: file names the run writes in --output_dir.
    inputs: [(flag, path)] the files the run reads besides --bert_config_file;
      None paths (flags not given) are skipped.
  """
  files.check_outputs(
      [("--output_dir", os.path.join(FLAGS.output_dir, name)) for name in output_names],
      [(flag, path) for flag, path in inputs if path]
      + [("--bert_config_file", FLAGS.bert_config_file)])


def buckets_from_flags():
  """The --length_buckets lengths (`length_buckets.parse_buckets`), checked at start."""
  return length_buckets.parse_buckets(FLAGS.length_buckets, FLAGS.max_seq_length)


def fine_tune_from_flags(trainer, arrays, buckets, num_train_steps, checkpoints):
  """Trains to num_train_steps on `arrays` ({name: np.ndarray [N, ...]}) in batches of
  --train_batch_size drawn by length bucket (`length_buckets.training_batches`);
  returns as `train_from_flags`."""
  dataset = length_buckets.training_batches(arrays, buckets, FLAGS.train_batch_size, FLAGS.seed,
                                            num_train_steps, trainer.batches_done)
  return train_from_flags(trainer, dataset, num_train_steps, checkpoints)


def pretrain_from_flags(trainer, records, checkpoints):
  """Trains to --num_train_steps on `records` (a `pretraining_input.PretrainingRecords`),
  from where a resumed run left them; returns as `train_from_flags`."""
  skip_records = trainer.batches_done * FLAGS.train_batch_size
  return records.reading(lambda: train_from_flags(
      trainer, records.dataset(FLAGS.train_batch_size, True, skip_records),
      FLAGS.num_train_steps, checkpoints))


def evaluate_records_from_flags(strategy, trainer, records, metrics_fn):
  """`trainer.evaluate` of `metrics_fn` over --max_eval_steps batches of `records`.

  Raises:
    ValueError: --eval_batch_size does not split over the replicas.
  """
  if FLAGS.eval_batch_size % strategy.num_replicas_in_sync:
    raise ValueError(f"--eval_batch_size={FLAGS.eval_batch_size} does not split over "
                     f"{strategy.num_replicas_in_sync} replicas")
  return records.reading(lambda: trainer.evaluate(
      records.dataset(FLAGS.eval_batch_size, False), metrics_fn, FLAGS.max_eval_steps))


def train_from_flags(trainer, dataset, num_train_steps, checkpoints):
  """Trains to num_train_steps; returns None, or the exit status after a stop signal."""
  result = trainer.train(dataset, num_train_steps, checkpoints, FLAGS.save_checkpoints_steps)
  if result.signal is None:
    return None
  logging.warning("Stopped by signal %d at step %d; rerun the same command to resume",
                  result.signal, result.step)
  return 128 + result.signal
