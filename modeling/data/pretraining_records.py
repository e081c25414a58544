"""Pretraining TFRecords from raw text: the driver of `create_pretraining_data.py`.

Documents are read (`pretraining_corpus`), cut into instances by a recipe
(`pretraining_data`), encoded as Examples as they are made (`tfrecord`), shuffled
and written. With a single output file the records are those of the original
`create_pretraining_data.py` (google-research/bert) with the same seed.

Memory. The original holds the whole corpus, and every instance made from it, in
memory. Here, when several output files are listed, the corpus is cut into as many
consecutive chunks of documents (a first pass counts the documents), and chunk k is
processed exactly as the original processes a corpus, with seed `random_seed + k`,
into output file k. Only one chunk and its instances are in memory at a time, so
memory scales with corpus size / number of output files (times `dupe_factor`, for the
instances). This is the original README's advice (shard the input and run the script
once per shard) done in one run; the difference is that random next sentences come
from the same chunk, not the whole corpus.

Speed. Records are encoded directly in the protobuf wire format as instances are
made. (Worker processes for tokenization and encoding were tried and measured slower
on 2 cores: the random choices stay sequential, and pickling costs about what
encoding does.)
"""

import logging
import os
import random
import time

from modeling.data import files, tfrecord
from modeling.data.pretraining_corpus import read_raw_documents, tokenize_documents
from modeling.data.pretraining_data import Vocabulary, generate_instances, shuffle

logger = logging.getLogger(__name__)

_LOG_INTERVAL_SECONDS = 10.0
_TOKENIZE_BATCH_DOCUMENTS = 256


def _batches(items, size):
  """Yields consecutive lists of at most `size` items of an iterable."""
  batch = []
  for item in items:
    batch.append(item)
    if len(batch) == size:
      yield batch
      batch = []
  if batch:
    yield batch


def _take(iterator, count):
  """Yields the next `count` items of `iterator` (fewer if it ends)."""
  for _, item in zip(range(count), iterator):
    yield item


class _Progress:
  """Counts documents and instances; logs them at most every few seconds."""

  def __init__(self):
    self.start = time.monotonic()
    self.last_log = self.start
    self.documents = 0
    self.instances = 0
    self.tokens = 0
    self.masked = 0
    self.random_next = 0

  def count_instances(self, instances):
    """Passes `instances` through, counting them."""
    for instance in instances:
      self.instances += 1
      self.tokens += len(instance.input_ids)
      self.masked += len(instance.masked_lm_positions)
      self.random_next += instance.is_random_next
      self.maybe_log()
      yield instance

  def maybe_log(self):
    now = time.monotonic()
    if now - self.last_log >= _LOG_INTERVAL_SECONDS:
      self.last_log = now
      logger.info("%d documents read, %d instances made (%.0f instances/s)", self.documents,
                  self.instances, self.instances / (now - self.start))


def _log_record(record, tokenizer):
  """Logs the features of one serialized Example, with its tokens, as the original."""
  features = tfrecord.parse_example(record)
  ids = [i for i, mask in zip(features["input_ids"], features["input_mask"]) if mask]
  lines = ["*** Example ***", "tokens: " + " ".join(tokenizer.convert_ids_to_tokens(ids))]
  lines.extend(f"{name}: {' '.join(map(str, values))}" for name, values in features.items())
  logger.info("\n".join(lines))


def create_pretraining_data(input_files, output_files, tokenizer, recipe, random_seed=12345):
  """Writes pretraining TFRecords from raw text, as the original script.

  Args:
    input_files: list of text files (see `pretraining_corpus.expand_input_patterns`).
    output_files: list of TFRecord paths. With one, the records are the original's
      for the same seed; with several, each holds the instances of one consecutive
      chunk of the documents (see the module docstring).
    tokenizer: a `tokenization.FullTokenizer`, or ALBERT's
      `sentencepiece_tokenization.SentencePieceTokenizer`.
    recipe: the `pretraining_data.PretrainingRecipe` of the instances.
    random_seed: the original flag; chunk k is drawn with `random_seed + k`.

  Returns:
    A dict of totals: documents, instances, tokens, masked, random_next.

  Raises:
    ValueError, FileNotFoundError: bad vocabulary, input or output paths.
  """
  spm_model_file = getattr(tokenizer, "spm_model_file", None)
  vocab_flag, vocab_file = (("--spm_model_file", spm_model_file) if spm_model_file
                            else ("--vocab_file", tokenizer.vocab_file))
  vocab = Vocabulary(tokenizer.vocab, source=vocab_file, sentencepiece=bool(spm_model_file))
  if not output_files:
    raise ValueError("output_file: no output file given")
  for output_file in output_files:
    directory = os.path.dirname(output_file)
    if directory and not files.isdir(directory):
      raise FileNotFoundError(f"output_file {output_file}: directory {directory} does not exist")
  for input_file in input_files:
    if not files.exists(input_file):
      raise FileNotFoundError(f"input_file not found: {input_file}")
  files.check_outputs([("--output_file", f) for f in output_files],
                      [("--input_file", f) for f in input_files]
                      + [(vocab_flag, vocab_file)])

  num_shards = len(output_files)
  if num_shards == 1:
    chunk_sizes = [None]  # The whole corpus: no counting pass.
  else:
    num_raw = sum(1 for _ in read_raw_documents(input_files))
    if num_raw < num_shards:
      raise ValueError(f"output_file lists {num_shards} files but the input has only "
                       f"{num_raw} documents; list at most {num_raw} output files")
    chunk_sizes = [(k + 1) * num_raw // num_shards - k * num_raw // num_shards
                   for k in range(num_shards)]
    logger.info("%d documents, in %d chunks of about %d, one per output file", num_raw,
                num_shards, num_raw // num_shards)

  encoder = tfrecord.ExampleEncoder(vocab.size, recipe.max_seq_length,
                                    recipe.max_predictions_per_seq, recipe.masked,
                                    recipe.next_sentence)
  progress = _Progress()
  raw_documents = read_raw_documents(input_files)
  for shard, (output_file, chunk_size) in enumerate(zip(output_files, chunk_sizes)):
    chunk = raw_documents if chunk_size is None else _take(raw_documents, chunk_size)
    documents = []
    for batch in _batches(chunk, _TOKENIZE_BATCH_DOCUMENTS):
      documents.extend(tokenize_documents(tokenizer, batch))
      progress.documents += len(batch)
      progress.maybe_log()
    if not documents:
      raise ValueError(f"no text in input_file {','.join(input_files)}"
                       + ("" if chunk_size is None else f" for output file {output_file}"))
    # Records are encoded as instances are made, and take less memory; shuffling them
    # permutes them as the original permutes its instances.
    rng = random.Random(random_seed + shard)
    records = [encoder.encode(instance) for instance in progress.count_instances(
        generate_instances(documents, recipe, vocab, rng))]
    del documents
    shuffle(records, rng)
    if shard == 0:
      for record in records[:3]:
        _log_record(record, tokenizer)
    with tfrecord.TFRecordWriter(output_file) as writer:
      for record in records:
        writer.write(record)
    logger.info("wrote %d instances to %s", len(records), output_file)

  elapsed = time.monotonic() - progress.start
  totals = {"documents": progress.documents, "instances": progress.instances,
            "tokens": progress.tokens, "masked": progress.masked,
            "random_next": progress.random_next}
  logger.info(
      "done in %.1fs: %d documents -> %d instances (%.0f instances/s) in %d files; "
      "%.1f tokens per instance, %.1f%% of them masked, %.1f%% random next",
      elapsed, totals["documents"], totals["instances"], totals["instances"] / elapsed,
      num_shards, totals["tokens"] / totals["instances"],
      100.0 * totals["masked"] / totals["tokens"],
      100.0 * totals["random_next"] / totals["instances"])
  return totals
