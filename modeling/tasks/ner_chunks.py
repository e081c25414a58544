"""The entity chunks of tagged words in TensorFlow ops, for the NER exports.

The conlleval rules of `ner_tags` (the tables `ner_metrics` reads) over label ids,
in dense ops that TFLite runs too: the SavedModel (`ner_serving`) and the TFLite
tagger (`ner_tflite_export`) both read their entities here.
"""

import tensorflow as tf

from modeling.data import ner_tags


def _shift(values, is_edge, fill, forward):
  """values [M] moved one place back (forward=True: v[i-1] at i) or ahead, `fill`
  where `is_edge` [M] (the first, or last, word of a text)."""
  padding = tf.fill([1], fill)
  shifted = (tf.concat([padding, values[:-1]], 0) if forward
             else tf.concat([values[1:], padding], 0))
  return tf.where(is_edge, fill, shifted)


class EntityChunks:
  """Reads entity chunks from the label ids of words, text after text."""

  def __init__(self, label_list):
    """Args:
      label_list: tag names in label-id order (IOB1, IOB2, IOBES...).
    """
    parts = [ner_tags.split_tag(label) for label in label_list]
    types = sorted({entity_type for _, entity_type in parts if entity_type})
    self.types = tf.constant(types or [""], tf.string)  # [T]
    self.label_prefix = tf.constant([ner_tags.PREFIXES.index(p) for p, _ in parts], tf.int32)
    self.label_type = tf.constant([types.index(t) if t else -1 for _, t in parts], tf.int32)
    self.chunk_ends = tf.constant(ner_tags.CHUNK_ENDS)
    self.chunk_starts = tf.constant(ner_tags.CHUNK_STARTS)

  def __call__(self, label, score, is_first, is_last):
    """The entity chunks of M words.

    Args:
      label: int32 [M] the label id of every word of the batch, text after text.
      score: float32 [M] its probability.
      is_first, is_last: bool [M] whether the word is its text's first (last).

    Returns:
      (first, last, type, mean score), [E] each: the indexes of the first and last
      word of each entity (int64), its type index into `types` (int32) and the mean
      probability of its tags.
    """
    prefix = tf.gather(self.label_prefix, label)  # [M] 0 for O
    entity_type = tf.gather(self.label_type, label)  # [M] -1 for O
    previous_prefix = _shift(prefix, is_first, 0, forward=True)
    previous_type = _shift(entity_type, is_first, -1, forward=True)
    next_prefix = _shift(prefix, is_last, 0, forward=False)
    next_type = _shift(entity_type, is_last, -1, forward=False)
    starts = (tf.gather_nd(self.chunk_starts, tf.stack([previous_prefix, prefix], 1))
              | ((entity_type != previous_type) & (prefix != 0)))
    ends = (tf.gather_nd(self.chunk_ends, tf.stack([prefix, next_prefix], 1))
            | ((entity_type != next_type) & (prefix != 0)))
    first = tf.where(starts)[:, 0]  # [E] each chunk has one start and one end, in order.
    last = tf.where(ends)[:, 0]  # [E]
    # One place more, so that no op runs on an empty tensor (TFLite).
    cumulative = tf.cumsum(tf.concat([score, [0.0]], 0))
    total = tf.gather(cumulative, last) - tf.gather(cumulative, first) + tf.gather(score, first)
    mean_score = total / tf.cast(last - first + 1, tf.float32)
    return first, last, tf.gather(entity_type, first), mean_score
