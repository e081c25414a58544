"""Reading the pretraining TFRecords of `create_pretraining_data.py` with tf.data.

Each record is a tf.train.Example with, for S = max_seq_length and
P = max_predictions_per_seq:
  input_ids, input_mask, segment_ids                 int64 [S]
  masked_lm_positions, masked_lm_ids                 int64 [P]
  masked_lm_weights                                  float [P]
  next_sentence_labels                               int64 [1]
Batches hold the same keys, int64 cast to int32 as the original does for TPUs,
with a static batch dimension (`drop_remainder=True`).

The training order is a deterministic function of the seed (the original's
pipeline, with seeded shuffles and an ordered interleave), so a resumed run
skips exactly the records it has already trained on.
"""

import tensorflow as tf
from google.protobuf.message import DecodeError

from modeling.data.dynamic_masking import DynamicMasker

SEQUENCE_FEATURES = ("input_ids", "input_mask", "segment_ids")
PREDICTION_FEATURES = ("masked_lm_positions", "masked_lm_ids", "masked_lm_weights")


def feature_spec(max_seq_length, max_predictions_per_seq, masked=True, next_sentence=True):
  """The tf.io.parse_example spec of a pretraining record.

  Args:
    max_seq_length, max_predictions_per_seq: S and P.
    masked: the masked_lm_* features are read (False: unmasked records of
      `--masking=dynamic`).
    next_sentence: `next_sentence_labels` is read.
  """
  spec = {name: tf.io.FixedLenFeature([max_seq_length], tf.int64) for name in SEQUENCE_FEATURES}
  for name in PREDICTION_FEATURES if masked else ():
    dtype = tf.float32 if name == "masked_lm_weights" else tf.int64
    spec[name] = tf.io.FixedLenFeature([max_predictions_per_seq], dtype)
  if next_sentence:
    spec["next_sentence_labels"] = tf.io.FixedLenFeature([1], tf.int64)
  return spec


def expand_input_files(input_file):
  """Expands the original's `--input_file`: a comma-separated list of files or globs.

  Returns:
    The matching paths, in the order given, each glob's matches sorted.

  Raises:
    FileNotFoundError: a pattern matches no file (the pattern is named).
  """
  files = []
  for pattern in (p.strip() for p in input_file.split(",")):
    if not pattern:
      continue
    matches = sorted(tf.io.gfile.glob(pattern))
    if not matches:
      raise FileNotFoundError(f"--input_file: no file matches {pattern!r}")
    files.extend(matches)
  if not files:
    raise FileNotFoundError(f"--input_file={input_file!r} names no file")
  return files


def _record_problem(record, max_seq_length, max_predictions_per_seq, id_limits, masked,
                    next_sentence):
  """Why a serialized record does not fit the lengths, the id ranges or the mode
  (`masked`, `next_sentence` as `feature_spec`), or None."""
  try:
    example = tf.train.Example.FromString(record.numpy())
  except DecodeError:
    return "is not a tf.train.Example"
  features = example.features.feature
  if not masked and "masked_lm_positions" in features:
    return ("is already masked (made with --masking=static): --dynamic_masking needs records "
            "made with create_pretraining_data.py --masking=dynamic")
  if masked and "input_ids" in features and "masked_lm_positions" not in features:
    return ("is not masked (made with --masking=dynamic?): pass --dynamic_masking and "
            "--vocab_file")
  if next_sentence and "input_ids" in features and "next_sentence_labels" not in features:
    return ("has no next_sentence_labels (made without next-sentence pairs): pass "
            "--next_sentence=false")
  expected = dict.fromkeys(SEQUENCE_FEATURES, ("max_seq_length", max_seq_length))
  if masked:
    expected.update(dict.fromkeys(PREDICTION_FEATURES,
                                  ("max_predictions_per_seq", max_predictions_per_seq)))
  if next_sentence:
    expected["next_sentence_labels"] = (None, 1)
  for name, (flag, length) in expected.items():
    if name not in features:
      return f"has no feature {name!r}; is it a pretraining file?"
    feature = features[name]
    found = len(feature.float_list.value) + len(feature.int64_list.value)
    if found != length:
      hint = f" but --{flag}={length}; use the value the data was made with" if flag else ""
      return f"has {name} of length {found}{hint}"
  for name, (limit, source) in id_limits.items():
    if name not in expected:
      continue
    values = features[name].int64_list.value
    if values and not 0 <= min(values) <= max(values) < limit:
      bad = next(v for v in values if not 0 <= v < limit)
      return (f"has {name} {bad}, outside [0, {limit}) of {source}; was the data made with "
              "another vocabulary?")
  return None


def id_limits(config):
  """{feature: (exclusive limit, what sets it)} of the id features, for `config`."""
  vocab = (config.vocab_size, "vocab_size")
  return {"input_ids": vocab, "masked_lm_ids": vocab,
          "segment_ids": (config.type_vocab_size, "type_vocab_size")}


def check_files(input_files, max_seq_length, max_predictions_per_seq, scan_all=False,
                limits=None, masked=True, next_sentence=True):
  """Checks pretraining files: readable, records of the configured lengths and mode
  (`masked`, `next_sentence` as `feature_spec`), and ids within `limits`
  (`id_limits(config)`; None: not checked).

  Reads the first record of each file, or every record with `scan_all` (used
  to explain an error met during training).

  Raises:
    ValueError: naming the file (and record) that is corrupt, truncated,
      empty, or whose lengths disagree with the flags.
  """
  for path in input_files:
    index = -1
    try:
      for index, record in enumerate(tf.data.TFRecordDataset(path)):
        problem = _record_problem(record, max_seq_length, max_predictions_per_seq,
                                  limits or {}, masked, next_sentence)
        if problem:
          raise ValueError(f"{path}: record {index} {problem}")
        if not scan_all:
          break
    except tf.errors.DataLossError as error:
      raise ValueError(f"{path}: corrupt or truncated TFRecord file after record {index} "
                       f"({error.message})") from None
    if index < 0:
      raise ValueError(f"{path}: the file holds no record")


def pretraining_dataset(input_files, max_seq_length, max_predictions_per_seq, batch_size,
                        is_training, seed=None, skip_records=0, num_cpu_threads=4,
                        limits=None, masker=None, next_sentence=True):
  """The batches of the original `input_fn`, deterministic given `seed`.

  Training: the file list repeated and shuffled, `min(num_cpu_threads, files)`
  files interleaved, records shuffled in a buffer of 100. Evaluation: the files
  in order, repeated. Both drop the last partial batch, as the original.

  Args:
    input_files: list of TFRecord paths.
    max_seq_length: S.
    max_predictions_per_seq: P.
    batch_size: B, the global batch size (a distribution strategy splits it).
    is_training: shuffle as the original training input.
    seed: int seed of the shuffles; None for a different order every run.
    skip_records: records to skip first (`global_step * B` to resume a run).
    num_cpu_threads: files read in parallel when training.
    limits: `id_limits(config)`: a batch with an id outside them raises
      tf.errors.InvalidArgumentError (`check_files(..., scan_all=True)` then
      names the file and record); None: not checked.
    masker: a `dynamic_masking.DynamicMasker` for unmasked records: each record
      is masked as it is read, by its place in the stream (counted before
      `skip_records`, so a resumed run draws the masks of an uninterrupted one).
    next_sentence: the records have `next_sentence_labels` (else the batches
      lack them).

  Returns:
    A tf.data.Dataset of dicts: int32 [B, S] input_ids, input_mask,
    segment_ids; int32 [B, P] masked_lm_positions, masked_lm_ids; float32
    [B, P] masked_lm_weights; int32 [B, 1] next_sentence_labels.
  """
  spec = feature_spec(max_seq_length, max_predictions_per_seq, masker is None, next_sentence)
  if is_training:
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(input_files))
    dataset = dataset.repeat().shuffle(len(input_files), seed=seed)
    dataset = dataset.interleave(tf.data.TFRecordDataset,
                                 cycle_length=min(num_cpu_threads, len(input_files)),
                                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.shuffle(100, seed=seed)
  else:
    dataset = tf.data.TFRecordDataset(input_files).repeat()
  if masker is not None:
    dataset = dataset.enumerate()  # Before the skip: the place in the whole stream.
  if skip_records:
    dataset = dataset.skip(skip_records)
  if masker is not None:
    dataset = dataset.map(lambda index, record: masker(
        index, tf.io.parse_single_example(record, spec)),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  dataset = dataset.batch(batch_size, drop_remainder=True)

  def decode(batch):
    if masker is None:
      batch = tf.io.parse_example(batch, spec)
    limits_here = {name: limit for name, limit in (limits or {}).items() if name in batch}
    checks = [tf.debugging.assert_less(batch[name], tf.constant(limit, tf.int64),
                                       message=f"{name} >= {source}={limit}")
              for name, (limit, source) in limits_here.items()]
    checks += [tf.debugging.assert_non_negative(batch[name], message=f"{name} < 0")
               for name in limits_here]
    with tf.control_dependencies(checks):
      return {name: tf.cast(t, tf.int32) if t.dtype == tf.int64 else tf.identity(t)
              for name, t in batch.items()}

  dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  options = tf.data.Options()
  # Every worker reads the same global batches and keeps its share, so a
  # multi-worker run sees exactly the batches of a single-device run.
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


class PretrainingRecords:
  """The records of a pretraining run's `--input_file`, checked before any work.

  Static records, or, with `dynamic_masking`, unmasked records masked as they are
  read (`DynamicMasker`). `dataset` gives the batches of
  `pretraining_dataset`; `reading` names the file and record at fault when reading
  them fails. Used by run_pretraining.py and run_distillation.py.

  Attributes:
    input_files: the expanded list of paths.
    limits: `id_limits(config)`, with `dynamic_masking` the ids bounded by
      the vocabulary's size.
    masker: the DynamicMasker, or None for static records.
  """

  def __init__(self, input_file, config, max_seq_length, max_predictions_per_seq, seed,
               next_sentence=True, dynamic_masking=False, vocab_file=None,
               masked_lm_prob=0.15, whole_word=False):
    """Args:
      input_file: the `--input_file` value (comma-separated files or globs).
      config: the BertConfig the ids must fit.
      max_seq_length, max_predictions_per_seq: S and P.
      seed: the seed of the shuffles and of the dynamic masks.
      next_sentence: the batches hold `next_sentence_labels` (read from the records).
      dynamic_masking: the records are unmasked (`--masking=dynamic`).
      vocab_file, masked_lm_prob, whole_word: the DynamicMasker's, with
        `dynamic_masking`.

    Raises:
      FileNotFoundError: a pattern matches no file.
      ValueError: --dynamic_masking without --vocab_file, a vocabulary larger
        than the config's, or records that do not fit the lengths, ids (with
        `dynamic_masking`: the vocabulary's) or mode (file and record named).
    """
    self.input_files = expand_input_files(input_file)
    self.limits = id_limits(config)
    self.masker = None
    if dynamic_masking:
      if not vocab_file:
        raise ValueError("--dynamic_masking needs --vocab_file (the ids of [CLS], [SEP], "
                         "[MASK] and the word pieces)")
      self.masker = DynamicMasker(
          vocab_file, max_predictions_per_seq, masked_lm_prob, whole_word, seed)
      config.check_vocab_size(self.masker.vocab_size, vocab_file)
      # The masker indexes its vocabulary by id: the records' ids must be ids of it.
      vocab = (self.masker.vocab_size, f"--vocab_file={vocab_file}")
      self.limits.update(input_ids=vocab, masked_lm_ids=vocab)
    self._lengths = (max_seq_length, max_predictions_per_seq)
    self._seed = seed
    self._next_sentence = next_sentence
    self._check(scan_all=False)

  def _check(self, scan_all):
    check_files(self.input_files, *self._lengths, scan_all=scan_all, limits=self.limits,
                masked=self.masker is None, next_sentence=self._next_sentence)

  def dataset(self, batch_size, is_training, skip_records=0):
    """`pretraining_dataset` of the records (see there), from `skip_records` on."""
    return pretraining_dataset(self.input_files, *self._lengths, batch_size, is_training,
                               seed=self._seed, skip_records=skip_records, limits=self.limits,
                               masker=self.masker, next_sentence=self._next_sentence)

  def reading(self, run):
    """Returns run(); when reading the records fails, names the file and record at fault.

    Raises:
      ValueError: a record is corrupt or does not fit (found by scanning every
        record after the failure); else the failure itself.
    """
    try:
      return run()
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError):
      self._check(scan_all=True)
      raise
