"""Pretraining instances: masked-LM and next-sentence pairs sampled from documents.

The sampling rules are the original `create_pretraining_data.py`'s
(google-research/bert), with the sampling flags gathered in one `PretrainingRecipe`:

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
- all instances are shuffled.

One `random.Random(seed)` drives every choice, in the original's order, so the
instances are those of the original run with the same seed. Instances hold token
ids, and the random draws avoid `random.Random`'s Python-level helpers (same bits,
same results).
"""

import collections
import dataclasses

_CLS, _SEP, _MASK, _UNK = "[CLS]", "[SEP]", "[MASK]", "[UNK]"

MASKINGS = ("static", "dynamic")
PACKINGS = ("pairs", "full_sentences", "doc_sentences")


@dataclasses.dataclass(frozen=True)
class PretrainingRecipe:
  """How instances are cut from documents and masked: the sampling flags.

  Attributes:
    max_seq_length, max_predictions_per_seq, dupe_factor, masked_lm_prob,
      short_seq_prob, do_whole_word_mask: the original flags, with its defaults.
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

  Raises:
    ValueError: naming the flag, for values the original cannot use sensibly, or
      a combination that cannot be made.
  """
  max_seq_length: int = 128
  max_predictions_per_seq: int = 20
  dupe_factor: int = 10
  masked_lm_prob: float = 0.15
  short_seq_prob: float = 0.1
  do_whole_word_mask: bool = False
  masking: str = "static"
  packing: str = "pairs"
  next_sentence: bool = True
  sentence_order: bool = False
  ngram: int = 1

  def __post_init__(self):
    self._check_values()
    self._check_combination()

  @property
  def masked(self):
    """Whether the masks are drawn here (static masking)."""
    return self.masking == "static"

  def _check_values(self):
    """Raises ValueError, naming the flag, for values the original cannot use sensibly."""
    if self.max_seq_length < 5:
      raise ValueError(f"max_seq_length={self.max_seq_length}: must be at least 5 "
                       "([CLS] A [SEP] B [SEP] with two tokens of text)")
    if self.dupe_factor < 1:
      raise ValueError(f"dupe_factor={self.dupe_factor}: must be at least 1")
    if not 0.0 < self.masked_lm_prob <= 1.0:
      raise ValueError(f"masked_lm_prob={self.masked_lm_prob}: must be in (0, 1]")
    if not 0.0 <= self.short_seq_prob <= 1.0:
      raise ValueError(f"short_seq_prob={self.short_seq_prob}: must be in [0, 1]")
    needed = max(1, int(round(self.max_seq_length * self.masked_lm_prob)))
    if self.max_predictions_per_seq < needed:
      raise ValueError(
          f"max_predictions_per_seq={self.max_predictions_per_seq} is too small: "
          f"masked_lm_prob={self.masked_lm_prob} of max_seq_length={self.max_seq_length} "
          f"masks up to {needed} tokens per sequence; pass --max_predictions_per_seq={needed} "
          "or more (and the same value to run_pretraining.py)")

  def _check_combination(self):
    """Raises ValueError, naming the flag, for a combination that cannot be made."""
    if isinstance(self.ngram, bool) or not isinstance(self.ngram, int) or self.ngram < 1:
      raise ValueError(f"ngram={self.ngram!r}: must be a positive integer (1: no n-gram "
                       "masking)")
    if self.ngram > 1 and self.masking != "static":
      raise ValueError(f"ngram={self.ngram} masks here: it needs --masking=static")
    if self.sentence_order and (self.packing != "pairs" or not self.next_sentence):
      raise ValueError("sop (sentence-order labels) needs --packing=pairs and "
                       "next_sentence_labels (not --next_sentence=false)")
    if self.masking not in MASKINGS:
      raise ValueError(f"masking={self.masking!r}: must be one of {', '.join(MASKINGS)}")
    if self.packing not in PACKINGS:
      raise ValueError(f"packing={self.packing!r}: must be one of {', '.join(PACKINGS)}")
    if self.packing != "pairs" and self.next_sentence:
      raise ValueError(f"packing={self.packing} makes one segment: it has no next sentence to "
                       "predict; pass --next_sentence=false")


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


def create_masked_lm_predictions(input_ids, candidates, recipe, vocab, rng):
  """Masks an id list in place.

  Args:
    input_ids: the ids, [CLS] first and [SEP] last.
    candidates: the maskable positions in order (`pair_candidates`).
    recipe: a `PretrainingRecipe`; with `ngram` 1, the original's masking; above,
      ALBERT's n-gram masking (`choose_ngrams`) of up to `ngram` consecutive pieces
      (words, with `do_whole_word_mask`).
    vocab: the `Vocabulary`.
    rng: the random.Random of the run.

  Returns:
    (positions, original ids at those positions), positions increasing.
  """
  num_to_predict = min(recipe.max_predictions_per_seq,
                       max(1, int(round(len(input_ids) * recipe.masked_lm_prob))))
  if recipe.ngram > 1:
    units = [[position] for position in candidates]
    if recipe.do_whole_word_mask:
      units = _words(input_ids, candidates, vocab)
    chosen = choose_ngrams(units, num_to_predict, recipe.ngram, rng)
  elif recipe.do_whole_word_mask:
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


def create_instances_from_document(all_documents, document_index, recipe, vocab, rng):
  """Cuts one document (a list of sentences, each a list of ids) into instances.

  With the `recipe`'s `next_sentence` False, B is always the rest of the chunk (a
  one-sentence chunk makes `[CLS] A [SEP]`); with dynamic `masking`, nothing is
  masked (the masks are drawn when the records are read: `dynamic_masking`). With
  `sentence_order` (ALBERT's SOP), B is the rest of the chunk and, half of the
  time, A and B are swapped (label 1); a one-sentence chunk takes a random B as
  with next sentences (label 1), as ALBERT. `ngram`: see
  `create_masked_lm_predictions`.
  """
  document = all_documents[document_index]
  max_num_tokens = recipe.max_seq_length - 3  # [CLS], [SEP], [SEP]
  target_seq_length = max_num_tokens
  if rng.random() < recipe.short_seq_prob:
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
      if recipe.sentence_order:
        is_random_next = len(current_chunk) == 1
        swapped = not is_random_next and rng.random() < 0.5
      else:
        is_random_next = recipe.next_sentence and (len(current_chunk) == 1
                                                   or rng.random() < 0.5)
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
                                 pair_candidates(input_ids, num_segment_a), recipe, vocab,
                                 rng))
      current_chunk = []
      current_length = 0
    i += 1
  return instances


def _instance(input_ids, num_segment_a, is_random_next, candidates, recipe, vocab, rng):
  """A TrainingInstance, masked (in place) when the `recipe` masks statically."""
  positions = masked_ids = ()
  if recipe.masked:
    positions, masked_ids = create_masked_lm_predictions(input_ids, candidates, recipe,
                                                         vocab, rng)
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


def generate_instances(all_documents, recipe, vocab, rng):
  """Yields the instances of the `recipe`'s `dupe_factor` passes over the documents,
  unshuffled.

  Packing `pairs` (the original): the documents are shuffled (in place) first, then
  each is cut into A/B pairs (`create_instances_from_document`). `full_sentences`
  and `doc_sentences`: `pack_sentences` in corpus order, one segment, no
  next-sentence label, `short_seq_prob` unused. With dynamic masking nothing is
  masked. `sentence_order` and `ngram`: ALBERT's SOP and n-gram masking (see
  `create_instances_from_document`). `all_documents` holds no empty document.
  """
  if recipe.packing == "pairs":
    shuffle(all_documents, rng)
  for _ in range(recipe.dupe_factor):
    if recipe.packing != "pairs":
      for tokens in pack_sentences(all_documents, recipe.max_seq_length,
                                   recipe.packing == "full_sentences"):
        input_ids = [vocab.cls_id, *(vocab.sep_id if t is None else t for t in tokens),
                     vocab.sep_id]
        candidates = [i + 1 for i, t in enumerate(tokens) if t is not None]
        yield _instance(input_ids, len(input_ids), False, candidates, recipe, vocab, rng)
      continue
    for document_index in range(len(all_documents)):
      yield from create_instances_from_document(all_documents, document_index, recipe, vocab,
                                                rng)


def create_training_instances(all_documents, recipe, vocab, rng):
  """The original's list of shuffled instances (see `generate_instances`)."""
  instances = list(generate_instances(all_documents, recipe, vocab, rng))
  shuffle(instances, rng)
  return instances
