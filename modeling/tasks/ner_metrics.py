"""Entity-level precision, recall and F1 with the CoNLL `conlleval` chunk rules.

A tag is "O" or "<prefix>-<type>", prefix one of B, I, E, S (IOB1, IOB2 and BIOES
tags all read the same way; no scheme is assumed). Reading a sentence left to
right, between a previous tag and the current one:

- a chunk ends (before the current tag) after an E or S, when a B or I is followed
  by B, S or O, and whenever the type changes after a tag other than O;
- a chunk starts at a B or S, at an I or E after O, E or S, and at any tag other
  than O whose type differs from the previous tag's.

So an I- after O or after another type starts a chunk, as conlleval reads IOB1;
the E/S rules extend it to BIOES as `seqeval`'s default mode does. A sentence
ends every chunk. An entity is (type, first word, last word); a predicted entity
is correct when gold has exactly the same one. `CHUNK_ENDS` and `CHUNK_STARTS`
hold the rules for two tags of one type; the serving graph reads the same tables.
"""

import collections

OUTSIDE = "O"
PREFIXES = ("O", "B", "I", "E", "S")  # Index = the prefix code the tables use.

# CHUNK_ENDS[previous][current]: a chunk ends between two tags of the same type.
CHUNK_ENDS = (
    # O      B      I      E      S      <- current
    (False, False, False, False, False),  # previous O
    (True, True, False, False, True),     # previous B
    (True, True, False, False, True),     # previous I
    (True, True, True, True, True),       # previous E
    (True, True, True, True, True),       # previous S
)
# CHUNK_STARTS[previous][current]: a chunk starts at the current tag, same type.
CHUNK_STARTS = (
    # O      B      I      E      S      <- current
    (False, True, True, True, True),      # previous O
    (False, True, False, False, True),    # previous B
    (False, True, False, False, True),    # previous I
    (False, True, True, True, True),      # previous E
    (False, True, True, True, True),      # previous S
)


def split_tag(tag):
  """("B", "PER") for "B-PER", ("O", "") for "O"."""
  if tag == OUTSIDE:
    return OUTSIDE, ""
  prefix, _, entity_type = tag.partition("-")
  return prefix, entity_type


def chunk_boundaries(previous, current):
  """(ends, starts): whether a chunk ends before and starts at tag `current`."""
  (prev_prefix, prev_type), (prefix, entity_type) = split_tag(previous), split_tag(current)
  p, c = PREFIXES.index(prev_prefix), PREFIXES.index(prefix)
  type_changes = prev_type != entity_type
  ends = CHUNK_ENDS[p][c] or (type_changes and prev_prefix != OUTSIDE)
  starts = CHUNK_STARTS[p][c] or (type_changes and prefix != OUTSIDE)
  return ends, starts


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
