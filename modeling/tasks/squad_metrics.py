"""Exact match and F1 of SQuAD answers, as the official v1.1 and v2.0 evaluation scripts.

Answers are compared after `normalize_answer`: lower-cased, ASCII punctuation
removed, the articles a/an/the removed, whitespace collapsed. F1 is over the
bag of normalized words. A question scores its best over the gold answers.

- v1.1 (`evaluate_v1`): {"exact_match", "f1"}, percentages over every question.
- v2.0 (`evaluate_v2`): gold answers that normalize to nothing are dropped and an
  unanswerable question's gold is [""] (only "" matches it); {"exact", "f1",
  "total"}, the same over the answerable ("HasAns_...") and unanswerable
  ("NoAns_...") questions, and, given the null odds, the best threshold on them
  ("best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh": what the
  official script adds with `--na-prob-file null_odds.json`).

A question without a prediction scores 0 (as the v1.1 script; the v2.0 script
would leave it out of "total" or fail).
"""

import collections
import re
import string

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text):
  """Lower case, no punctuation, no articles, single spaces."""
  text = "".join(char for char in text.lower() if char not in _PUNCTUATION)
  return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction, gold):
  """1 if the normalized texts are equal, else 0."""
  return int(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction, gold, empty_matches_empty=False):
  """Harmonic mean of word precision and recall of the normalized texts.

  Args:
    prediction, gold: answer texts.
    empty_matches_empty: v2.0: when either has no words the score is 1 if
      both have none, else 0 (v1.1 scores two empty answers 0).
  """
  predicted_words = normalize_answer(prediction).split()
  gold_words = normalize_answer(gold).split()
  if empty_matches_empty and not (predicted_words and gold_words):
    return int(predicted_words == gold_words)
  common = collections.Counter(predicted_words) & collections.Counter(gold_words)
  overlap = sum(common.values())
  if overlap == 0:
    return 0
  precision = overlap / len(predicted_words)
  recall = overlap / len(gold_words)
  return 2 * precision * recall / (precision + recall)


def _percent(scores, question_ids):
  return 100.0 * sum(scores[q] for q in question_ids) / len(question_ids)


def evaluate_v1(gold, predictions):
  """The official SQuAD v1.1 evaluation.

  Args:
    gold: {question id: [answer texts]}, at least one answer each.
    predictions: {question id: predicted text}.

  Returns:
    {"exact_match": float, "f1": float}, percentages.

  Raises:
    ValueError: a question has no gold answer.
  """
  exact, f1 = {}, {}
  for question_id, answers in gold.items():
    if not answers:
      raise ValueError(f"question {question_id} has no gold answer to evaluate against")
    prediction = predictions.get(question_id)
    if prediction is None:
      exact[question_id] = f1[question_id] = 0
      continue
    exact[question_id] = max(exact_match(prediction, a) for a in answers)
    f1[question_id] = max(f1_score(prediction, a) for a in answers)
  return {"exact_match": _percent(exact, gold), "f1": _percent(f1, gold)}


def _v2_scores(gold, predictions):
  """Per-question v2.0 exact and F1 scores ({id: score} each)."""
  exact, f1 = {}, {}
  for question_id, answers in gold.items():
    answers = [a for a in answers if normalize_answer(a)] or [""]
    prediction = predictions.get(question_id)
    if prediction is None:
      exact[question_id] = f1[question_id] = 0
      continue
    exact[question_id] = max(exact_match(prediction, a) for a in answers)
    f1[question_id] = max(f1_score(prediction, a, empty_matches_empty=True) for a in answers)
  return exact, f1


def best_threshold(gold, predictions, scores, null_odds):
  """The official `find_best_thresh`: the best score when predicting "" above a threshold.

  Args:
    gold: {question id: [answer texts]}.
    predictions: {question id: text}.
    scores: {question id: exact or F1 score of its prediction}.
    null_odds: {question id: null score minus best non-null score}.

  Returns:
    (best percentage, the threshold on null_odds achieving it).
  """
  best = current = sum(1 for answers in gold.values() if not answers)
  threshold = 0.0
  for question_id in sorted(null_odds, key=lambda q: null_odds[q]):
    if question_id not in scores:
      continue
    if gold[question_id]:
      current += scores[question_id]
    elif predictions.get(question_id):
      current -= 1
    if current > best:
      best, threshold = current, null_odds[question_id]
  return 100.0 * best / len(scores), threshold


def evaluate_v2(gold, predictions, null_odds=None):
  """The official SQuAD v2.0 evaluation.

  Args:
    gold: {question id: [answer texts]}, [] for an unanswerable question.
    predictions: {question id: predicted text, "" for no answer}.
    null_odds: optional {question id: null score minus best non-null score}.

  Returns:
    An ordered dict: exact, f1, total, then HasAns_exact, HasAns_f1,
    HasAns_total and NoAns_... for the groups that have questions, then with
    null_odds best_exact, best_exact_thresh, best_f1, best_f1_thresh.
  """
  exact, f1 = _v2_scores(gold, predictions)
  results = collections.OrderedDict(exact=_percent(exact, gold), f1=_percent(f1, gold),
                                    total=len(gold))
  groups = (("HasAns", [q for q, answers in gold.items() if answers]),
            ("NoAns", [q for q, answers in gold.items() if not answers]))
  for prefix, question_ids in groups:
    if question_ids:
      results[f"{prefix}_exact"] = _percent(exact, question_ids)
      results[f"{prefix}_f1"] = _percent(f1, question_ids)
      results[f"{prefix}_total"] = len(question_ids)
  if null_odds is not None:
    for name, scores in (("exact", exact), ("f1", f1)):
      best, threshold = best_threshold(gold, predictions, scores, null_odds)
      results[f"best_{name}"] = best
      results[f"best_{name}_thresh"] = threshold
  return results
