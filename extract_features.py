"""Extracts per-token feature vectors from BERT, as the original extract_features.py.

Same flags, defaults and output as the original. Each line of --input_file is
`text_a` or `text_a ||| text_b`; each line of --output_file is the JSON object

  {"linex_index": N, "features": [{"token": "[CLS]", "layers": [{"index": -1,
   "values": [H floats, rounded to 6 decimals]}, ...one per --layers]}, ...one per token]}

in input order. Lines are read, run and written a chunk at a time; the output
appears, complete, under its name only at the end.

  python extract_features.py --input_file=/tmp/input.txt --output_file=/tmp/output.jsonl \
    --vocab_file=$BERT_DIR/vocab.txt --bert_config_file=$BERT_DIR/bert_config.json \
    --init_checkpoint=$BERT_DIR/bert_model.ckpt --layers=-1,-2,-3,-4 \
    --max_seq_length=128 --batch_size=8
"""

import itertools
import os
import time

from absl import app, flags, logging

import bucket_flags
import finite_flags
import io_flags  # noqa: F401  (defines the flags)
import model_flags  # noqa: F401  (defines the flags)
import tokenizer_flags
import tpu_flags
from modeling import checkpoint
from modeling.data import files
from modeling.model.config import BertConfig
from modeling.model.model import BertModel
from modeling.tasks import feature_extraction

flags.DEFINE_string("layers", "-1,-2,-3,-4", "Encoder layers to output, comma-separated "
                    "(-1 is the last).")
flags.DEFINE_integer("batch_size", 32, "Batch size for predictions.")
flags.DEFINE_bool("use_one_hot_embeddings", False,
                  "If True, tf.one_hot will be used for embedding lookups, otherwise "
                  "tf.nn.embedding_lookup will be used. On TPUs, this should be True "
                  "since it is much faster.")

FLAGS = flags.FLAGS
finite_flags.require_finite_floats()

LOG_EVERY_SECONDS = 30


def check_flags(config):
  """Checks the flags before anything is built; returns (layer indexes, bucket lengths)."""
  config.check_sequence_length(FLAGS.max_seq_length, name="--max_seq_length")
  if FLAGS.max_seq_length < 3:
    raise ValueError(f"--max_seq_length={FLAGS.max_seq_length} leaves no room for text")
  if FLAGS.batch_size < 1:
    raise ValueError(f"--batch_size={FLAGS.batch_size} must be at least 1")
  if FLAGS.use_tpu and not (FLAGS.master or FLAGS.tpu_name):
    raise ValueError("--use_tpu needs --master (the TPU's name or grpc://address:8470) or "
                     "--tpu_name")
  output_dir = os.path.dirname(FLAGS.output_file)
  if output_dir and not files.isdir(output_dir):
    raise FileNotFoundError(f"--output_file={FLAGS.output_file}: no directory {output_dir}")
  return (feature_extraction.parse_layers(FLAGS.layers, config.num_layer_outputs, "--layers"),
          bucket_flags.buckets_from_flags(FLAGS.max_seq_length, training=False))


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  config = BertConfig.from_json_file(FLAGS.bert_config_file)
  layer_indexes, buckets = check_flags(config)
  tokenizer, tokenizer_files = tokenizer_flags.tokenizer_from_flags(config)
  files.check_outputs([("--output_file", FLAGS.output_file)],
                      [("--input_file", FLAGS.input_file), *tokenizer_files,
                       ("--bert_config_file", FLAGS.bert_config_file)])
  examples = feature_extraction.read_examples(FLAGS.input_file)
  first = next(examples, None)
  if first is None:
    raise ValueError(f"--input_file={FLAGS.input_file} is empty: nothing to extract")

  strategy = tpu_flags.strategy_from_flags()
  with strategy.scope():
    model = BertModel(config, FLAGS.use_one_hot_embeddings)
  report = checkpoint.load(FLAGS.init_checkpoint, model,
                           allow_missing=feature_extraction.UNUSED_VARIABLES)
  logging.info("Loaded %s", report)
  extractor = feature_extraction.FeatureExtractor(model, layer_indexes, strategy, buckets)

  start = last_log = time.time()
  count = 0
  with files.atomic_open(FLAGS.output_file, "w") as writer:
    for unique_id, tokens, values in extractor.extract(
        itertools.chain([first], examples), tokenizer, FLAGS.max_seq_length,
        FLAGS.batch_size):
      writer.write(feature_extraction.json_line(unique_id, tokens, layer_indexes, values))
      count += 1
      if time.time() - last_log > LOG_EVERY_SECONDS:
        last_log = time.time()
        logging.info("%d lines, %.1f lines/s", count, count / (last_log - start))
  logging.info("Wrote %d lines of layers %s to %s in %.1f s", count, FLAGS.layers,
               FLAGS.output_file, time.time() - start)


if __name__ == "__main__":
  # And --vocab_file or --spm_model_file.
  for name in ("input_file", "bert_config_file", "init_checkpoint", "output_file"):
    flags.mark_flag_as_required(name)
  app.run(main)
