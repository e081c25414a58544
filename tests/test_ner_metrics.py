"""The conlleval entity metric against seqeval's default mode, and pinned cases."""

import collections
import os
import random
import warnings

import pytest

from modeling.data import ner_data
from modeling.tasks import ner_metrics

seqeval_metrics = pytest.importorskip(
    "seqeval.metrics", reason="seqeval==1.2.2 is the test oracle (pip install -e '.[test]')")
from seqeval.metrics.sequence_labeling import get_entities  # noqa: E402


def assert_same_as_seqeval(gold, predicted):
  ours = ner_metrics.evaluate(gold, predicted)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # seqeval warns when a ratio has no denominator
    theirs = {"precision": seqeval_metrics.precision_score(gold, predicted),
              "recall": seqeval_metrics.recall_score(gold, predicted),
              "f1": seqeval_metrics.f1_score(gold, predicted)}
    report = seqeval_metrics.classification_report(gold, predicted, output_dict=True)
  for name, value in theirs.items():
    assert abs(ours[name] - value) <= 1e-9, (name, ours[name], value)
  types = {key for key in report if not key.endswith(" avg")}
  assert set(ours["by_type"]) == types
  for entity_type in types:
    for name, key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"),
                      ("support", "support")):
      assert abs(ours["by_type"][entity_type][name] - report[entity_type][key]) <= 1e-9, (
          entity_type, name)
  for tags in gold + predicted:
    assert ner_metrics.entities(tags) == get_entities(tags), tags
  return ours


def unigram_tagger_predictions(train, dev):
  """Each dev word's most frequent training tag (O if unseen): a weak tagger whose
  output has the ill-formed sequences real models produce (I- after O, type
  changes inside a chunk)."""
  counts = collections.defaultdict(collections.Counter)
  for sentence in train:
    for word, tag in zip(sentence.words, sentence.tags):
      counts[word.lower()][tag] += 1
  return [[counts[w.lower()].most_common(1)[0][0] if counts[w.lower()] else "O"
           for w in sentence.words] for sentence in dev]


def test_wnut_dev_predictions_match_seqeval(shared_dir):
  data = os.path.join(shared_dir, "data", "wnut17")
  train = ner_data.read_conll(os.path.join(data, "train.conll"))
  dev = ner_data.read_conll(os.path.join(data, "dev.conll"))
  predicted = unigram_tagger_predictions(train, dev)
  gold = [s.tags for s in dev]
  ours = assert_same_as_seqeval(gold, predicted)
  assert 0.05 < ours["f1"] < 0.9  # a real, imperfect tagging
  assert ours["support"] == sum(len(ner_metrics.entities(tags)) for tags in gold)
  # Its ill-formed chunks are read as conlleval reads them.
  assert any(p == "O" and t.startswith("I-") for tags in predicted
             for p, t in zip(["O"] + tags, tags))


@pytest.mark.parametrize("prefixes", ["BI", "BIES"])
def test_random_and_ill_formed_sequences_match_seqeval(prefixes):
  rng = random.Random(len(prefixes))
  tags = ["O"] + [f"{p}-{t}" for p in prefixes for t in ("PER", "LOC", "creative-work")]
  for _ in range(300):
    gold = [[rng.choice(tags) for _ in range(rng.randint(1, 15))]
            for _ in range(rng.randint(1, 12))]
    predicted = [[rng.choice(tags) if rng.random() < 0.4 else tag for tag in sentence]
                 for sentence in gold]
    assert_same_as_seqeval(gold, predicted)


def test_degenerate_inputs_match_seqeval():
  assert_same_as_seqeval([["O", "O"]], [["O", "O"]])  # no entities: all zero
  assert_same_as_seqeval([["B-PER"]], [["O"]])
  assert_same_as_seqeval([["O"]], [["I-LOC"]])


@pytest.mark.parametrize("tags, expected", [
    (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 1), ("LOC", 3, 3)]),
    # IOB1: I- starts a chunk, B- separates two adjacent chunks of one type.
    (["I-PER", "I-PER", "B-PER", "O", "I-LOC"], [("PER", 0, 1), ("PER", 2, 2), ("LOC", 4, 4)]),
    # A type change inside a chunk ends it and starts another.
    (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 0), ("LOC", 1, 2)]),
    # BIOES.
    (["S-PER", "B-LOC", "I-LOC", "E-LOC", "E-LOC", "S-PER"],
     [("PER", 0, 0), ("LOC", 1, 3), ("LOC", 4, 4), ("PER", 5, 5)]),
    (["O", "O"], []),
])
def test_chunks(tags, expected):
  assert ner_metrics.entities(tags) == expected


def test_scores_by_hand():
  gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
  predicted = [["B-PER", "I-PER", "O", "B-PER"], ["B-ORG", "B-ORG"]]
  scores = ner_metrics.evaluate(gold, predicted)
  assert (scores["precision"], scores["recall"], scores["support"]) == (0.5, 2 / 3, 3)
  assert scores["by_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
  with pytest.raises(ValueError, match="sentence 1: 2 gold tags but 1 predicted"):
    ner_metrics.evaluate(gold, [predicted[0], ["O"]])
