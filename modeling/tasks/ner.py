"""Token classification (named-entity recognition) on BERT, the BERT paper's recipe.

`NerModel` is BertModel plus a dense layer on every token of `sequence_output`,
with dropout 0.1 when training as run_classifier's head, and the same variables:
the top-level `output_weights` [C, H] and `output_bias` [C] (C labels). The loss
is the cross-entropy of the labelled pieces (a word's first piece; `ner_data`),
averaged over every labelled piece of the update.

Batches are dicts of int32 [B, L] `input_ids`, `input_mask`, `segment_ids`, int32
[B, S] `label_ids` and float32 [B, S] `label_weights` (1 where a label counts), with
L <= S: length buckets (`modeling.data.length_buckets`) cut the inputs to the batch's
bucket, and the labels past L are padding (weight 0).
"""

import tensorflow as tf

from modeling.model.heads import ClassifierHead
from modeling.model.layers import dropout, get_shape_list
from modeling.model.model import BertModel, variables_except_pooler

# The head a pretrained --init_checkpoint lacks: the classifier's variable names.
FRESH_HEAD = (ClassifierHead.VARIABLES,)


class NerModel(tf.Module):
  """BertModel plus a per-token classifier (`output_weights`, `output_bias`)."""

  def __init__(self, config, num_labels, use_one_hot_embeddings=False,
               compute_dtype=tf.float32, remove_padding=False):
    """Args:
      config: a BertConfig.
      num_labels: number of tags C.
      use_one_hot_embeddings: as BertModel.
      compute_dtype: as BertModel (logits and losses stay float32).
      remove_padding: as BertModel (the loss weighs real pieces only).
    """
    super().__init__()
    self.num_labels = num_labels
    self.bert = BertModel(config, use_one_hot_embeddings, compute_dtype, remove_padding)
    self.head = ClassifierHead(config, num_labels)

  @property
  def trained_variables(self):
    """Every trainable variable but the pooler's, which the per-token head does not
    read (`model.variables_except_pooler`)."""
    return variables_except_pooler(self)

  def log_probs(self, batch, training=False):
    """Log-probabilities of every tag at every position, float32 [B, L, C]."""
    sequence_output = self.bert(batch["input_ids"], batch["input_mask"], batch["segment_ids"],
                                training=training)["sequence_output"]  # [B, S, H]
    batch_size, seq_length, width = get_shape_list(sequence_output)
    hidden = tf.reshape(sequence_output, [-1, width])  # [B*S, H]
    logits = self.head.logits(dropout(hidden, self.head.dropout_rate, training))  # [B*S, C]
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    return tf.reshape(log_probs, [batch_size, seq_length, self.num_labels])  # [B, L, C]

  @staticmethod
  def _label_log_probs(log_probs, batch):
    """log_probs [B, L, C] at `label_ids` (cut to L): float32 [B, L]."""
    labels = batch["label_ids"][:, :tf.shape(log_probs)[1]]  # [B, L]
    return tf.gather(log_probs, labels, batch_dims=2)
  @staticmethod
  def loss_totals(batch):
    """What the loss divides by: {"pieces": the labelled pieces of the batch}."""
    return {"pieces": tf.reduce_sum(tf.cast(batch["label_weights"], tf.float32))}

  def loss(self, batch, totals):
    """This batch's share of the update's mean cross-entropy (with dropout), scalar.

    Args:
      batch: a (micro-)batch.
      totals: `loss_totals` summed over every batch of the update.
    """
    log_probs = self.log_probs(batch, training=True)  # [B, L, C]
    weights = tf.cast(batch["label_weights"][:, :tf.shape(log_probs)[1]], tf.float32)  # [B, L]
    return -tf.reduce_sum(self._label_log_probs(log_probs, batch) * weights) / totals["pieces"]

  def predict_step(self, batch):
    """Per position, without dropout: the most likely tag `predicted` int32 [B, L]
    and the log-probability `label_log_prob` float32 [B, L] of `label_ids`."""
    log_probs = self.log_probs(batch, training=False)  # [B, L, C]
    return {"predicted": tf.argmax(log_probs, axis=-1, output_type=tf.int32),
            "label_log_prob": self._label_log_probs(log_probs, batch)}
