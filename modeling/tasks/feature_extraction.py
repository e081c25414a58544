"""Per-token features from chosen encoder layers, as the original extract_features.py.

Each input line is `text_a` or `text_a ||| text_b`; it becomes `[CLS] a [SEP]` or
`[CLS] a [SEP] b [SEP]`, truncated to `max_seq_length` as the original does (the
run_classifier conversion, `classifier_data.convert_example`). The outputs of the
requested encoder layers at each real token are the features.

  extractor = FeatureExtractor(model, [-1, -2], strategy)
  for unique_id, tokens, values in extractor.extract(examples, tokenizer, 128, 32):
    writer.write(json_line(unique_id, tokens, [-1, -2], values))

Lines stream through in chunks: only a chunk's features and one batch of layer
outputs are held at a time, however long the input.
"""

import itertools
import json
import os
import queue
import re
import threading

import numpy as np
import tensorflow as tf

from modeling.data import files, length_buckets
from modeling.data.classifier_data import InputExample, convert_example
from modeling.data.tokenization import convert_to_unicode
from modeling.training.array_predictor import padded_dataset

# The pooler is not a feature: a checkpoint without it still extracts.
UNUSED_VARIABLES = (r"^bert/pooler/",)

# As the original's read_examples: the last " ||| " splits a pair.
_PAIR = re.compile(r"^(.*) \|\|\| (.*)$")


def parse_line(line, unique_id=0):
  """One input line (str or UTF-8 bytes) to an InputExample, as the original.

  The line is stripped; `text_b` is None unless it holds " ||| ", where it is split
  at the last occurrence. `guid` is `unique_id` as a string.
  """
  line = convert_to_unicode(line).strip()
  match = _PAIR.match(line)
  text_a, text_b = (line, None) if match is None else match.groups()
  return InputExample(guid=str(unique_id), text_a=text_a, text_b=text_b)


def read_examples(input_file):
  """Yields the InputExample of each line of a file, in order, reading as it goes.

  Every line counts, blank ones included (they become `[CLS] [SEP]`), as in the
  original; lines end at "\\n" only. `guid` is the line number from 0.

  Raises:
    FileNotFoundError: `input_file` does not exist (raised on the first `next`).
  """
  input_file = os.fspath(input_file)
  if not files.exists(input_file):
    raise FileNotFoundError(f"input_file not found: {input_file}")
  with files.open(input_file, "rb") as reader:
    for unique_id, line in enumerate(reader):
      yield parse_line(line, unique_id)


def parse_layers(spec, num_layers, name="layers"):
  """Layer indexes from "-1,-2,-3,-4" (or a list of ints), checked against the model.

  As in Python indexing, -1 is the last encoder layer and 0 the first.

  Raises:
    ValueError: an index that is not an integer or is out of range, named with
      the model's number of layers.
  """
  items = spec.split(",") if isinstance(spec, str) else list(spec)
  indexes = []
  for item in items:
    try:
      index = int(item)
    except ValueError:
      raise ValueError(f"{name}={spec}: {item!r} is not a layer index (integers separated "
                       "by commas, e.g. -1,-2,-3,-4)") from None
    if not -num_layers <= index < num_layers:
      raise ValueError(f"{name}={spec}: layer index {index} is out of range for a model of "
                       f"{num_layers} layers (use {-num_layers}..{num_layers - 1})")
    indexes.append(index)
  if not indexes:
    raise ValueError(f"{name}={spec!r}: no layer index")
  return indexes


def json_line(unique_id, tokens, layer_indexes, values):
  """One output line, byte for byte as the original writes it.

  Args:
    unique_id: int, the input line number (the original's "linex_index").
    tokens: the T word pieces, [CLS] and [SEP] included.
    layer_indexes: the L layer indexes, as requested.
    values: float32 [L, T, H], the layer outputs at the tokens.

  Returns:
    A JSON object and "\\n": {"linex_index", "features": [{"token", "layers":
    [{"index", "values" (H floats rounded to 6 decimals)}]}]}.
  """
  # np.round of a float32 widened to float64 is exactly Python's round(float(x), 6):
  # x * 1e6 is exact (24 + 14 significant bits), rint and the division are correctly
  # rounded, as round's decimal arithmetic is.
  rounded = np.round(np.asarray(values, np.float32).astype(np.float64), 6)  # [L, T, H]
  features = [{"token": token,
               "layers": [{"index": index, "values": rounded[j, i].tolist()}
                          for j, index in enumerate(layer_indexes)]}
              for i, token in enumerate(tokens)]
  return json.dumps({"linex_index": unique_id, "features": features}) + "\n"


class FeatureExtractor:
  """Runs a BertModel over batches and returns only the requested layers."""

  def __init__(self, model, layer_indexes, strategy=None, buckets=None):
    """Args:
      model: a BertModel (built under `strategy.scope()`).
      layer_indexes: ints, as `parse_layers` returns them.
      strategy: the tf.distribute.Strategy (default: the current one).
      buckets: `length_buckets.parse_buckets` lengths: each batch runs at the
        smallest that holds its longest line (`crop_to_bucket`); None: every
        batch at max_seq_length, as the original.
    """
    self.model = model
    self.layer_indexes = parse_layers(layer_indexes, model.config.num_layer_outputs)
    self.strategy = strategy or tf.distribute.get_strategy()
    self.buckets = buckets
    self._run = tf.function(self._gathering_step, reduce_retracing=True)

  def layers(self, batch):
    """The requested layers of one replica's batch.

    Args:
      batch: {"input_ids", "input_mask", "segment_ids"}: int32 [B, W].

    Returns:
      float32 [B, L, W, H], layer `layer_indexes[j]` at [:, j].
    """
    outputs = self.model(batch["input_ids"], batch["input_mask"], batch["segment_ids"])
    all_layers = outputs["all_encoder_layers"]
    return tf.cast(tf.stack([all_layers[i] for i in self.layer_indexes], axis=1),
                   tf.float32)  # [B, L, S, H]

  def _gathering_step(self, batch):
    values = self.strategy.run(self.layers, args=(batch,))
    # Replicas hold consecutive slices of the global batch: gather them in order.
    return self.strategy.gather(values, axis=0)  # [global B, L, W, H]

  def extract(self, examples, tokenizer, max_seq_length, batch_size, batches_per_chunk=16):
    """Yields the features of each example, in order.

    The model runs in a background thread, one batch ahead of the caller, so that
    the caller's work on a batch (formatting, writing) overlaps the next forward.

    Args:
      examples: an iterable of InputExample (read lazily, a chunk at a time).
      tokenizer: a FullTokenizer.
      max_seq_length: int S, the padded length (one compiled shape).
      batch_size: the global batch size (a multiple of the number of replicas).
      batches_per_chunk: how many batches of examples are converted at once.

    Yields:
      (unique_id, tokens, values): the example's number from 0, its T word pieces
      ([CLS] and [SEP] included) and float32 [L, T, H], its layer outputs.

    Raises:
      ValueError: batch_size does not split over the replicas.
    """
    if batch_size < 1 or batch_size % self.strategy.num_replicas_in_sync:
      raise ValueError(f"batch_size={batch_size} does not split over "
                       f"{self.strategy.num_replicas_in_sync} replicas")
    unique_id = 0
    for input_ids, lengths, values in _in_background(self._batches(
        examples, tokenizer, max_seq_length, batch_size, batches_per_chunk)):
      for ids, length, example_values in zip(input_ids, lengths, values):
        tokens = tokenizer.convert_ids_to_tokens(ids[:length].tolist())
        yield unique_id, tokens, example_values[:, :length]
        unique_id += 1

  def _batches(self, examples, tokenizer, max_seq_length, batch_size, batches_per_chunk):
    """Yields (input_ids int32 [b, S], lengths [b], values float32 [b, L, W, H]) of the
    real rows of each batch, W the batch's bucket length (`crop_to_bucket`)."""
    examples = iter(examples)
    while chunk := list(itertools.islice(examples, batch_size * batches_per_chunk)):
      features = [convert_example(e, None, max_seq_length, tokenizer) for e in chunk]
      arrays = {name: np.array([getattr(f, name) for f in features], np.int32)
                for name in ("input_ids", "input_mask", "segment_ids")}  # [n, S]
      lengths = arrays["input_mask"].sum(axis=1)  # [n]
      dataset, num_batches = padded_dataset(arrays, batch_size)
      if self.buckets:
        dataset = dataset.map(lambda batch: crop_to_bucket(batch, self.buckets))
      iterator = iter(self.strategy.experimental_distribute_dataset(dataset))
      for start in range(0, num_batches * batch_size, batch_size):
        values = self._run(next(iterator)).numpy()  # [batch_size, L, W, H]
        real = slice(start, min(start + batch_size, len(chunk)))
        yield arrays["input_ids"][real], lengths[real], values[:real.stop - start]


def crop_to_bucket(batch, buckets):
  """Cuts a batch's [B, S] features to [B, W]: W is the smallest of `buckets` (ascending,
  the last S) that holds its longest row (by input_mask). Other features pass as they are.

  The cut columns are padding, which the real tokens never attend to (their attention
  weight is exactly 0), so the real tokens' layers are the same.
  """
  longest = tf.reduce_max(tf.reduce_sum(batch["input_mask"], axis=1))
  width = length_buckets.bucket_length(longest, buckets)
  return {name: value[:, :width] if value.shape.rank == 2 else value
          for name, value in batch.items()}


def _in_background(generator, size=1):
  """Iterates `generator` in a thread, up to `size` items ahead; re-raises its errors.

  Closing the iteration early stops the thread after its current item.
  """
  items = queue.Queue(maxsize=size)
  stop = threading.Event()
  end = object()

  def put(item):
    while not stop.is_set():
      try:
        items.put(item, timeout=0.1)
        return True
      except queue.Full:
        pass
    return False

  def produce():
    try:
      for item in generator:
        if not put((item, None)):
          return
      put((end, None))
    except BaseException as error:  # Handed to the consumer, raised there.
      put((end, error))

  thread = threading.Thread(target=produce, daemon=True)
  thread.start()
  try:
    while True:
      item, error = items.get()
      if error is not None:
        raise error
      if item is end:
        return
      yield item
  finally:
    stop.set()
    thread.join()
