"""Tiny configs and inputs shared by tests."""

import numpy as np

from modeling import BertConfig

TINY_CONFIG = {
    "vocab_size": 99,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
}


def tiny_config(**changes):
  """A BertConfig small enough for unit tests, with `changes` applied."""
  return BertConfig.from_dict({**TINY_CONFIG, **changes})


def tiny_inputs(batch_size=3, seq_length=16, vocab_size=99, num_predictions=5, seed=0):
  """Inputs with padding and two segments, as np int32/float32 arrays.

  Row 0 is full length; the others are padded. Segment B starts in the middle of
  the real tokens.
  """
  rng = np.random.RandomState(seed)
  lengths = [seq_length] + [int(rng.randint(3, seq_length)) for _ in range(batch_size - 1)]
  input_ids = np.zeros([batch_size, seq_length], np.int32)
  input_mask = np.zeros([batch_size, seq_length], np.int32)
  segment_ids = np.zeros([batch_size, seq_length], np.int32)
  positions = np.zeros([batch_size, num_predictions], np.int32)
  label_ids = np.zeros([batch_size, num_predictions], np.int32)
  label_weights = np.zeros([batch_size, num_predictions], np.float32)
  for row, length in enumerate(lengths):
    input_ids[row, :length] = rng.randint(1, vocab_size, size=length)
    input_mask[row, :length] = 1
    segment_ids[row, length // 2:length] = 1
    count = min(num_predictions, length - 1)
    positions[row, :count] = np.sort(rng.choice(np.arange(1, length), count, replace=False))
    label_ids[row, :count] = rng.randint(1, vocab_size, size=count)
    label_weights[row, :count] = 1.0
  return {
      "input_ids": input_ids,
      "input_mask": input_mask,
      "segment_ids": segment_ids,
      "masked_lm_positions": positions,
      "masked_lm_ids": label_ids,
      "masked_lm_weights": label_weights,
      "next_sentence_labels": rng.randint(0, 2, size=[batch_size, 1]).astype(np.int32),
  }


_HOST_ARGS = ("log_steps", "iterations_per_loop", "summary_dir", "is_chief")


def make_trainer(strategy, loss_fn, optimizer, global_batch_size, **args):
  """A `loop.Trainer` of a `steps.TrainStep`, each given the keyword arguments it takes."""
  from modeling.training import loop, steps  # pylint: disable=import-outside-toplevel
  host = {name: args.pop(name) for name in _HOST_ARGS if name in args}
  return loop.Trainer(steps.TrainStep(strategy, loss_fn, optimizer, global_batch_size, **args),
                      **host)
