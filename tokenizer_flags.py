"""Flags of the text's tokenization (the vocabulary, its casing, the sequence length the
pieces are cut to), and the tokenizer they make.

Imports no TensorFlow: create_pretraining_data.py uses it.
"""

from absl import flags

from modeling.data import tokenization

flags.DEFINE_string("vocab_file", None,
                    "The vocabulary file that the BERT model was trained on. "
                    "run_pretraining.py and run_distillation.py: with --dynamic_masking, the "
                    "records' vocabulary (and, with --task_name, that of the task's text).")
flags.DEFINE_bool("do_lower_case", True,
                  "Whether to lower case the input text. Should be True for uncased models "
                  "and False for cased models (run_distillation.py: with --task_name).")
flags.DEFINE_bool("preserve_unused_tokens", False,
                  "Keep a word that is an [unusedN] entry of the vocabulary whole, as "
                  "bert-tensorflow 1.0.4's flag of the same name.")
flags.DEFINE_string("spm_model_file", None,
                    "ALBERT's SentencePiece model (as ALBERT's scripts name it): tokenize with "
                    "it, with ALBERT's text preprocessing, instead of --vocab_file.")
flags.DEFINE_integer("max_seq_length", 128,
                     "The maximum total input sequence length after WordPiece tokenization. "
                     "Sequences longer than this will be truncated, and sequences shorter "
                     "than this will be padded (run_pretraining.py: must match data "
                     "generation).")

FLAGS = flags.FLAGS


def tokenizer_from_flags(config=None):
  """The tokenizer of --vocab_file or --spm_model_file, checked against the config
  when one is given.

  Returns:
    (tokenizer, [(flag, path)] of the file read, for output checks).
  """
  tokenizer = tokenization.create_tokenizer(FLAGS.vocab_file, FLAGS.do_lower_case,
                                            FLAGS.preserve_unused_tokens, FLAGS.spm_model_file)
  flag, path = (("--spm_model_file", FLAGS.spm_model_file) if FLAGS.spm_model_file
                else ("--vocab_file", FLAGS.vocab_file))
  if config is not None:
    config.check_vocab_size(len(tokenizer.vocab), path, flag)
  return tokenizer, [(flag, path)]
