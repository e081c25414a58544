"""Masked LM and next sentence pretraining: BERT with the original's two heads and losses.

`PretrainingModel` is the original run_pretraining.py `model_fn`: BertModel,
`cls/predictions` (MLM) and `cls/seq_relationship` (NSP), total loss
  sum(w * mlm_nll) / (sum(w) + 1e-5) + mean(nsp_nll)
over the global batch, and the original's eval metrics. With
`next_sentence=False` (the RoBERTa recipe) it is masked LM only: no
`cls/seq_relationship` variables, no NSP loss or metrics, and batches need no
`next_sentence_labels`.

Batches are the dicts of `pretraining_input.pretraining_dataset` on one
replica: int32 [B, S] input_ids, input_mask, segment_ids; int32 [B, P]
masked_lm_positions, masked_lm_ids; float32 [B, P] masked_lm_weights; int32
[B, 1] next_sentence_labels.
"""

import tensorflow as tf

from modeling.model.heads import MaskedLMHead, NextSentenceHead
from modeling.model.model import BertModel, variables_except_pooler

# Heads that a pretrained (encoder-only) checkpoint may lack.
FRESH_HEADS = (MaskedLMHead.VARIABLES, NextSentenceHead.VARIABLES)


class PretrainingModel(tf.Module):
  """BertModel with the `cls/predictions` and `cls/seq_relationship` heads."""

  def __init__(self, config, use_one_hot_embeddings=False, compute_dtype=tf.float32,
               next_sentence=True, remove_padding=False):
    """Args:
      config: a BertConfig.
      use_one_hot_embeddings: as BertModel (the original's TPU setting).
      compute_dtype: as BertModel: tf.float32, or tf.bfloat16 / tf.float16 for
        mixed precision (variables and losses stay float32).
      next_sentence: with the next-sentence head and loss (False: masked LM only).
      remove_padding: as BertModel (the heads read real tokens only).
    """
    super().__init__()
    self.bert = BertModel(config, use_one_hot_embeddings, compute_dtype, remove_padding)
    self.masked_lm = MaskedLMHead(config, self.bert.embedding_table)
    self.next_sentence = NextSentenceHead(config) if next_sentence else None

  @property
  def trained_variables(self):
    """What training updates: every trainable variable, but the pooler's without the
    next-sentence head, which alone reads it (`model.variables_except_pooler`)."""
    if self.next_sentence is None:
      return variables_except_pooler(self)
    return list(self.trainable_variables)

  def _outputs(self, batch, training):
    """Per-example losses and log-probabilities of the heads (None for NSP without it)."""
    outputs = self.bert(batch["input_ids"], batch["input_mask"], batch["segment_ids"],
                        training=training)
    _, mlm_loss, mlm_log_probs = self.masked_lm(
        outputs["sequence_output"], batch["masked_lm_positions"], batch["masked_lm_ids"],
        batch["masked_lm_weights"])  # [B*P], [B*P, V]
    nsp_loss = nsp_log_probs = None
    if self.next_sentence is not None:
      _, nsp_loss, nsp_log_probs = self.next_sentence(
          outputs["pooled_output"], batch["next_sentence_labels"])  # [B], [B, 2]
    return mlm_loss, mlm_log_probs, nsp_loss, nsp_log_probs

  @staticmethod
  def loss_totals(batch):
    """What the loss divides by, summed over this batch: {name: float32 scalar}.

    The training loop sums these over the replicas and the micro-batches of an
    update, then passes them to `loss`.
    """
    return {"masked_lm_weight": tf.reduce_sum(batch["masked_lm_weights"]),
            "examples": tf.cast(tf.shape(batch["input_ids"])[0], tf.float32)}

  @staticmethod
  def _loss_share(batch, totals, mlm_loss, nsp_loss):
    """This batch's share of the original total loss of the whole update.

    With `totals` summed over the global batch, the shares of its parts sum to
    exactly the original's single-batch loss.
    """
    weights = tf.reshape(batch["masked_lm_weights"], [-1])  # [B*P]
    loss = tf.reduce_sum(weights * mlm_loss) / (totals["masked_lm_weight"] + 1e-5)
    if nsp_loss is not None:
      loss += tf.reduce_sum(nsp_loss) / totals["examples"]
    return loss

  def loss(self, batch, totals):
    """Training loss share (with dropout), float32 scalar.

    Args:
      batch: a (micro-)batch.
      totals: `loss_totals` summed over every batch of the update.
    """
    mlm_loss, _, nsp_loss, _ = self._outputs(batch, training=True)
    return self._loss_share(batch, totals, mlm_loss, nsp_loss)

  def eval_metrics(self, batch):
    """The original's eval metrics as {name: (numerator, denominator)} on one replica."""
    mlm_loss, mlm_log_probs, nsp_loss, nsp_log_probs = self._outputs(batch, training=False)
    weights = tf.reshape(batch["masked_lm_weights"], [-1])  # [B*P]
    ids = tf.reshape(batch["masked_lm_ids"], [-1])  # [B*P]
    mlm_correct = tf.cast(tf.equal(tf.argmax(mlm_log_probs, -1, output_type=tf.int32), ids),
                          tf.float32)
    total_weight = tf.reduce_sum(weights)
    context = tf.distribute.get_replica_context()
    totals = context.all_reduce(tf.distribute.ReduceOp.SUM, self.loss_totals(batch))
    metrics = {
        "masked_lm_accuracy": (tf.reduce_sum(weights * mlm_correct), total_weight),
        "masked_lm_loss": (tf.reduce_sum(weights * mlm_loss), total_weight),
        # The mean over steps of each global batch's total loss.
        "loss": (self._loss_share(batch, totals, mlm_loss, nsp_loss),
                 tf.constant(1.0 / context.num_replicas_in_sync)),
    }
    if nsp_loss is not None:
      labels = tf.reshape(batch["next_sentence_labels"], [-1])  # [B]
      nsp_correct = tf.cast(tf.equal(tf.argmax(nsp_log_probs, -1, output_type=tf.int32),
                                     labels), tf.float32)
      batch_size = tf.cast(tf.shape(labels)[0], tf.float32)
      metrics["next_sentence_accuracy"] = (tf.reduce_sum(nsp_correct), batch_size)
      metrics["next_sentence_loss"] = (tf.reduce_sum(nsp_loss), batch_size)
    return metrics
