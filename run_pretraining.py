"""Masked LM and next sentence pretraining of BERT, as the original run_pretraining.py.

Same flags and defaults as the original (those it shares with run_classifier.py
are in shared_flags.py), plus --seed, --keep_checkpoint_max, --log_steps and
--optimizer. Runs on one device, several GPUs
(MirroredStrategy), several workers (TF_CONFIG) or a TPU (--use_tpu); an
existing checkpoint in --output_dir resumes the run.

  python run_pretraining.py --input_file=tf_examples.tfrecord \
    --output_dir=pretraining_output --do_train --do_eval \
    --bert_config_file=bert_config.json --init_checkpoint=bert_model.ckpt \
    --train_batch_size=32 --max_seq_length=128 --max_predictions_per_seq=20 \
    --num_train_steps=20 --num_warmup_steps=10 --learning_rate=2e-5
"""

import os

import tensorflow as tf
from absl import app, flags, logging

import shared_flags
from modeling import distribution, optimization, pretraining_input, training
from modeling.config import BertConfig
from modeling.heads import MaskedLMHead, NextSentenceHead
from modeling.model import BertModel

FLAGS = flags.FLAGS

flags.DEFINE_string("input_file", None,
                    "Input TF example files (can be a glob or comma separated).")
flags.DEFINE_integer("max_predictions_per_seq", 20,
                     "Masked LM predictions per sequence; must match data generation.")
flags.DEFINE_integer("num_train_steps", 100000, "Number of training steps.")
flags.DEFINE_integer("num_warmup_steps", 10000, "Number of warmup steps.")
flags.DEFINE_integer("max_eval_steps", 100, "Maximum number of eval steps.")

# Heads that a pretrained (encoder-only) --init_checkpoint may lack.
FRESH_HEADS = (r"^cls/",)


class PretrainingModel(tf.Module):
  """BertModel with the `cls/predictions` and `cls/seq_relationship` heads.

  Batches are the dicts of `pretraining_input.pretraining_dataset` on one
  replica: int32 [B, S] input_ids, input_mask, segment_ids; int32 [B, P]
  masked_lm_positions, masked_lm_ids; float32 [B, P] masked_lm_weights; int32
  [B, 1] next_sentence_labels.
  """

  def __init__(self, config, use_one_hot_embeddings=False):
    super().__init__()
    self.bert = BertModel(config, use_one_hot_embeddings)
    self.masked_lm = MaskedLMHead(config, self.bert.embedding_table)
    self.next_sentence = NextSentenceHead(config)

  def _outputs(self, batch, training):
    """Per-example losses and log-probabilities of both heads."""
    outputs = self.bert(batch["input_ids"], batch["input_mask"], batch["segment_ids"],
                        training=training)
    _, mlm_loss, mlm_log_probs = self.masked_lm(
        outputs["sequence_output"], batch["masked_lm_positions"], batch["masked_lm_ids"],
        batch["masked_lm_weights"])  # [B*P], [B*P, V]
    _, nsp_loss, nsp_log_probs = self.next_sentence(
        outputs["pooled_output"], batch["next_sentence_labels"])  # [B], [B, 2]
    return mlm_loss, mlm_log_probs, nsp_loss, nsp_log_probs

  def _loss_share(self, batch, mlm_loss, nsp_loss):
    """This replica's share of the original total loss of the global batch.

    The original's loss is sum(w * mlm_nll) / (sum(w) + 1e-5) + mean(nsp_nll)
    over the whole batch; here both denominators are global (an all-reduce of
    the weights, and B times the number of replicas), so the shares sum to
    exactly the single-device loss.
    """
    context = tf.distribute.get_replica_context()
    weights = tf.reshape(batch["masked_lm_weights"], [-1])  # [B*P]
    total_weight = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(weights))
    global_batch = tf.cast(tf.shape(nsp_loss)[0] * context.num_replicas_in_sync, tf.float32)
    return (tf.reduce_sum(weights * mlm_loss) / (total_weight + 1e-5) +
            tf.reduce_sum(nsp_loss) / global_batch)

  def loss(self, batch):
    """Training loss share (with dropout), float32 scalar."""
    mlm_loss, _, nsp_loss, _ = self._outputs(batch, training=True)
    return self._loss_share(batch, mlm_loss, nsp_loss)

  def eval_metrics(self, batch):
    """The original's eval metrics as {name: (numerator, denominator)} on one replica."""
    mlm_loss, mlm_log_probs, nsp_loss, nsp_log_probs = self._outputs(batch, training=False)
    weights = tf.reshape(batch["masked_lm_weights"], [-1])  # [B*P]
    ids = tf.reshape(batch["masked_lm_ids"], [-1])  # [B*P]
    labels = tf.reshape(batch["next_sentence_labels"], [-1])  # [B]
    mlm_correct = tf.cast(tf.equal(tf.argmax(mlm_log_probs, -1, output_type=tf.int32), ids),
                          tf.float32)
    nsp_correct = tf.cast(tf.equal(tf.argmax(nsp_log_probs, -1, output_type=tf.int32), labels),
                          tf.float32)
    batch_size = tf.cast(tf.shape(labels)[0], tf.float32)
    total_weight = tf.reduce_sum(weights)
    replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    return {
        "masked_lm_accuracy": (tf.reduce_sum(weights * mlm_correct), total_weight),
        "masked_lm_loss": (tf.reduce_sum(weights * mlm_loss), total_weight),
        "next_sentence_accuracy": (tf.reduce_sum(nsp_correct), batch_size),
        "next_sentence_loss": (tf.reduce_sum(nsp_loss), batch_size),
        # The mean over steps of each global batch's total loss.
        "loss": (self._loss_share(batch, mlm_loss, nsp_loss), tf.constant(1.0 / replicas)),
    }


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  if not FLAGS.do_train and not FLAGS.do_eval:
    raise ValueError("At least one of `do_train` or `do_eval` must be True.")
  config = BertConfig.from_json_file(FLAGS.bert_config_file)
  if FLAGS.max_seq_length > config.max_position_embeddings:
    raise ValueError(f"--max_seq_length={FLAGS.max_seq_length} exceeds max_position_embeddings="
                     f"{config.max_position_embeddings} of {FLAGS.bert_config_file}")
  # First TensorFlow call: a multi-worker strategy must be set up before any op runs.
  strategy = shared_flags.strategy_from_flags()
  input_files = pretraining_input.expand_input_files(FLAGS.input_file)
  logging.info("*** Input Files ***\n  %s", "\n  ".join(input_files))
  pretraining_input.check_files(input_files, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq)

  tf.random.set_seed(FLAGS.seed)
  is_chief = distribution.is_chief(strategy)
  with strategy.scope():
    model = PretrainingModel(config, use_one_hot_embeddings=FLAGS.use_tpu)
    optimizer = optimization.create_optimizer(
        FLAGS.optimizer, model.trainable_variables, FLAGS.learning_rate, FLAGS.num_train_steps,
        FLAGS.num_warmup_steps)
  checkpoints = training.CheckpointManager(FLAGS.output_dir, [model, optimizer],
                                           FLAGS.keep_checkpoint_max, is_chief)
  start = training.restore_or_initialize(checkpoints, FLAGS.init_checkpoint, model,
                                         FRESH_HEADS)
  if not FLAGS.do_train and start == "fresh":
    raise ValueError(f"--do_eval without --do_train needs a checkpoint in --output_dir="
                     f"{FLAGS.output_dir} or an --init_checkpoint")
  trainer = training.Trainer(strategy, model.loss, optimizer, FLAGS.train_batch_size,
                             FLAGS.log_steps, FLAGS.iterations_per_loop,
                             summary_dir=FLAGS.output_dir, is_chief=is_chief)

  def dataset(batch_size, is_training, skip_records=0):
    return pretraining_input.pretraining_dataset(
        input_files, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq, batch_size,
        is_training, seed=FLAGS.seed, skip_records=skip_records)

  if FLAGS.do_train:
    try:
      result = trainer.train(
          dataset(FLAGS.train_batch_size, True, trainer.step * FLAGS.train_batch_size),
          FLAGS.num_train_steps, checkpoints, FLAGS.save_checkpoints_steps)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError):
      # Name the file at fault when the input is (raises ValueError), else re-raise.
      pretraining_input.check_files(input_files, FLAGS.max_seq_length,
                                    FLAGS.max_predictions_per_seq, scan_all=True)
      raise
    if result.signal is not None:
      logging.warning("Stopped by signal %d at step %d; rerun the same command to resume",
                      result.signal, result.step)
      return 128 + result.signal

  if FLAGS.do_eval:
    if FLAGS.eval_batch_size % strategy.num_replicas_in_sync:
      raise ValueError(f"--eval_batch_size={FLAGS.eval_batch_size} does not split over "
                       f"{strategy.num_replicas_in_sync} replicas")
    results = trainer.evaluate(dataset(FLAGS.eval_batch_size, False), model.eval_metrics,
                               FLAGS.max_eval_steps)
    logging.info("***** Eval results *****\n%s",
                 "\n".join(f"  {k} = {results[k]}" for k in sorted(results)))
    if is_chief:
      training.write_eval_results(os.path.join(FLAGS.output_dir, "eval_results.txt"), results)
  return 0


if __name__ == "__main__":
  flags.mark_flag_as_required("input_file")
  flags.mark_flag_as_required("bert_config_file")
  flags.mark_flag_as_required("output_dir")
  app.run(main)
