"""Flags of a pretraining run on masked-LM records, shared by run_pretraining.py and
run_distillation.py.

The first group is the original run_pretraining.py's, with its names and defaults;
the second is ours (dynamic masking, the RoBERTa recipe). The records' recipe is in
pretraining_data_flags.py, the records' files in io_flags.py.
"""

from absl import flags

flags.DEFINE_integer("num_train_steps", 100000, "Number of training steps.")
flags.DEFINE_integer("num_warmup_steps", 10000, "Number of warmup steps.")
flags.DEFINE_integer("max_eval_steps", 100, "Maximum number of eval steps.")
# Ours: the RoBERTa recipe, opt-in.
flags.DEFINE_bool("dynamic_masking", False,
                  "Mask the records anew each time they are read (records made with "
                  "create_pretraining_data.py --masking=dynamic; needs --vocab_file).")
