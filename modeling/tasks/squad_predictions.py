"""SQuAD answers from the model's logits, as the original run_squad.py's `write_predictions`.

`predict_answers`: the n-best (start, end) pairs of each feature allowed by the
max-context rule and `max_answer_length`, their text mapped back to the original
context (`get_final_text`), a softmax over the n-best; for 2.0 the null answer
wins when its score beats the best non-null one by more than
`null_score_diff_threshold`. `write_predictions` writes the original's
predictions.json, nbest_predictions.json and null_odds.json.
"""

import collections
import dataclasses
import json
import logging
import math
import os

import numpy as np

from modeling.data import files
from modeling.data.sentencepiece_tokenization import PIECE_PREFIX
from modeling.data.tokenization import BasicTokenizer

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class RawResult:
  """The model's logits for one feature: start_logits, end_logits float [S]."""
  unique_id: int
  start_logits: object
  end_logits: object


@dataclasses.dataclass
class _Candidate:
  """A (start, end) answer span of one feature; logits as Python floats."""
  feature_index: int
  start_index: int
  end_index: int
  start_logit: float
  end_logit: float

  @property
  def score(self):
    return self.start_logit + self.end_logit


def best_indexes(logits, n_best_size):
  """Indexes of the n largest logits, largest first, lower index first on ties."""
  return np.argsort(-np.asarray(logits), kind="stable")[:n_best_size].tolist()


def softmax(scores):
  """Softmax of Python floats, summed in order (bit-identical to the original's)."""
  if not scores:
    return []
  top = max(scores)
  exps = [math.exp(score - top) for score in scores]
  total = sum(exps)
  return [x / total for x in exps]


def _span_candidates(feature_index, feature, result, n_best_size, max_answer_length):
  """The valid n-best x n-best (start, end) pairs of one feature."""
  candidates = []
  for start in best_indexes(result.start_logits, n_best_size):
    for end in best_indexes(result.end_logits, n_best_size):
      if (start not in feature.token_to_orig_map or end not in feature.token_to_orig_map
          or not feature.token_is_max_context.get(start, False)
          or not start <= end < start + max_answer_length):
        continue
      candidates.append(_Candidate(feature_index, start, end, float(result.start_logits[start]),
                                   float(result.end_logits[end])))
  return candidates


def _null_candidate(features, results):
  """The feature whose [CLS] start + end score is lowest, as a null candidate."""
  null = None
  for feature_index, feature in enumerate(features):
    result = results[feature.unique_id]
    candidate = _Candidate(feature_index, 0, 0, float(result.start_logits[0]),
                           float(result.end_logits[0]))
    if null is None or candidate.score < null.score:
      null = candidate
  return null


def _strip_spaces(text):
  """(text without " ", the index in `text` of each kept character)."""
  kept = [i for i, char in enumerate(text) if char != " "]
  return "".join(text[i] for i in kept), kept


def get_final_text(pred_text, orig_text, do_lower_case):
  """The part of `orig_text` (original words) that the predicted pieces spell.

  `pred_text` is the de-tokenized, normalized answer ("steve smith"); the
  original words may hold more ("Steve Smith's"). Both are aligned character
  by character through BasicTokenizer(orig_text) with spaces removed; where
  that fails, `orig_text` is returned whole, as the original does.
  """
  tokenized = " ".join(BasicTokenizer(do_lower_case).tokenize(orig_text))
  start = tokenized.find(pred_text)
  if start == -1:
    logger.debug("Unable to find text: %r in %r", pred_text, orig_text)
    return orig_text
  end = start + len(pred_text) - 1
  orig_chars, orig_positions = _strip_spaces(orig_text)
  tokenized_chars, tokenized_positions = _strip_spaces(tokenized)
  if len(orig_chars) != len(tokenized_chars):
    logger.debug("Length not equal after stripping spaces: %r vs %r", orig_chars,
                  tokenized_chars)
    return orig_text
  to_stripped = {position: i for i, position in enumerate(tokenized_positions)}
  if start not in to_stripped or end not in to_stripped:
    logger.debug("Couldn't map the start or end of %r in %r", pred_text, orig_text)
    return orig_text
  return orig_text[orig_positions[to_stripped[start]]:orig_positions[to_stripped[end]] + 1]


def pieces_text(pieces):
  """The text of word pieces: WordPiece's "##" continuations joined, or
  SentencePiece's (ALBERT's) pieces joined with a space at each "▁"."""
  if any(piece.startswith(PIECE_PREFIX) for piece in pieces):
    return " ".join("".join(pieces).replace(PIECE_PREFIX, " ").split())
  return " ".join(" ".join(pieces).replace(" ##", "").replace("##", "").split())


def _candidate_text(example, feature, candidate, do_lower_case):
  """The answer text of a non-null candidate, in the original context's characters."""
  pieces = feature.tokens[candidate.start_index:candidate.end_index + 1]
  pred_text = pieces_text(pieces)
  first_word = feature.token_to_orig_map[candidate.start_index]
  last_word = feature.token_to_orig_map[candidate.end_index]
  orig_text = " ".join(example.doc_tokens[first_word:last_word + 1])
  return get_final_text(pred_text, orig_text, do_lower_case)


def _nbest(example, features, candidates, null, n_best_size, do_lower_case):
  """The n-best distinct answers [(text, start_logit, end_logit)], best first.

  With a `null` candidate (SQuAD 2.0) the null answer "" is always among them.
  """
  nbest = []
  seen = set()
  for candidate in sorted(candidates, key=lambda c: c.score, reverse=True):
    if len(nbest) >= n_best_size:
      break
    text = ""
    if candidate.start_index > 0:
      text = _candidate_text(example, features[candidate.feature_index], candidate,
                             do_lower_case)
      if text in seen:
        continue
    seen.add(text)
    nbest.append((text, candidate.start_logit, candidate.end_logit))
  if null is not None and "" not in seen:
    nbest.append(("", null.start_logit, null.end_logit))
  if not any(text for text, _, _ in nbest):
    # No valid span (rare): a nonce answer, as the original (and, for 2.0, where
    # the original fails, as Hugging Face's port of it).
    nbest.insert(0, ("empty", 0.0, 0.0))
  return nbest


def _nbest_json(nbest):
  probabilities = softmax([start + end for _, start, end in nbest])
  return [collections.OrderedDict(text=text, probability=probability, start_logit=start,
                                  end_logit=end)
          for (text, start, end), probability in zip(nbest, probabilities)]


def predict_answers(examples, features, results, n_best_size, max_answer_length,
                    do_lower_case, version_2_with_negative=False,
                    null_score_diff_threshold=0.0):
  """The original `write_predictions`, without the writing.

  Args:
    examples: the SquadExamples features were made from.
    features: their InputFeatures.
    results: RawResults, one per feature (any order).
    n_best_size: start and end candidates per feature, and answers kept.
    max_answer_length: most pieces in an answer.
    do_lower_case: as the tokenizer (for mapping answers back).
    version_2_with_negative: consider the null answer.
    null_score_diff_threshold: predict "" when null score - best non-null
      score exceeds this.

  Returns:
    (predictions {qas_id: text}, nbest {qas_id: [OrderedDict(text,
    probability, start_logit, end_logit)]}, null_odds {qas_id: score
    difference} or None without version_2_with_negative), ordered as examples.
  """
  by_id = {result.unique_id: result for result in results}
  by_example = collections.defaultdict(list)
  for feature in features:
    by_example[feature.example_index].append(feature)
  predictions = collections.OrderedDict()
  all_nbest = collections.OrderedDict()
  null_odds = collections.OrderedDict() if version_2_with_negative else None
  for example_index, example in enumerate(examples):
    example_features = by_example[example_index]
    candidates = [c for i, f in enumerate(example_features)
                  for c in _span_candidates(i, f, by_id[f.unique_id], n_best_size,
                                            max_answer_length)]
    null = _null_candidate(example_features, by_id) if version_2_with_negative else None
    if null is not None:
      candidates.append(null)
    nbest = _nbest(example, example_features, candidates, null, n_best_size, do_lower_case)
    all_nbest[example.qas_id] = _nbest_json(nbest)
    best_text, best_start, best_end = next(entry for entry in nbest if entry[0])
    predictions[example.qas_id] = best_text
    if null is not None:
      score_diff = null.score - best_start - best_end
      null_odds[example.qas_id] = score_diff
      if score_diff > null_score_diff_threshold:
        predictions[example.qas_id] = ""
  return predictions, all_nbest, null_odds


# What `write_predictions` writes in the output directory, in its order.
PREDICTION_FILES = ("predictions.json", "nbest_predictions.json", "null_odds.json")


def write_predictions(output_dir, predictions, nbest, null_odds=None):
  """Writes predictions.json, nbest_predictions.json and (given) null_odds.json.

  Each file is replaced atomically, in the original's format (indent 4).

  Returns:
    The paths written.
  """
  paths = []
  for name, contents in zip(PREDICTION_FILES, (predictions, nbest, null_odds)):
    if contents is not None:
      paths.append(os.path.join(output_dir, name))
      files.write_atomically(paths[-1], json.dumps(contents, indent=4) + "\n")
  return paths
