"""Flag of the length buckets that batches of arrays (and serving requests) are padded to."""

from absl import flags

from modeling.data import length_buckets

flags.DEFINE_string("length_buckets", "auto",
                    "Pad each fine-tuning, eval and predict batch (and each serving request) "
                    "to the smallest of these lengths that holds it: auto (multiples of 32 "
                    "up to --max_seq_length), a comma list, or none (always "
                    "--max_seq_length, as the original). extract_features.py: each batch at "
                    "the smallest that holds its longest line; the features are the same.")

FLAGS = flags.FLAGS


def buckets_from_flags(max_seq_length):
  """The --length_buckets lengths up to max_seq_length (`length_buckets.parse_buckets`),
  checked at start."""
  return length_buckets.parse_buckets(FLAGS.length_buckets, max_seq_length)
