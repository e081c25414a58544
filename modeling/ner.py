"""Token classification (named-entity recognition) on BERT, the BERT paper's recipe.

`NerModel` is BertModel plus a dense layer on every token of `sequence_output`,
with dropout 0.1 when training as run_classifier's head, and the same variables:
the top-level `output_weights` [C, H] and `output_bias` [C] (C labels). The loss
is the cross-entropy of the labelled pieces (a word's first piece; `ner_data`),
averaged over every labelled piece of the update.

Batches are dicts of int32 [B, S] `input_ids`, `input_mask`, `segment_ids`,
`label_ids`, and float32 [B, S] `label_weights` (1 where a label counts).
"""

import tensorflow as tf

from modeling.heads import ClassifierHead
from modeling.layers import dropout, get_shape_list
from modeling.model import BertModel

# The head a pretrained --init_checkpoint lacks: the classifier's variable names.
FRESH_HEAD = (r"^output_(weights|bias)$",)


class NerModel(tf.Module):
  """BertModel plus a per-token classifier (`output_weights`, `output_bias`)."""

  def __init__(self, config, num_labels, use_one_hot_embeddings=False,
               compute_dtype=tf.float32):
    """Args:
      config: a BertConfig.
      num_labels: number of tags C.
      use_one_hot_embeddings: as BertModel.
      compute_dtype: as BertModel (logits and losses stay float32).
    """
    super().__init__()
    self.num_labels = num_labels
    self.bert = BertModel(config, use_one_hot_embeddings, compute_dtype)
    self.head = ClassifierHead(config, num_labels)

  @property
  def trained_variables(self):
    """Every trainable variable but the pooler's, which the per-token head does not
    read (no gradient, no Adam slots), as SquadModel."""
    return [v for v in self.trainable_variables if not v.name.startswith("bert/pooler/")]

  def log_probs(self, batch, training=False):
    """Log-probabilities of every tag at every position, float32 [B, S, C]."""
    sequence_output = self.bert(batch["input_ids"], batch["input_mask"], batch["segment_ids"],
                                training=training)["sequence_output"]  # [B, S, H]
    batch_size, seq_length, width = get_shape_list(sequence_output)
    hidden = tf.reshape(sequence_output, [-1, width])  # [B*S, H]
    logits = self.head.logits(dropout(hidden, self.head.dropout_rate, training))  # [B*S, C]
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    return tf.reshape(log_probs, [batch_size, seq_length, self.num_labels])  # [B, S, C]

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
    log_probs = self.log_probs(batch, training=True)  # [B, S, C]
    label_log_probs = tf.gather(log_probs, batch["label_ids"], batch_dims=2)  # [B, S]
    weights = tf.cast(batch["label_weights"], tf.float32)  # [B, S]
    return -tf.reduce_sum(label_log_probs * weights) / totals["pieces"]

  def predict_step(self, batch):
    """Per position, without dropout: the most likely tag `predicted` int32 [B, S]
    and the log-probability `label_log_prob` float32 [B, S] of `label_ids`."""
    log_probs = self.log_probs(batch, training=False)  # [B, S, C]
    return {"predicted": tf.argmax(log_probs, axis=-1, output_type=tf.int32),
            "label_log_prob": tf.gather(log_probs, batch["label_ids"], batch_dims=2)}
