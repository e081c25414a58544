"""Flags of the pretraining input, shared by run_pretraining.py and run_distillation.py.

The first group is the original run_pretraining.py's, with its names and defaults;
the second is ours (dynamic masking, the RoBERTa recipe). Each script defines its
own --vocab_file, whose meaning differs between them.
"""

from absl import flags

flags.DEFINE_string("input_file", None,
                    "Input TF example files (can be a glob or comma separated).")
flags.DEFINE_integer("max_predictions_per_seq", 20,
                     "Masked LM predictions per sequence; must match data generation.")
flags.DEFINE_integer("num_train_steps", 100000, "Number of training steps.")
flags.DEFINE_integer("num_warmup_steps", 10000, "Number of warmup steps.")
flags.DEFINE_integer("max_eval_steps", 100, "Maximum number of eval steps.")
# Ours: the RoBERTa recipe, opt-in.
flags.DEFINE_bool("dynamic_masking", False,
                  "Mask the records anew each time they are read (records made with "
                  "create_pretraining_data.py --masking=dynamic; needs --vocab_file).")
flags.DEFINE_float("masked_lm_prob", 0.15, "With --dynamic_masking: the fraction masked.")
flags.DEFINE_bool("do_whole_word_mask", False,
                  "With --dynamic_masking: mask a word's pieces together.")
