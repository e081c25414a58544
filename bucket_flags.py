"""Flag of the length buckets that batches of arrays (and serving requests) are padded to."""

from absl import flags

from modeling.data import length_buckets

flags.DEFINE_string("length_buckets", "auto",
                    "Pad each fine-tuning, eval and predict batch (and each serving request) "
                    "to the smallest of these lengths that holds it: auto (multiples of 32 "
                    "up to --max_seq_length), a comma list, or none (always "
                    "--max_seq_length, as the original). extract_features.py: each batch at "
                    "the smallest that holds its longest line; the features are the same.")

flags.DEFINE_bool("group_by_length", True,
                  "Training: batch the examples of each length bucket together (fastest); "
                  "--nogroup_by_length batches them in random order, each batch padded to "
                  "the bucket of its longest example (an unbucketed run's batches). "
                  "run_classifier.py --multi_label defaults to --nogroup_by_length.")

FLAGS = flags.FLAGS


def buckets_from_flags(max_seq_length, training=True):
  """The --length_buckets lengths up to max_seq_length (`length_buckets.parse_buckets`),
  checked at start; --group_by_length refused where it cannot take effect (one
  bucket, or a script that does not train)."""
  buckets = length_buckets.parse_buckets(FLAGS.length_buckets, max_seq_length)
  if FLAGS["group_by_length"].present and (len(buckets) == 1 or not training):
    flag = f"--{'' if FLAGS.group_by_length else 'no'}group_by_length"
    why = (f"--length_buckets={FLAGS.length_buckets} is one bucket" if training
           else "this script does not train")
    raise ValueError(f"{flag} cannot take effect: {why}")
  return buckets
