"""The official SQuAD v1.1 / v2.0 EM and F1, against hand-computed values."""

import pytest

from modeling.tasks import squad_metrics


@pytest.mark.parametrize("text, normalized", [
    ("The  Cat, sat!", "cat sat"),
    ("An apple a day", "apple day"),
    ("theatre another", "theatre another"),  # articles only as whole words
    ("\u00dcber-caf\u00e9 (1895)", "\u00fcbercaf\u00e9 1895"),  # accents kept, ASCII punct. removed
    ("\u201cquoted\u201d", "\u201cquoted\u201d"),  # non-ASCII punctuation kept
    ("the", ""),
])
def test_normalize_answer(text, normalized):
  assert squad_metrics.normalize_answer(text) == normalized


def test_exact_match_and_f1():
  assert squad_metrics.exact_match("The Cat.", "cat") == 1
  assert squad_metrics.exact_match("cats", "cat") == 0
  assert squad_metrics.f1_score("the cat sat", "a cat sat down") == pytest.approx(0.8)
  assert squad_metrics.f1_score("cat cat", "cat") == pytest.approx(2 / 3)  # bags of words
  assert squad_metrics.f1_score("dog", "cat") == 0
  # Empty answers: 0 in v1.1, equal-or-not in v2.0.
  assert squad_metrics.f1_score("", "") == 0
  assert squad_metrics.f1_score("the", "", empty_matches_empty=True) == 1
  assert squad_metrics.f1_score("", "cat", empty_matches_empty=True) == 0


def test_evaluate_v1():
  gold = {"q1": ["cat sat", "mat"], "q2": ["Paris"], "q3": ["1895"]}
  predictions = {"q1": "cat on mat", "q2": "paris.", "unknown": "x"}  # q3 unanswered: 0
  # q1: F1 max(0.4 vs "cat sat", 0.5 vs "mat"), EM 0; q2: EM 1, F1 1.
  results = squad_metrics.evaluate_v1(gold, predictions)
  assert results == pytest.approx({"exact_match": 100 / 3, "f1": 50.0})
  with pytest.raises(ValueError, match="question q9 has no gold answer"):
    squad_metrics.evaluate_v1({"q9": []}, {"q9": "x"})


def test_evaluate_v2():
  gold = {"a": ["Denver Broncos", "the Broncos"], "b": [], "c": ["1,000"], "d": []}
  predictions = {"a": "Broncos", "b": "", "c": "1,000 people", "d": "a dog"}
  null_odds = {"a": -2.0, "b": 3.0, "c": 1.0, "d": 5.0}
  # EM: a 1, b 1 ("" for no answer), c 0, d 0. F1: a 1, b 1, c 2/3, d 0.
  # Best thresholds, questions by null odds a, c, b, d from 2 (the NoAns count) of 4:
  # EM 3 after a (-2.0); F1 3 after a, 3 2/3 after c (1.0), then d costs 1.
  results = squad_metrics.evaluate_v2(gold, predictions, null_odds)
  assert list(results) == ["exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total",
                           "NoAns_exact", "NoAns_f1", "NoAns_total", "best_exact",
                           "best_exact_thresh", "best_f1", "best_f1_thresh"]
  assert results == pytest.approx({
      "exact": 50.0, "f1": 100 * (8 / 3) / 4, "total": 4,
      "HasAns_exact": 50.0, "HasAns_f1": 100 * (5 / 3) / 2, "HasAns_total": 2,
      "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2,
      "best_exact": 75.0, "best_exact_thresh": -2.0,
      "best_f1": 100 * (11 / 3) / 4, "best_f1_thresh": 1.0})


def test_evaluate_v2_groups_and_empty_gold():
  # A gold answer that normalizes to nothing counts as "no answer" text, but the
  # question still belongs to HasAns, as in the official script.
  results = squad_metrics.evaluate_v2({"e": ["The"]}, {"e": ""})
  assert results == {"exact": 100.0, "f1": 100.0, "total": 1, "HasAns_exact": 100.0,
                     "HasAns_f1": 100.0, "HasAns_total": 1}
  results = squad_metrics.evaluate_v2({"n": []}, {})  # missing prediction: wrong
  assert results == {"exact": 0.0, "f1": 0.0, "total": 1, "NoAns_exact": 0.0,
                     "NoAns_f1": 0.0, "NoAns_total": 1}
