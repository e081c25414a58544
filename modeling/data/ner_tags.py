"""The NER tag grammar: what a tag is, and where the CoNLL `conlleval` rules put chunks.

A tag is "O" or "<prefix>-<type>", prefix one of B, I, E, S (IOB1, IOB2 and BIOES
tags all read the same way; no scheme is assumed). Reading a sentence left to
right, between a previous tag and the current one:

- a chunk ends (before the current tag) after an E or S, when a B or I is followed
  by B, S or O, and whenever the type changes after a tag other than O;
- a chunk starts at a B or S, at an I or E after O, E or S, and at any tag other
  than O whose type differs from the previous tag's.

So an I- after O or after another type starts a chunk, as conlleval reads IOB1;
the E/S rules extend it to BIOES as `seqeval`'s default mode does. A sentence
ends every chunk. `CHUNK_ENDS` and `CHUNK_STARTS` hold the rules for two tags of
one type; `chunk_boundaries` reads them in Python, the NER serving graph as tensors.
"""

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
