"""Flags of the masked-LM records' recipe: the masked positions, the masking and the
next-sentence labels, drawn by create_pretraining_data.py (and, with --dynamic_masking,
by the pretraining scripts as they read the records).

Imports no TensorFlow: create_pretraining_data.py uses it.
"""

from absl import flags

flags.DEFINE_integer("max_predictions_per_seq", 20,
                     "Maximum number of masked LM predictions per sequence (run_pretraining.py, "
                     "run_distillation.py: must match data generation).")
flags.DEFINE_float("masked_lm_prob", 0.15,
                   "Masked LM probability (run_pretraining.py, run_distillation.py: with "
                   "--dynamic_masking, the fraction masked).")
flags.DEFINE_bool("do_whole_word_mask", False,
                  "Whether to use whole word masking rather than per-WordPiece masking "
                  "(run_pretraining.py, run_distillation.py: with --dynamic_masking, mask a "
                  "word's pieces together).")
flags.DEFINE_bool("next_sentence", None,
                  "create_pretraining_data.py: write next_sentence_labels (B a random segment "
                  "half of the time); default: true with --packing=pairs, false otherwise. "
                  "run_pretraining.py: train the next-sentence head (default true; false: "
                  "masked LM only, as RoBERTa; records need no next_sentence_labels, "
                  "cls/seq_relationship is not created, trained or read).")
