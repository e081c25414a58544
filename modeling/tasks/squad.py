"""Fine-tuning BERT for SQuAD: the model of the original `run_squad.create_model`.

`SquadModel` is BertModel plus `cls/squad/output_weights` [2, H] and
`cls/squad/output_bias` [2] applied to every token of the sequence output (no
extra dropout), giving start and end logits [B, S]. The loss is the mean over
the batch of (start cross-entropy + end cross-entropy) / 2, as the original.

Batches are dicts of int32 [B, S] `input_ids`, `input_mask`, `segment_ids`, and
for training int32 [B] `start_positions` and `end_positions` (0, the [CLS]
token, where the span holds no answer).
"""

import tensorflow as tf

from modeling.model.heads import SquadHead
from modeling.model.model import BertModel, variables_except_pooler
from modeling.training.steps import example_totals

# The head a pretrained --init_checkpoint lacks.
FRESH_HEAD = (SquadHead.VARIABLES,)


class SquadModel(tf.Module):
  """BertModel plus the original SQuAD span head."""

  def __init__(self, config, use_one_hot_embeddings=False, compute_dtype=tf.float32):
    """Args:
      config: a BertConfig.
      use_one_hot_embeddings: as BertModel.
      compute_dtype: as BertModel: tf.float32, or tf.bfloat16 / tf.float16 for
        mixed precision (variables, logits and losses stay float32).
    """
    super().__init__()
    self.bert = BertModel(config, use_one_hot_embeddings, compute_dtype)
    self.head = SquadHead(config)

  @property
  def trained_variables(self):
    """What fine-tuning updates: every trainable variable but the pooler's, which the
    span head does not read (`model.variables_except_pooler`)."""
    return variables_except_pooler(self)

  def logits(self, batch, training=False):
    """(start_logits, end_logits), float32 [B, S] each."""
    sequence_output = self.bert(batch["input_ids"], batch["input_mask"], batch["segment_ids"],
                                training=training)["sequence_output"]  # [B, S, H]
    return self.head(sequence_output)

  loss_totals = staticmethod(example_totals)

  def loss(self, batch, totals):
    """This batch's share of the update's mean loss (with dropout), float32 scalar.

    Args:
      batch: a (micro-)batch with start_positions and end_positions.
      totals: `loss_totals` summed over every batch of the update.
    """
    start_logits, end_logits = self.logits(batch, training=True)
    per_example_loss = self.head.per_example_loss(start_logits, end_logits,
                                                  batch["start_positions"],
                                                  batch["end_positions"])  # [B]
    return tf.reduce_sum(per_example_loss) / totals["examples"]

  def predict_step(self, batch):
    """Logits of one replica's batch, without dropout, for `array_predictor.predict`."""
    start_logits, end_logits = self.logits(batch, training=False)
    return {"start_logits": start_logits, "end_logits": end_logits}
