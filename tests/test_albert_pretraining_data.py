"""ALBERT's pretraining data: sentence-order labels (--sop) and n-gram masking (--ngram).

ALBERT's own script draws its n-gram lengths from NumPy's unseeded generator, so
its records cannot be reproduced; these tests check the rules instead. That the
default output is the original BERT's, record for record, is
tests/test_create_pretraining_data.py's.
"""

import collections
import random

import pytest

from modeling.data.pretraining_data import (PretrainingRecipe, Vocabulary, choose_ngrams,
                                            generate_instances, is_sentencepiece_word_start)

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def numbered_corpus(num_documents=40, seed=0):
  """Documents whose sentences are unique ids runs: sentence s of document d is
  [token(d, s, 0), token(d, s, 1), ...], so every token says where it came from."""
  rng = random.Random(seed)
  vocab, documents, origin = list(SPECIAL), [], {}
  for d in range(num_documents):
    document = []
    for s in range(rng.randint(1, 7)):
      sentence = []
      for t in range(rng.randint(2, 9)):
        origin[len(vocab)] = (d, s)
        sentence.append(len(vocab))
        vocab.append(f"w{d}_{s}_{t}")
      document.append(sentence)
    documents.append(document)
  return {token: i for i, token in enumerate(vocab)}, documents, origin


def sop_instances(dupe_factor=3, **options):
  vocab, documents, origin = numbered_corpus()
  recipe = PretrainingRecipe(max_seq_length=64, dupe_factor=dupe_factor, short_seq_prob=0.1,
                             masked_lm_prob=0.15, max_predictions_per_seq=10,
                             do_whole_word_mask=False, sentence_order=True, **options)
  instances = list(generate_instances(documents, recipe, Vocabulary(vocab), random.Random(3)))
  return instances, origin, Vocabulary(vocab)


def segments(instance, vocab):
  ids = instance.input_ids
  return ids[1:instance.num_segment_a - 1], ids[instance.num_segment_a:-1]


def test_sentence_order_labels():
  instances, origin, vocab = sop_instances(masking="dynamic")
  labels = collections.Counter()
  for instance in instances:
    a, b = segments(instance, vocab)
    a_docs, b_docs = {origin[t][0] for t in a}, {origin[t][0] for t in b}
    a_sentences, b_sentences = [origin[t][1] for t in a], [origin[t][1] for t in b]
    if instance.is_random_next and a_docs != b_docs:
      labels["random B (one-sentence chunk)"] += 1
      assert len(set(a_sentences)) == 1  # only a lone sentence takes a random B
      continue
    assert len(a_docs | b_docs) == 1, "A and B from one document"
    if instance.is_random_next:  # swapped: B's text comes first in the document
      labels["swapped"] += 1
      assert max(b_sentences) < min(a_sentences)
    else:
      labels["in order"] += 1
      assert max(a_sentences) < min(b_sentences)
  assert labels["in order"] > 0.35 * len(instances), labels
  assert labels["swapped"] > 0.25 * len(instances), labels


def test_sop_records_are_masked_as_usual():
  instances, _, vocab = sop_instances()
  for instance in instances:
    assert 0 < len(instance.masked_lm_positions) <= 10
    separators = {0, instance.num_segment_a - 1, len(instance.input_ids) - 1}
    assert not separators & set(instance.masked_lm_positions)


@pytest.mark.parametrize("whole_words", [False, True])
def test_ngram_spans(whole_words):
  units = [[i] for i in range(1, 101)]
  if whole_words:
    units = [[3 * i + 1, 3 * i + 2] if i % 2 else [3 * i + 1] for i in range(60)]
  rng = random.Random(0)
  lengths = collections.Counter()
  for _ in range(300):
    chosen = choose_ngrams(units, 20, 3, rng)
    assert len(chosen) <= 20 and len(set(chosen)) == len(chosen)
    # The chosen positions come in whole, consecutive units.
    unit_of = {p: i for i, unit in enumerate(units) for p in unit}
    spans, start = [], 0
    for i in range(1, len(chosen) + 1):
      if i == len(chosen) or unit_of[chosen[i]] not in (unit_of[chosen[i - 1]],
                                                        unit_of[chosen[i - 1]] + 1):
        spans.append(chosen[start:i])
        start = i
    for span in spans:
      covered = sorted({unit_of[p] for p in span})
      assert sorted(span) == [p for u in covered for p in units[u]]
      lengths[len(covered)] += 1
  # n is drawn with p(n) = (1/n) / (1 + 1/2 + 1/3): 6/11, 3/11, 2/11 (spans may
  # also touch by chance, which adds to the longer counts).
  total = sum(lengths.values())
  assert lengths[1] / total == pytest.approx(6 / 11, abs=0.08), lengths
  assert lengths[2] / total == pytest.approx(3 / 11, abs=0.08), lengths
  assert set(lengths) <= set(range(1, 7))


def test_ngram_one_is_the_original_masking():
  vocab, documents, _ = numbered_corpus()
  runs = [list(generate_instances(
      [list(d) for d in documents],
      PretrainingRecipe(max_seq_length=64, dupe_factor=2, short_seq_prob=0.1,
                        masked_lm_prob=0.15, max_predictions_per_seq=10,
                        do_whole_word_mask=False, **options),
      Vocabulary(vocab), random.Random(5)))
          for options in ({}, {"ngram": 1, "sentence_order": False})]
  assert runs[0] == runs[1]


def test_ngram_masking_in_instances():
  instances, _, _ = sop_instances(ngram=3)
  runs = collections.Counter()
  for instance in instances:
    positions = instance.masked_lm_positions
    assert len(positions) <= 10 and list(positions) == sorted(positions)
    run = 1
    for p, q in zip(positions, positions[1:]):
      if q == p + 1:
        run += 1
      else:
        runs[run] += 1
        run = 1
    runs[run] += 1
  assert sum(n for length, n in runs.items() if length >= 2) > 0.2 * sum(runs.values())


def test_sentencepiece_word_starts():
  assert is_sentencepiece_word_start("\u2581the")
  assert is_sentencepiece_word_start("<unk>")
  assert is_sentencepiece_word_start(".")
  assert is_sentencepiece_word_start("é")  # another script: always a whole piece
  assert not is_sentencepiece_word_start("ing")
  assert not is_sentencepiece_word_start("s.")
  vocab = Vocabulary({p: i for i, p in enumerate(["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]",
                                                  "\u2581walk", "ing"])},
                     sentencepiece=True)
  assert vocab.is_subword[:2] == [False, False] and vocab.is_subword[5:] == [False, True]


@pytest.mark.parametrize("options, message", [
    (dict(sentence_order=True, packing="full_sentences", next_sentence=False),
     "sop .* needs --packing=pairs"),
    (dict(sentence_order=True, next_sentence=False), "sop .* needs --packing=pairs"),
    (dict(ngram=0), "ngram=0: must be a positive integer"),
    (dict(ngram=3, masking="dynamic"), "ngram=3 masks here: it needs --masking=static"),
])
def test_bad_combinations_are_named(options, message):
  recipe = dict(masking="static", packing="pairs", next_sentence=True)
  recipe.update(options)
  with pytest.raises(ValueError, match=message):
    PretrainingRecipe(**recipe)
