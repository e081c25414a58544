"""Entity-level precision, recall and F1 with the CoNLL `conlleval` chunk rules.

The chunks of a sentence's tags are read by the rules of `ner_tags`. An entity is
(type, first word, last word); a predicted entity is correct when gold has exactly
the same one.
"""

import collections

from modeling.data.ner_tags import OUTSIDE, chunk_boundaries, split_tag


def entities(tags):
  """The chunks of one sentence's tags as [(type, first, last)], word indexes inclusive."""
  found = []
  start = None
  previous = OUTSIDE
  for index, tag in enumerate(list(tags) + [OUTSIDE]):
    ends, starts = chunk_boundaries(previous, tag)
    if ends and start is not None:
      found.append((split_tag(previous)[1], start, index - 1))
      start = None
    if starts:
      start = index
    previous = tag
  return found


def _ratio(numerator, denominator):
  return numerator / denominator if denominator else 0.0


def _scores(correct, predicted, gold):
  precision, recall = _ratio(correct, predicted), _ratio(correct, gold)
  return {"precision": precision, "recall": recall,
          "f1": _ratio(2 * precision * recall, precision + recall), "support": gold}


def evaluate(gold_sentences, predicted_sentences):
  """Entity-level scores of predicted tags against gold tags.

  Args:
    gold_sentences, predicted_sentences: lists of sentences, each a list of tags,
      the same lengths.

  Returns:
    {"precision", "recall", "f1", "support", "by_type": {type: {"precision",
    "recall", "f1", "support"}}}: micro-averaged over all entities; support is
    the number of gold entities. A ratio with a zero denominator is 0.

  Raises:
    ValueError: the sentence counts or lengths differ (the first such sentence named).
  """
  if len(gold_sentences) != len(predicted_sentences):
    raise ValueError(f"{len(gold_sentences)} gold sentences but {len(predicted_sentences)} "
                     "predicted")
  counts = collections.defaultdict(lambda: [0, 0, 0])  # type: [correct, predicted, gold]
  for index, (gold, predicted) in enumerate(zip(gold_sentences, predicted_sentences)):
    if len(gold) != len(predicted):
      raise ValueError(f"sentence {index}: {len(gold)} gold tags but {len(predicted)} "
                       "predicted")
    gold_entities, predicted_entities = set(entities(gold)), set(entities(predicted))
    for entity_type, _, _ in gold_entities:
      counts[entity_type][2] += 1
    for entity in predicted_entities:
      counts[entity[0]][1] += 1
      counts[entity[0]][0] += entity in gold_entities
  totals = [sum(c[i] for c in counts.values()) for i in range(3)]
  return dict(_scores(*totals),
              by_type={t: _scores(*counts[t]) for t in sorted(counts)})
