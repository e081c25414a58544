"""Flags of a pretraining run on masked-LM records, shared by run_pretraining.py and
run_distillation.py.

The first group is the original run_pretraining.py's, with its names and defaults;
the second is ours (dynamic masking, the RoBERTa recipe), and `records_from_flags`
opens the records they describe. The records' recipe is in pretraining_data_flags.py,
the records' files in io_flags.py.
"""

from absl import flags

import io_flags  # noqa: F401  (defines the flags)
import pretraining_data_flags  # noqa: F401  (defines the flags)
import shared_flags
import tokenizer_flags  # noqa: F401  (defines the flags)
from modeling.data import pretraining_input

flags.DEFINE_integer("num_train_steps", 100000, "Number of training steps.")
flags.DEFINE_integer("num_warmup_steps", 10000, "Number of warmup steps.")
flags.DEFINE_integer("max_eval_steps", 100, "Maximum number of eval steps.")
# Ours: the RoBERTa recipe, opt-in.
flags.DEFINE_bool("dynamic_masking", False,
                  "Mask the records anew each time they are read (records made with "
                  "create_pretraining_data.py --masking=dynamic; needs --vocab_file).")

FLAGS = flags.FLAGS

# The flags that only the masking of --dynamic_masking reads: static records hold their masks.
DYNAMIC_MASKING_FLAGS = ("masked_lm_prob", "do_whole_word_mask", "vocab_file")


def records_from_flags(config, next_sentence):
  """The checked `PretrainingRecords` of --input_file for a run of `config`.

  Raises:
    ValueError: a masking flag given for static records, whose masks were drawn
      by create_pretraining_data.py; or records that do not fit (see
      `PretrainingRecords`).
  """
  if not FLAGS.dynamic_masking:
    shared_flags.refuse_flags(DYNAMIC_MASKING_FLAGS,
                              "the records' masks were drawn by create_pretraining_data.py; "
                              "these apply with --dynamic_masking only (records made with "
                              "--masking=dynamic)")
  return pretraining_input.PretrainingRecords(
      FLAGS.input_file, config, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq, FLAGS.seed,
      next_sentence, FLAGS.dynamic_masking, FLAGS.vocab_file, FLAGS.masked_lm_prob,
      FLAGS.do_whole_word_mask)
