"""Pretraining data: raw text -> masked-LM and next-sentence instances -> TFRecords.

The input format, the sampling rules and the TFRecord features are the original
`create_pretraining_data.py`'s (google-research/bert):

- input: one sentence per line, a blank line between documents; a document runs on
  into the next input file when a file does not end with a blank line;
- documents are shuffled; `dupe_factor` times over, each document is cut into
  instances: a target length (`max_seq_length - 3`, or with `short_seq_prob` a random
  length from 2), segment A = the first 1..n-1 of the sentences gathered, segment B =
  the rest ("is next") or, half of the time or when only one sentence was gathered,
  sentences from a random other document (the unused sentences are put back); the
  longer segment is cut from a random end until the pair fits;
- `[CLS] A [SEP] B [SEP]`; `min(max_predictions_per_seq, max(1, round(len *
  masked_lm_prob)))` positions other than [CLS]/[SEP] are masked, chosen at random
  (with `do_whole_word_mask`, a word and its "##" pieces together): 80% become
  [MASK], 10% stay, 10% become a random vocabulary token;
- all instances are shuffled and written to the output files round-robin.

One `random.Random(seed)` drives every choice, in the original's order, so with a
single output file the records are those of the original run with the same seed.

Memory. The original holds the whole corpus, and every instance made from it, in
memory. Here, when several output files are listed, the corpus is cut into as many
consecutive chunks of documents (a first pass counts the documents), and chunk k is
processed exactly as the original processes a corpus, with seed `random_seed + k`,
into output file k. Only one chunk and its instances are in memory at a time, so
memory scales with corpus size / number of output files (times `dupe_factor`, for the
instances). This is the original README's advice (shard the input and run the script
once per shard) done in one run; the difference is that random next sentences come
from the same chunk, not the whole corpus.

Speed. Tokenization caches the pieces of each word, instances hold token ids, the
random draws avoid `random.Random`'s Python-level helpers (same bits, same results),
and records are encoded directly in the protobuf wire format as instances are made.
(Worker processes for tokenization and encoding were tried and measured slower on 2
cores: the random choices stay sequential, and pickling costs about what encoding does.)
"""

import collections
import logging
import os
import random
import struct
import time

from modeling.data import files, tfrecord

logger = logging.getLogger(__name__)

_CLS, _SEP, _MASK, _UNK = "[CLS]", "[SEP]", "[MASK]", "[UNK]"
_LOG_INTERVAL_SECONDS = 10.0
_TOKENIZE_BATCH_DOCUMENTS = 256


TrainingInstance = collections.namedtuple(
    "TrainingInstance",
    ["input_ids", "num_segment_a", "masked_lm_positions", "masked_lm_ids", "is_random_next"])
TrainingInstance.__doc__ = """One sentence pair, as token ids.

Attributes:
  input_ids: list of ids, `[CLS] A [SEP] B [SEP]` with masking applied.
  num_segment_a: length of `[CLS] A [SEP]`; the rest has segment id 1.
  masked_lm_positions: increasing positions of the masked tokens.
  masked_lm_ids: original ids at those positions.
  is_random_next: whether B was drawn from another document.
"""


class Vocabulary:
  """The ids the instance creation needs from a tokenizer's vocabulary.

  With `sentencepiece` (ALBERT's pieces), a piece continues a word unless it
  starts one by ALBERT's rule (`is_sentencepiece_word_start`), and [UNK] is not
  needed (SentencePiece has its own "<unk>").

  Raises:
    ValueError: the vocabulary lacks [CLS], [SEP], [MASK] or [UNK].
  """

  def __init__(self, vocab, source="<vocab>", sentencepiece=False):
    needed = (_CLS, _SEP, _MASK) if sentencepiece else (_CLS, _SEP, _MASK, _UNK)
    missing = [token for token in needed if token not in vocab]
    if missing:
      raise ValueError(f"vocab_file {source} lacks the special tokens {missing}")
    self.size = len(vocab)
    self.cls_id, self.sep_id, self.mask_id = vocab[_CLS], vocab[_SEP], vocab[_MASK]
    # Ids are 0..size-1 in order (tokenization.load_vocab), as the original's list
    # of vocabulary words from which random replacements are drawn.
    if sentencepiece:
      self.is_subword = [not is_sentencepiece_word_start(piece) for piece in vocab]
    else:
      self.is_subword = [token.startswith("##") for token in vocab]


# ALBERT's set: ASCII punctuation without the apostrophe.
_ALBERT_PUNCTUATION = frozenset('!"#$%&()*+,-./:;?@[\\]^_`{|}~')
_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")


def is_sentencepiece_word_start(piece):
  """ALBERT's rule for whole-word masking over SentencePiece pieces: a piece starts
  a word when it starts with "▁" or "<", is one punctuation character, or has a
  character other than ASCII letters and punctuation (any other script)."""
  return (piece.startswith(("\u2581", "<")) or piece in _ALBERT_PUNCTUATION
          or not all(char.lower() in _ASCII_LETTERS or char in _ALBERT_PUNCTUATION
                     for char in piece))


def truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
  """Cuts the longer of two lists, from a random end, until both fit in
  `max_num_tokens` together (in place).

  The original deletes one token at a time (quadratic in a long sentence); this
  draws the same random numbers in the same order, counts the cuts at each end,
  then slices once.
  """
  lengths = [len(tokens_a), len(tokens_b)]
  cuts = [[0, 0], [0, 0]]  # [from the front, from the back] of a and of b.
  while lengths[0] + lengths[1] > max_num_tokens:
    longer = 0 if lengths[0] > lengths[1] else 1
    cuts[longer][0 if rng.random() < 0.5 else 1] += 1
    lengths[longer] -= 1
  for tokens, (front, back), length in zip((tokens_a, tokens_b), cuts, lengths):
    tokens[:] = tokens[front:front + length]


# Exact, faster stand-ins for `random.Random` methods. They draw the same bits in the
# same order as CPython's implementations (3.x), so the random stream, and the data,
# are the original's; tests check them against `random.Random` itself.


def randbelow(rng, n):
  """`rng._randbelow(n)`, n >= 1: rejection sampling on `getrandbits(n.bit_length())`."""
  k = n.bit_length()
  r = rng.getrandbits(k)
  while r >= n:
    r = rng.getrandbits(k)
  return r


def randint(rng, a, b):
  """`rng.randint(a, b)` for a <= b."""
  return a + randbelow(rng, b - a + 1)


_bit_lengths = []  # _bit_lengths[i] == (i + 1).bit_length(), extended as needed.


def shuffle(items, rng):
  """`rng.shuffle(items)`: Fisher-Yates from the end, index i swapped with a j drawn
  uniformly from 0..i by rejection on `getrandbits((i + 1).bit_length())`; about
  twice as fast, as it makes no Python call per item but the draw."""
  if len(_bit_lengths) < len(items):
    _bit_lengths.extend(n.bit_length() for n in range(len(_bit_lengths) + 1, len(items) + 1))
  getrandbits = rng.getrandbits
  i = len(items) - 1
  while i > 0:
    j = getrandbits(_bit_lengths[i])
    if j <= i:
      items[i], items[j] = items[j], items[i]
      i -= 1


def pair_candidates(input_ids, num_segment_a):
  """The maskable positions of `[CLS] A [SEP] B [SEP]`, in order: not [CLS]/[SEP]."""
  return [*range(1, num_segment_a - 1), *range(num_segment_a, len(input_ids) - 1)]


def create_masked_lm_predictions(input_ids, candidates, masked_lm_prob,
                                 max_predictions_per_seq, vocab, do_whole_word_mask, rng,
                                 ngram=1):
  """Masks an id list in place.

  Args:
    input_ids: the ids, [CLS] first and [SEP] last.
    candidates: the maskable positions in order (`pair_candidates`).
    ngram: with 1, the original's masking; above, ALBERT's n-gram masking
      (`choose_ngrams`) of up to `ngram` consecutive pieces (words, with
      `do_whole_word_mask`).

  Returns:
    (positions, original ids at those positions), positions increasing.
  """
  num_to_predict = min(max_predictions_per_seq,
                       max(1, int(round(len(input_ids) * masked_lm_prob))))
  if ngram > 1:
    units = [[position] for position in candidates]
    if do_whole_word_mask:
      units = _words(input_ids, candidates, vocab)
    chosen = choose_ngrams(units, num_to_predict, ngram, rng)
  elif do_whole_word_mask:
    # A word and its "##" pieces (the first piece of B may join the last word of A,
    # as in the original) are masked together, or not at all when they would
    # overflow `num_to_predict`.
    words = _words(input_ids, candidates, vocab)
    shuffle(words, rng)
    chosen = []
    for word in words:
      if len(chosen) >= num_to_predict:
        break
      if len(chosen) + len(word) <= num_to_predict:
        chosen.extend(word)
  else:
    shuffle(candidates, rng)
    chosen = candidates[:num_to_predict]

  positions = sorted(chosen)
  original_ids = [input_ids[position] for position in positions]
  for position in chosen:
    if rng.random() < 0.8:
      input_ids[position] = vocab.mask_id
    elif rng.random() < 0.5:
      pass  # 10%: keeps the original token.
    else:
      input_ids[position] = randint(rng, 0, vocab.size - 1)
  return positions, original_ids


def _words(input_ids, candidates, vocab):
  """The candidate positions grouped into words: lists of a piece and its
  continuations (`vocab.is_subword`)."""
  words = []
  for position in candidates:
    if words and vocab.is_subword[input_ids[position]]:
      words[-1].append(position)
    else:
      words.append([position])
  return words


def choose_ngrams(units, num_to_predict, max_ngram, rng):
  """ALBERT's n-gram masking: the positions to mask, in the order chosen.

  Every unit (a piece, or a word) starts a candidate; in a random order, each
  draws a length n in 1..max_ngram with probability proportional to 1/n, and
  takes the units start..start+n-1 (fewer at the end); a span that would pass
  `num_to_predict` is shortened one unit at a time, and skipped when even one
  unit does not fit or when it overlaps a span already taken. ALBERT draws n
  from NumPy's unseeded global generator; here every draw comes from `rng`.

  Args:
    units: lists of positions (single pieces, or whole words), in order.
    num_to_predict: the most positions to mask.
    max_ngram: the longest n.
    rng: the random.Random of the run.
  """
  cumulative, total = [], 0.0
  for n in range(1, max_ngram + 1):
    total += 1.0 / n
    cumulative.append(total)
  starts = list(range(len(units)))
  shuffle(starts, rng)
  chosen, covered = [], set()
  for start in starts:
    if len(chosen) >= num_to_predict:
      break
    draw = rng.random() * total
    n = 1 + sum(1 for bound in cumulative[:-1] if draw >= bound)
    span = [position for unit in units[start:start + n] for position in unit]
    while n > 1 and len(chosen) + len(span) > num_to_predict:
      n -= 1
      span = [position for unit in units[start:start + n] for position in unit]
    if len(chosen) + len(span) > num_to_predict or covered.intersection(span):
      continue
    covered.update(span)
    chosen.extend(span)
  return chosen


def create_instances_from_document(all_documents, document_index, max_seq_length,
                                   short_seq_prob, masked_lm_prob, max_predictions_per_seq,
                                   vocab, do_whole_word_mask, rng, next_sentence=True,
                                   masked=True, sentence_order=False, ngram=1):
  """Cuts one document (a list of sentences, each a list of ids) into instances.

  With `next_sentence` False, B is always the rest of the chunk (a one-sentence
  chunk makes `[CLS] A [SEP]`); with `masked` False, nothing is masked (the
  masks are drawn when the records are read: `dynamic_masking`). With
  `sentence_order` (ALBERT's SOP), B is the rest of the chunk and, half of the
  time, A and B are swapped (label 1); a one-sentence chunk takes a random B as
  with next sentences (label 1), as ALBERT. `ngram`: see
  `create_masked_lm_predictions`.
  """
  document = all_documents[document_index]
  max_num_tokens = max_seq_length - 3  # [CLS], [SEP], [SEP]
  target_seq_length = max_num_tokens
  if rng.random() < short_seq_prob:
    target_seq_length = randint(rng, 2, max_num_tokens)

  instances = []
  current_chunk = []
  current_length = 0
  i = 0
  while i < len(document):
    current_chunk.append(document[i])
    current_length += len(document[i])
    if i == len(document) - 1 or current_length >= target_seq_length:
      a_end = 1
      if len(current_chunk) >= 2:
        a_end = randint(rng, 1, len(current_chunk) - 1)
      tokens_a = [token for sentence in current_chunk[:a_end] for token in sentence]

      tokens_b = []
      if sentence_order:
        is_random_next = len(current_chunk) == 1
        swapped = not is_random_next and rng.random() < 0.5
      else:
        is_random_next = next_sentence and (len(current_chunk) == 1 or rng.random() < 0.5)
        swapped = False
      if is_random_next:
        target_b_length = target_seq_length - len(tokens_a)
        # Up to 10 tries for another document (a 1-document corpus uses itself).
        for _ in range(10):
          random_document_index = randint(rng, 0, len(all_documents) - 1)
          if random_document_index != document_index:
            break
        random_document = all_documents[random_document_index]
        for sentence in random_document[randint(rng, 0, len(random_document) - 1):]:
          tokens_b.extend(sentence)
          if len(tokens_b) >= target_b_length:
            break
        i -= len(current_chunk) - a_end  # Puts the unused sentences back.
      else:
        tokens_b = [token for sentence in current_chunk[a_end:] for token in sentence]
        if swapped:
          tokens_a, tokens_b = tokens_b, tokens_a
      truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)

      input_ids = [vocab.cls_id, *tokens_a, vocab.sep_id]
      num_segment_a = len(input_ids)
      if tokens_b:
        input_ids += [*tokens_b, vocab.sep_id]
      instances.append(_instance(input_ids, num_segment_a, is_random_next or swapped,
                                 pair_candidates(input_ids, num_segment_a), masked,
                                 masked_lm_prob, max_predictions_per_seq, vocab,
                                 do_whole_word_mask, rng, ngram))
      current_chunk = []
      current_length = 0
    i += 1
  return instances


def _instance(input_ids, num_segment_a, is_random_next, candidates, masked, masked_lm_prob,
              max_predictions_per_seq, vocab, do_whole_word_mask, rng, ngram=1):
  """A TrainingInstance, masked (in place) when `masked`."""
  positions = masked_ids = ()
  if masked:
    positions, masked_ids = create_masked_lm_predictions(
        input_ids, candidates, masked_lm_prob, max_predictions_per_seq, vocab,
        do_whole_word_mask, rng, ngram)
  return TrainingInstance(input_ids, num_segment_a, positions, masked_ids, is_random_next)


def pack_sentences(documents, max_seq_length, cross_documents):
  """RoBERTa's packing: each sequence filled with whole consecutive sentences.

  Yields id lists `[CLS] s1 s2 ... [SEP]` of at most `max_seq_length` ids, in
  corpus order. With `cross_documents` (FULL-SENTENCES) a sequence runs on into
  the next document, an extra [SEP] between the two; without (DOC-SENTENCES) a
  document's last sequence ends with it, and may be short. A sentence longer
  than a sequence is cut into pieces, never dropped.

  Args:
    documents: lists of sentences, each a list of ids.
    max_seq_length: the longest sequence.
    cross_documents: whether a sequence may hold sentences of two documents.

  Yields:
    Lists of the ids between [CLS] and the final [SEP], None standing for each
    [SEP] between two documents.
  """
  limit = max_seq_length - 2  # [CLS] ... [SEP]
  current = []
  for document in documents:
    if current and not cross_documents:
      yield current
      current = []
    elif current:
      current.append(None)  # The [SEP] between two documents.
    for sentence in document:
      for start in range(0, len(sentence), limit):
        piece = sentence[start:start + limit]
        if current and len(current) + len(piece) > limit:
          if current[-1] is None:
            current.pop()  # A document separator never ends a sequence.
          yield current
          current = []
        current.extend(piece)
  if current:
    yield current


def generate_instances(all_documents, max_seq_length, dupe_factor, short_seq_prob,
                       masked_lm_prob, max_predictions_per_seq, vocab, do_whole_word_mask,
                       rng, packing="pairs", next_sentence=True, masked=True,
                       sentence_order=False, ngram=1):
  """Yields the instances of `dupe_factor` passes over the documents, unshuffled.

  `pairs` (the original): the documents are shuffled (in place) first, then each
  is cut into A/B pairs (`create_instances_from_document`). `full_sentences` and
  `doc_sentences`: `pack_sentences` in corpus order, one segment, no
  next-sentence label, `short_seq_prob` unused. With `masked` False nothing is
  masked. `sentence_order` and `ngram`: ALBERT's SOP and n-gram masking (see
  `create_instances_from_document`). `all_documents` holds no empty document.
  """
  if packing == "pairs":
    shuffle(all_documents, rng)
  for _ in range(dupe_factor):
    if packing != "pairs":
      for tokens in pack_sentences(all_documents, max_seq_length, packing == "full_sentences"):
        input_ids = [vocab.cls_id, *(vocab.sep_id if t is None else t for t in tokens),
                     vocab.sep_id]
        candidates = [i + 1 for i, t in enumerate(tokens) if t is not None]
        yield _instance(input_ids, len(input_ids), False, candidates, masked, masked_lm_prob,
                        max_predictions_per_seq, vocab, do_whole_word_mask, rng, ngram)
      continue
    for document_index in range(len(all_documents)):
      yield from create_instances_from_document(
          all_documents, document_index, max_seq_length, short_seq_prob, masked_lm_prob,
          max_predictions_per_seq, vocab, do_whole_word_mask, rng, next_sentence, masked,
          sentence_order, ngram)


def create_training_instances(all_documents, max_seq_length, dupe_factor, short_seq_prob,
                              masked_lm_prob, max_predictions_per_seq, vocab,
                              do_whole_word_mask, rng, **recipe):
  """The original's list of shuffled instances (see `generate_instances`, which
  takes the `recipe` keywords packing, next_sentence, masked, sentence_order and
  ngram)."""
  instances = list(generate_instances(
      all_documents, max_seq_length, dupe_factor, short_seq_prob, masked_lm_prob,
      max_predictions_per_seq, vocab, do_whole_word_mask, rng, **recipe))
  shuffle(instances, rng)
  return instances


def _varint(value):
  """Protobuf base-128 varint of a non-negative int."""
  out = bytearray()
  while value > 0x7F:
    out.append((value & 0x7F) | 0x80)
    value >>= 7
  out.append(value)
  return bytes(out)


class ExampleEncoder:
  """Encodes `TrainingInstance`s as serialized `tf.train.Example`s.

  The bytes are written directly in the protobuf wire format. Every map entry of
  `Example.features` is a header that depends only on the feature name and the
  length of its packed values, then the values; headers come from a cache, varints of
  ids and positions from a table, and the features that depend only on lengths
  (input_mask and segment_ids; masked_lm_weights and next_sentence_labels) are
  cached whole. `tf.train.Example.FromString` reads them back to the features of
  `pretraining_input.feature_spec`, in the original's order.
  """

  def __init__(self, vocab_size, max_seq_length, max_predictions_per_seq, masked=True,
               next_sentence=True):
    """Args:
      vocab_size, max_seq_length, max_predictions_per_seq: the feature sizes.
      masked: write the masked_lm_* features (False: unmasked records for
        dynamic masking, `input_ids` as the text is).
      next_sentence: write `next_sentence_labels`.
    """
    self.max_seq_length = max_seq_length
    self.max_predictions_per_seq = max_predictions_per_seq
    self.masked = masked
    self.next_sentence = next_sentence
    self._varints = [_varint(value) for value in range(max(vocab_size, max_seq_length))]
    self._headers = {}
    self._mask_and_segments_cache = {}  # (length, num_segment_a) -> bytes
    self._weights_and_label_cache = {}  # (num_masked, is_random_next) -> bytes

  def _header(self, name, list_tag, size):
    """The bytes of a `Features.feature` map entry {key: name, value: Feature{<list>
    {packed values}}} before its `size` bytes of packed values; `list_tag` is the tag of
    Feature.int64_list (field 3) or Feature.float_list (field 2)."""
    key = (name, size)
    header = self._headers.get(key)
    if header is None:
      values = b"\n" + _varint(size)  # Int64List/FloatList.value (1), packed.
      feature = list_tag + _varint(len(values) + size) + values
      value = b"\x12" + _varint(len(feature) + size) + feature
      entry = b"\n" + _varint(len(name)) + name + value  # MapEntry key (1), value (2).
      header = self._headers[key] = b"\n" + _varint(len(entry) + size) + entry
    return header

  def _int64_feature(self, name, values, padding=0):
    packed = b"".join(map(self._varints.__getitem__, values)) + b"\x00" * padding
    return self._header(name, b"\x1a", len(packed)) + packed

  def _mask_and_segments(self, length, num_a):
    """input_mask and segment_ids, which depend only on the two lengths."""
    padding = self.max_seq_length - length
    return (self._int64_feature(b"input_mask", [1] * length, padding)
            + self._int64_feature(b"segment_ids", [0] * num_a + [1] * (length - num_a), padding))

  def _weights_and_label(self, num_masked, is_random_next):
    """masked_lm_weights and next_sentence_labels (those written)."""
    features = b""
    if self.masked:
      width = self.max_predictions_per_seq
      weights = struct.pack(f"<{width}f", *[1.0] * num_masked, *[0.0] * (width - num_masked))
      features += self._header(b"masked_lm_weights", b"\x12", len(weights)) + weights
    if self.next_sentence:
      features += self._int64_feature(b"next_sentence_labels", [int(is_random_next)])
    return features

  def encode(self, instance):
    """Returns the serialized Example of one `TrainingInstance`."""
    length = len(instance.input_ids)
    padding = self.max_seq_length - length
    if padding < 0:
      raise ValueError(f"instance of {length} tokens exceeds max_seq_length="
                       f"{self.max_seq_length}")
    unused = self.max_predictions_per_seq - len(instance.masked_lm_positions)
    key = (length, instance.num_segment_a)
    mask_and_segments = self._mask_and_segments_cache.get(key)
    if mask_and_segments is None:
      mask_and_segments = self._mask_and_segments_cache[key] = self._mask_and_segments(*key)
    key = (len(instance.masked_lm_positions), instance.is_random_next)
    weights_and_label = self._weights_and_label_cache.get(key)
    if weights_and_label is None:
      weights_and_label = self._weights_and_label_cache[key] = self._weights_and_label(*key)
    features = b"".join((
        self._int64_feature(b"input_ids", instance.input_ids, padding),
        mask_and_segments,
        self._int64_feature(b"masked_lm_positions", instance.masked_lm_positions, unused)
        if self.masked else b"",
        self._int64_feature(b"masked_lm_ids", instance.masked_lm_ids, unused)
        if self.masked else b"",
        weights_and_label,
    ))
    size = len(features)
    prefix = self._varints[size] if size < len(self._varints) else _varint(size)
    return b"\n" + prefix + features  # Example.features (1).


def expand_input_patterns(input_file):
  """Comma-separated file names and globs -> the list of files, in order.

  Raises:
    FileNotFoundError: a name or glob matches no file.
  """
  input_files = []
  for pattern in input_file.split(","):
    matches = files.glob(pattern)
    if not matches:
      raise FileNotFoundError(f"input_file: {pattern!r} matches no file")
    input_files.extend(matches)
  return input_files


def read_raw_documents(input_files):
  """Yields the documents of the input files, each a list of stripped lines.

  Blank lines separate documents; a document runs on across a file boundary.

  Raises:
    ValueError: a file is not valid UTF-8 (the file and line are named).
  """
  document = []
  for input_file in input_files:
    with files.open(input_file, "rb") as reader:
      for line_number, raw_line in enumerate(reader, 1):
        try:
          line = raw_line.decode("utf-8").strip()
        except UnicodeDecodeError as e:
          raise ValueError(f"{input_file}:{line_number}: not valid UTF-8 ({e})") from e
        if line:
          document.append(line)
        elif document:
          yield document
          document = []
  if document:
    yield document


def _tokenize_documents(tokenizer, raw_documents):
  """Raw documents -> documents of id lists, empty sentences and documents dropped."""
  documents = []
  for raw_document in raw_documents:
    document = []
    for line in raw_document:
      ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line))
      if ids:
        document.append(ids)
    if document:
      documents.append(document)
  return documents


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


def validate_options(max_seq_length, max_predictions_per_seq, dupe_factor, masked_lm_prob,
                     short_seq_prob):
  """Raises ValueError, naming the flag, for values the original cannot use sensibly."""
  if max_seq_length < 5:
    raise ValueError(f"max_seq_length={max_seq_length}: must be at least 5 "
                     "([CLS] A [SEP] B [SEP] with two tokens of text)")
  if dupe_factor < 1:
    raise ValueError(f"dupe_factor={dupe_factor}: must be at least 1")
  if not 0.0 < masked_lm_prob <= 1.0:
    raise ValueError(f"masked_lm_prob={masked_lm_prob}: must be in (0, 1]")
  if not 0.0 <= short_seq_prob <= 1.0:
    raise ValueError(f"short_seq_prob={short_seq_prob}: must be in [0, 1]")
  needed = max(1, int(round(max_seq_length * masked_lm_prob)))
  if max_predictions_per_seq < needed:
    raise ValueError(
        f"max_predictions_per_seq={max_predictions_per_seq} is too small: masked_lm_prob="
        f"{masked_lm_prob} of max_seq_length={max_seq_length} masks up to {needed} tokens "
        f"per sequence; pass --max_predictions_per_seq={needed} or more (and the same value "
        "to run_pretraining.py)")


MASKINGS = ("static", "dynamic")
PACKINGS = ("pairs", "full_sentences", "doc_sentences")


def validate_recipe(masking, packing, next_sentence, sentence_order=False, ngram=1):
  """Raises ValueError, naming the flag, for a combination that cannot be made."""
  if isinstance(ngram, bool) or not isinstance(ngram, int) or ngram < 1:
    raise ValueError(f"ngram={ngram!r}: must be a positive integer (1: no n-gram masking)")
  if ngram > 1 and masking != "static":
    raise ValueError(f"ngram={ngram} masks here: it needs --masking=static")
  if sentence_order and (packing != "pairs" or not next_sentence):
    raise ValueError("sop (sentence-order labels) needs --packing=pairs and "
                     "next_sentence_labels (not --next_sentence=false)")
  if masking not in MASKINGS:
    raise ValueError(f"masking={masking!r}: must be one of {', '.join(MASKINGS)}")
  if packing not in PACKINGS:
    raise ValueError(f"packing={packing!r}: must be one of {', '.join(PACKINGS)}")
  if packing != "pairs" and next_sentence:
    raise ValueError(f"packing={packing} makes one segment: it has no next sentence to "
                     "predict; pass --next_sentence=false")


def create_pretraining_data(input_files, output_files, tokenizer, max_seq_length=128,
                            max_predictions_per_seq=20, random_seed=12345, dupe_factor=10,
                            masked_lm_prob=0.15, short_seq_prob=0.1, do_whole_word_mask=False,
                            masking="static", packing="pairs", next_sentence=True,
                            sentence_order=False, ngram=1):
  """Writes pretraining TFRecords from raw text, as the original script.

  Args:
    input_files: list of text files (see `expand_input_patterns`).
    output_files: list of TFRecord paths. With one, the records are the original's
      for the same seed; with several, each holds the instances of one consecutive
      chunk of the documents (see the module docstring).
    tokenizer: a `tokenization.FullTokenizer`, or ALBERT's
      `sentencepiece_tokenization.SentencePieceTokenizer`.
    max_seq_length, max_predictions_per_seq, random_seed, dupe_factor, masked_lm_prob,
      short_seq_prob, do_whole_word_mask: the original flags.
    masking: "static" (the original: masks drawn here, `dupe_factor` copies) or
      "dynamic" (unmasked records; run_pretraining.py --dynamic_masking draws the
      masks each time a record is read).
    packing: "pairs" (the original's A/B segments), "full_sentences" or
      "doc_sentences" (`pack_sentences`; need next_sentence False).
    next_sentence: write `next_sentence_labels` (with "pairs": B is a random
      other segment half of the time; without, B always follows A).
    sentence_order: ALBERT's sentence-order labels instead: A and B swapped half
      of the time (label 1).
    ngram: ALBERT's n-gram masking of up to this many pieces (words with
      do_whole_word_mask); 1: the original's masking.

  Returns:
    A dict of totals: documents, instances, tokens, masked, random_next.

  Raises:
    ValueError, FileNotFoundError: bad options, vocabulary, input or output paths.
  """
  validate_options(max_seq_length, max_predictions_per_seq, dupe_factor, masked_lm_prob,
                   short_seq_prob)
  validate_recipe(masking, packing, next_sentence, sentence_order, ngram)
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

  masked = masking == "static"
  encoder = ExampleEncoder(vocab.size, max_seq_length, max_predictions_per_seq, masked,
                           next_sentence)
  progress = _Progress()
  raw_documents = read_raw_documents(input_files)
  for shard, (output_file, chunk_size) in enumerate(zip(output_files, chunk_sizes)):
    chunk = raw_documents if chunk_size is None else _take(raw_documents, chunk_size)
    documents = []
    for batch in _batches(chunk, _TOKENIZE_BATCH_DOCUMENTS):
      documents.extend(_tokenize_documents(tokenizer, batch))
      progress.documents += len(batch)
      progress.maybe_log()
    if not documents:
      raise ValueError(f"no text in input_file {','.join(input_files)}"
                       + ("" if chunk_size is None else f" for output file {output_file}"))
    # Records are encoded as instances are made, and take less memory; shuffling them
    # permutes them as the original permutes its instances.
    rng = random.Random(random_seed + shard)
    records = [encoder.encode(instance) for instance in progress.count_instances(
        generate_instances(documents, max_seq_length, dupe_factor, short_seq_prob,
                           masked_lm_prob, max_predictions_per_seq, vocab,
                           do_whole_word_mask, rng, packing, next_sentence, masked,
                           sentence_order, ngram))]
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
