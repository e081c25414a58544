"""Creates masked-LM / next-sentence TFRecords for BERT pretraining.

The flags and defaults are the original create_pretraining_data.py's. Example:

  python create_pretraining_data.py --input_file=corpus.txt \\
    --output_file=/tmp/tf_examples.tfrecord --vocab_file=vocab.txt
"""

from absl import app, flags, logging

from modeling.data import pretraining_corpus, pretraining_data, pretraining_records, tokenization

flags.DEFINE_string("input_file", None,
                    "Input raw text file (or comma-separated list of files and globs).")
flags.DEFINE_string("output_file", None,
                    "Output TF example file (or comma-separated list of files). With "
                    "several, each holds the instances of one chunk of the documents.")
flags.DEFINE_string("vocab_file", None, "The vocabulary file that the BERT model was trained on.")
flags.DEFINE_bool("do_lower_case", True,
                  "Whether to lower case the input text. Should be True for uncased models "
                  "and False for cased models.")
flags.DEFINE_bool("preserve_unused_tokens", False,
                  "Keep a word that is an [unusedN] entry of the vocabulary whole, as "
                  "bert-tensorflow 1.0.4's flag of the same name.")
flags.DEFINE_bool("do_whole_word_mask", False,
                  "Whether to use whole word masking rather than per-WordPiece masking.")
flags.DEFINE_integer("max_seq_length", 128, "Maximum sequence length.")
flags.DEFINE_integer("max_predictions_per_seq", 20,
                     "Maximum number of masked LM predictions per sequence.")
flags.DEFINE_integer("random_seed", 12345, "Random seed for data generation.")
flags.DEFINE_integer("dupe_factor", 10,
                     "Number of times to duplicate the input data (with different masks).")
flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability.")
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
flags.DEFINE_bool("next_sentence", None,
                  "Write next_sentence_labels (B a random segment half of the time). "
                  "Default: true with --packing=pairs, false otherwise.")
# Ours: ALBERT's data, opt-in.
flags.DEFINE_string("spm_model_file", None,
                    "ALBERT's SentencePiece model: tokenize with it (and ALBERT's text "
                    "preprocessing) instead of --vocab_file.")
flags.DEFINE_bool("sop", False,
                  "ALBERT's sentence-order prediction: next_sentence_labels is 1 when A and "
                  "B, consecutive text of one document, are swapped (half of the time).")
flags.DEFINE_integer("ngram", 1,
                     "ALBERT's n-gram masking: mask spans of up to this many pieces (words "
                     "with --do_whole_word_mask), shorter ones likelier (ALBERT uses 3). "
                     "1: the original's masking.")

FLAGS = flags.FLAGS


def main(_):
  logging.set_verbosity(logging.INFO)
  tokenizer = tokenization.create_tokenizer(FLAGS.vocab_file, FLAGS.do_lower_case,
                                            FLAGS.preserve_unused_tokens, FLAGS.spm_model_file)
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
