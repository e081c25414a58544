"""Creates masked-LM / next-sentence TFRecords for BERT pretraining.

The flags and defaults are the original create_pretraining_data.py's. Example:

  python create_pretraining_data.py --input_file=corpus.txt \\
    --output_file=/tmp/tf_examples.tfrecord --vocab_file=vocab.txt
"""

from absl import app, flags, logging

import finite_flags
import io_flags  # noqa: F401  (defines the flags)
import pretraining_data_flags  # noqa: F401  (defines the flags)
import tokenizer_flags
from modeling.data import pretraining_corpus, pretraining_data, pretraining_records

flags.DEFINE_integer("random_seed", 12345, "Random seed for data generation.")
flags.DEFINE_integer("dupe_factor", 10,
                     "Number of times to duplicate the input data (with different masks).")
flags.DEFINE_float("short_seq_prob", 0.1,
                   "Probability of creating sequences which are shorter than the maximum "
                   "length.")
# Ours: the RoBERTa recipe, opt-in (the defaults are the original's records).
flags.DEFINE_enum("masking", "static", list(pretraining_data.MASKINGS),
                  "static: masks drawn here, dupe_factor copies (the original). dynamic: "
                  "unmasked records, masked anew each time run_pretraining.py "
                  "--dynamic_masking reads them; dupe_factor then defaults to 1.")
flags.DEFINE_enum("packing", "pairs", list(pretraining_data.PACKINGS),
                  "pairs: the original's A/B segment pairs. full_sentences: each sequence "
                  "filled with consecutive sentences, across documents with an extra [SEP]. "
                  "doc_sentences: the same within a document. Both are one segment, "
                  "without next-sentence labels.")
# Ours: ALBERT's data, opt-in.
flags.DEFINE_bool("sop", False,
                  "ALBERT's sentence-order prediction: next_sentence_labels is 1 when A and "
                  "B, consecutive text of one document, are swapped (half of the time).")
flags.DEFINE_integer("ngram", 1,
                     "ALBERT's n-gram masking: mask spans of up to this many pieces (words "
                     "with --do_whole_word_mask), shorter ones likelier (ALBERT uses 3). "
                     "1: the original's masking.")

FLAGS = flags.FLAGS
finite_flags.require_finite_floats()


def main(_):
  logging.set_verbosity(logging.INFO)
  tokenizer, _ = tokenizer_flags.tokenizer_from_flags()
  input_files = pretraining_corpus.expand_input_patterns(FLAGS.input_file)
  output_files = FLAGS.output_file.split(",")
  logging.info("*** Reading from input files ***\n  %s", "\n  ".join(input_files))
  logging.info("*** Writing to output files ***\n  %s", "\n  ".join(output_files))
  next_sentence = FLAGS.next_sentence
  if next_sentence is None:
    next_sentence = FLAGS.packing == "pairs"
  dupe_factor = FLAGS.dupe_factor
  if FLAGS.masking == "dynamic" and not FLAGS["dupe_factor"].present:
    dupe_factor = 1
    logging.info("--masking=dynamic: --dupe_factor=1 (each read draws new masks); pass "
                 "--dupe_factor to change it")
  recipe = pretraining_data.PretrainingRecipe(
      max_seq_length=FLAGS.max_seq_length, max_predictions_per_seq=FLAGS.max_predictions_per_seq,
      dupe_factor=dupe_factor, masked_lm_prob=FLAGS.masked_lm_prob,
      short_seq_prob=FLAGS.short_seq_prob, do_whole_word_mask=FLAGS.do_whole_word_mask,
      masking=FLAGS.masking, packing=FLAGS.packing, next_sentence=next_sentence,
      sentence_order=FLAGS.sop, ngram=FLAGS.ngram)
  pretraining_records.create_pretraining_data(input_files, output_files, tokenizer, recipe,
                                              FLAGS.random_seed)


if __name__ == "__main__":
  flags.mark_flag_as_required("input_file")
  flags.mark_flag_as_required("output_file")
  # And --vocab_file or --spm_model_file.
  app.run(main)
