"""Dynamic masking (RoBERTa): masked-LM masks drawn anew each time a record is read.

`create_pretraining_data.py --masking=dynamic` writes unmasked records
(`input_ids`, `input_mask`, `segment_ids`, and `next_sentence_labels` with
next-sentence pairs); `DynamicMasker` turns each one, as the input pipeline reads
it, into the features a static record has, drawn by the original's rules:
`min(max_predictions_per_seq, max(1, round(length * masked_lm_prob)))` positions
other than [CLS]/[SEP]/padding, chosen at random (with `whole_word`, a word and its
"##" pieces together), of which 80% become [MASK], 10% a random vocabulary id and
10% stay.

The draws are stateless: a function of the seed and the record's place in the
stream of records read (`index`), so the same seed gives the same masks, each
epoch (a new place) new ones, and a resumed run, which skips the records already
read, the masks of an uninterrupted run. (tensorflow-text's `mask_language_model`
and `MaskValuesChooser` draw from the stateful `tf.random.uniform`, which gives
none of these, so they are not used.)

Whole words: the selection takes words in a random order while they fit in the
count; the first word that would overflow it ends the selection (the original
skips it and tries the next ones, which differs only when a long word comes up
near the limit).
"""

import tensorflow as tf

from modeling.data.tokenization import load_vocab


class DynamicMasker:
  """Masks one unmasked record; use with `pretraining_input.pretraining_dataset`."""

  def __init__(self, vocab_file, max_predictions_per_seq, masked_lm_prob=0.15,
               whole_word=False, seed=0):
    """Args:
      vocab_file: the vocabulary of the records' ids (for [CLS], [SEP], [MASK],
        the vocabulary size and, with `whole_word`, the "##" pieces).
      max_predictions_per_seq: P, the most masked positions (the width of the
        masked_lm_* features).
      masked_lm_prob: the fraction of the tokens masked.
      whole_word: mask a word's pieces together.
      seed: int, the seed of every draw.

    Raises:
      ValueError: the vocabulary lacks [CLS], [SEP] or [MASK], or a bad value.
    """
    vocab = list(load_vocab(vocab_file))
    missing = [t for t in ("[CLS]", "[SEP]", "[MASK]") if t not in vocab]
    if missing:
      raise ValueError(f"--vocab_file={vocab_file} lacks {', '.join(missing)}")
    if not 0.0 < masked_lm_prob <= 1.0:
      raise ValueError(f"--masked_lm_prob={masked_lm_prob} must be in (0, 1]")
    if max_predictions_per_seq < 1:
      raise ValueError(f"--max_predictions_per_seq={max_predictions_per_seq} must be positive")
    self.cls_id, self.sep_id, self.mask_id = (vocab.index(t) for t in ("[CLS]", "[SEP]", "[MASK]"))
    self.vocab_size = len(vocab)
    self.max_predictions_per_seq = max_predictions_per_seq
    self.masked_lm_prob = masked_lm_prob
    self.whole_word = whole_word
    self.seed = seed
    self._is_subword = tf.constant([token.startswith("##") for token in vocab])

  def __call__(self, index, features):
    """Masks one record.

    Args:
      index: int64 scalar, the record's place in the stream read.
      features: {name: tensor} of one parsed record: int64 [S] input_ids,
        input_mask, segment_ids (and whatever else, passed on).

    Returns:
      `features` with input_ids masked and int64 [P] masked_lm_positions,
      masked_lm_ids, float32 [P] masked_lm_weights added.
    """
    ids = features["input_ids"]  # [S]
    width = tf.shape(ids)[0]
    seed = tf.random.experimental.stateless_fold_in(
        tf.constant([self.seed, 0], tf.int64), index)
    real = features["input_mask"] > 0
    maskable = real & (ids != self.cls_id) & (ids != self.sep_id)  # [S]
    length = tf.reduce_sum(tf.cast(real, tf.float32))
    num_to_predict = tf.minimum(
        self.max_predictions_per_seq,
        tf.maximum(1, tf.cast(tf.round(length * self.masked_lm_prob), tf.int32)))

    # Words: a maskable position starts one unless it continues the previous word.
    starts = maskable
    if self.whole_word:
      after_maskable = tf.concat([[False], maskable[:-1]], 0)
      starts = maskable & ~(tf.gather(self._is_subword, ids) & after_maskable)
    word = tf.cumsum(tf.cast(starts, tf.int32)) - 1  # [S] word index of each position
    word = tf.where(maskable, word, width)  # Not maskable: a word of its own, never chosen.
    sizes = tf.math.unsorted_segment_sum(tf.cast(maskable, tf.int32), word, width + 1)[:width]
    keys = tf.random.stateless_uniform([width], seed)
    keys = tf.where(sizes > 0, keys, 2.0)  # Empty words last.
    order = tf.argsort(keys)
    fits = tf.cumsum(tf.gather(sizes, order)) <= num_to_predict
    chosen_words = tf.scatter_nd(order[:, None], fits & (tf.gather(sizes, order) > 0),
                                 [width])
    chosen = maskable & tf.gather(tf.concat([chosen_words, [False]], 0), word)  # [S]

    choice = tf.random.stateless_uniform([width], tf.random.experimental.stateless_fold_in(
        seed, 1))
    random_ids = tf.random.stateless_uniform(
        [width], tf.random.experimental.stateless_fold_in(seed, 2), 0, self.vocab_size,
        dtype=tf.int64)
    replacement = tf.where(choice < 0.8, tf.constant(self.mask_id, tf.int64),
                           tf.where(choice < 0.9, ids, random_ids))
    positions = tf.cast(tf.where(chosen)[:, 0], tf.int64)  # increasing
    padding = [[0, self.max_predictions_per_seq - tf.shape(positions)[0]]]
    masked = dict(features)
    masked["input_ids"] = tf.where(chosen, replacement, ids)
    masked["masked_lm_positions"] = tf.pad(positions, padding)
    masked["masked_lm_ids"] = tf.pad(tf.gather(ids, positions), padding)
    masked["masked_lm_weights"] = tf.pad(tf.ones_like(positions, tf.float32), padding)
    for name in ("masked_lm_positions", "masked_lm_ids", "masked_lm_weights"):
      masked[name].set_shape([self.max_predictions_per_seq])
    return masked
