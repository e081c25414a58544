"""SQuAD reading, features and answers, against the original run_squad.py as oracle."""

import dataclasses
import json
import logging
import os

import numpy as np
import pytest

import oracle
from modeling.data import squad_data
from modeling.tasks import squad_predictions
from modeling.data.tokenization import FullTokenizer

LONG_CONTEXT = (
    "The leader was John Smith (1895-1943). He lived in Z\u00fcrich, Switzerland,  where the "
    "Japanese electronics industry was the largest in the world.\tSteve Smith's brother, the "
    "caf\u00e9 owner Ren\u00e9e O'Neil, said: \"It's over!\" and left.\nThe 10\u00a0km race "
    "started at 9:30 a.m. on 4\u202fJuly 1999; 1,234 runners finished it. Later that year the "
    "city council of Z\u00fcrich voted to build a new stadium near the lake, costing about "
    "CHF 120 million, which opened in 2004 with a concert by the Berlin Philharmonic. "
    "Critics called the building \u201cbold but unfinished-looking\u201d, a phrase that stuck.")
SHORT_CONTEXT = "\u5317\u4eac is the capital of China.  Its population is 21.5 million people."
UNANSWERABLE_CONTEXT = "Cats sleep for about sixteen hours a day, more than most mammals."


def _qa(qas_id, question, context, answer, occurrence=0, impossible=None):
  """A SQuAD question whose answer is the `occurrence`-th `answer` in `context`."""
  qa = {"id": qas_id, "question": question, "answers": []}
  if answer is not None:
    start = -1
    for _ in range(occurrence + 1):
      start = context.index(answer, start + 1)
    qa["answers"] = [{"text": answer, "answer_start": start}]
  if impossible is not None:
    qa["is_impossible"] = impossible
  return qa


def _questions(version_2):
  flag = False if version_2 else None
  long_qas = [
      _qa("q-born", "What year was John Smith born?", LONG_CONTEXT, "1895", impossible=flag),
      _qa("q-japan", "Which country's electronics industry?", LONG_CONTEXT, "Japan",
          impossible=flag),
      _qa("q-cafe", "Who owns the CAF\u00c9?", LONG_CONTEXT, "Ren\u00e9e O'Neil",
          impossible=flag),
      _qa("q-steve", "Whose brother was the owner?", LONG_CONTEXT, "Steve Smith",
          impossible=flag),
      _qa("q-city", "Where did he live?", LONG_CONTEXT, "Z\u00fcrich, Switzerland",
          impossible=flag),
      _qa("q-nbsp", "How long was the race?", LONG_CONTEXT, "10\u00a0km", impossible=flag),
      _qa("q-long", "In what year did the new stadium near the lake, which the city council "
          "voted to build after the race and which cost a lot, open to the public?",
          LONG_CONTEXT, "2004", impossible=flag),
      _qa("q-quote", "What did critics call it?", LONG_CONTEXT,
          "bold but unfinished-looking", impossible=flag),
      _qa("q-zurich2", "Whose council voted?", LONG_CONTEXT, "Z\u00fcrich", occurrence=1,
          impossible=flag),
  ]
  short_qas = [
      _qa("q-capital", "What is the capital of China?", SHORT_CONTEXT, "\u5317\u4eac",
          impossible=flag),
      _qa("q-pop", "How many people?", SHORT_CONTEXT, "21.5 million", impossible=flag),
  ]
  articles = [{"title": "Long", "paragraphs": [{"context": LONG_CONTEXT, "qas": long_qas}]},
              {"title": "Short", "paragraphs": [{"context": SHORT_CONTEXT, "qas": short_qas}]}]
  if version_2:
    articles[1]["paragraphs"].append({"context": UNANSWERABLE_CONTEXT, "qas": [
        _qa("q-none", "How long do dogs sleep?", UNANSWERABLE_CONTEXT, None, impossible=True),
        _qa("q-cats", "How long do cats sleep?", UNANSWERABLE_CONTEXT, "about sixteen hours",
            impossible=False)]})
    short_qas.append(_qa("q-none2", "What is the capital of Japan?", SHORT_CONTEXT, None,
                         impossible=True))
  return {"version": "v2.0" if version_2 else "1.1", "data": articles}


# name: (version_2, is_training, do_lower_case, max_seq_length, doc_stride,
#        max_query_length, n_best_size, max_answer_length, null_score_diff_threshold)
CASES = {
    "v1_train": (False, True, True, 48, 12, 10, None, None, None),
    "v1_predict": (False, False, True, 48, 12, 10, 5, 6, None),
    "v1_predict_cased": (False, False, False, 40, 7, 8, 20, 30, None),
    "v2_train": (True, True, True, 40, 9, 8, None, None, None),
    "v2_predict": (True, False, True, 48, 12, 10, 8, 5, 0.0),
    "v2_predict_threshold": (True, False, True, 64, 20, 24, 6, 3, -1.5),
}
FINAL_TEXT_CASES = [
    ("steve smith", "Steve Smith's", True), ("1895", "(1895-1943).", True),
    ("renee o ' neil", "Ren\u00e9e O'Neil,", True), ("zurich", "Z\u00fcrich,", True),
    ("Ren\u00e9e", "Ren\u00e9e O'Neil", False), ("japan", "Japanese", True),
    ("21 . 5 million", "21.5 million", True), ("nothing", "something else", True),
    ("", "anything", True), ("\u5317\u4eac", "\u5317\u4eac", True),
]

ORACLE_SCRIPT = """
import dataclasses, json, os, sys
import numpy as np
import original_bert
from bert import run_squad, tokenization
FLAGS = run_squad.FLAGS
params = json.load(open(sys.argv[1]))
out_dir = sys.argv[2]
logits = np.load(params["logits"])
FIELDS = ("unique_id", "example_index", "doc_span_index", "tokens", "token_to_orig_map",
          "token_is_max_context", "input_ids", "input_mask", "segment_ids", "start_position",
          "end_position", "is_impossible")
EXAMPLE_FIELDS = ("qas_id", "question_text", "doc_tokens", "orig_answer_text",
                  "start_position", "end_position", "is_impossible")
for name, case in params["cases"].items():
  (version_2, is_training, lower, max_seq_length, doc_stride, max_query_length, n_best,
   max_answer, threshold) = case
  FLAGS.version_2_with_negative = version_2
  FLAGS.verbose_logging = True
  tokenizer = tokenization.FullTokenizer(params["vocab"], do_lower_case=lower)
  examples = run_squad.read_squad_examples(params["files"][str(version_2)], is_training)
  features = []
  run_squad.convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride,
                                         max_query_length, is_training, features.append)
  with open(os.path.join(out_dir, name + ".json"), "w") as f:
    json.dump({"examples": [{k: getattr(e, k) for k in EXAMPLE_FIELDS} for e in examples],
               "features": [{k: getattr(x, k) for k in FIELDS} for x in features]}, f)
  if n_best is None:
    continue
  FLAGS.null_score_diff_threshold = threshold if threshold is not None else 0.0
  results = [run_squad.RawResult(unique_id=x.unique_id,
                                 start_logits=[float(v) for v in logits[name + "_start"][i].flat],
                                 end_logits=[float(v) for v in logits[name + "_end"][i].flat])
             for i, x in enumerate(features)]
  case_dir = os.path.join(out_dir, name)
  os.makedirs(case_dir)
  run_squad.write_predictions(
      examples, features, results, n_best, max_answer, lower,
      os.path.join(case_dir, "predictions.json"), os.path.join(case_dir, "nbest_predictions.json"),
      os.path.join(case_dir, "null_odds.json"))
final = [run_squad.get_final_text(p, o, lower) for p, o, lower in params["final_text"]]
with open(os.path.join(out_dir, "final_text.json"), "w") as f:
  json.dump(final, f)
"""


def _random_logits(features, max_seq_length, version_2, seed):
  """start/end logits float32 [N, S]; a third of the rows favour [CLS].

  For 2.0 the question and padding get low logits, as from a trained model: the
  original fails on an example without any valid span.
  """
  rng = np.random.RandomState(seed)
  outside = np.array([[s == 0 and i > 0 for i, s in enumerate(f.segment_ids)]
                      for f in features]) | (np.array([f.input_mask for f in features]) == 0)
  logits = []
  for _ in ("start", "end"):
    values = rng.normal(0.0, 2.0, size=[len(features), max_seq_length]).astype(np.float32)
    values[::3, 0] += 6.0
    if version_2:
      values[outside] -= 8.0
    logits.append(values)
  return logits


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
  """The SQuAD files, the logits, and the original's outputs for every case."""
  from conftest import MINILM_DIR  # pylint: disable=import-outside-toplevel
  vocab = os.path.join(MINILM_DIR, "vocab.txt")
  if not os.path.isfile(vocab):
    pytest.skip(f"../shared is absent: no vocabulary at {vocab}")
  root = tmp_path_factory.mktemp("squad_data")
  files = {}
  for version_2 in (False, True):
    path = root / f"squad_{'v2' if version_2 else 'v1'}.json"
    path.write_text(json.dumps(_questions(version_2), ensure_ascii=False), encoding="utf-8")
    files[str(version_2)] = str(path)
  workspace = {"root": root, "vocab": vocab, "files": files}
  logits = {}
  for seed, (name, case) in enumerate(sorted(CASES.items())):
    if case[6] is not None:
      _, features = _ours(workspace, name)
      logits[f"{name}_start"], logits[f"{name}_end"] = _random_logits(features, case[3], case[0],
                                                                      seed)
  np.savez(root / "logits.npz", **logits)
  params = {"vocab": vocab, "files": files, "cases": CASES, "logits": str(root / "logits.npz"),
            "final_text": FINAL_TEXT_CASES}
  (root / "params.json").write_text(json.dumps(params))
  original_dir = root / "original"
  original_dir.mkdir()
  oracle.run(ORACLE_SCRIPT, root / "params.json", original_dir)
  return dict(workspace, logits=logits, original=original_dir)


def _ours(workspace, name):
  """Our examples and features for a case, as the oracle dumps them."""
  version_2, is_training, lower, max_seq_length, doc_stride, max_query_length = CASES[name][:6]
  tokenizer = FullTokenizer(workspace["vocab"], do_lower_case=lower)
  examples = squad_data.read_squad_examples(workspace["files"][str(version_2)], is_training,
                                            version_2)
  features = squad_data.convert_examples_to_features(examples, tokenizer, max_seq_length,
                                                     doc_stride, max_query_length, is_training)
  return examples, features


@pytest.mark.parametrize("name", sorted(CASES))
def test_examples_and_features_as_the_original(workspace, name):
  examples, features = _ours(workspace, name)
  original = json.loads((workspace["original"] / f"{name}.json").read_text())
  ours = json.loads(json.dumps({"examples": [dataclasses.asdict(e) for e in examples],
                                "features": [dataclasses.asdict(f) for f in features]}))
  assert ours["examples"] == original["examples"]
  assert len(ours["features"]) == len(original["features"])
  for our_feature, original_feature in zip(ours["features"], original["features"]):
    assert our_feature == original_feature
  # The inputs are varied enough to exercise what they are meant to.
  assert max(f.doc_span_index for f in features) >= 2
  if CASES[name][1]:  # training
    assert "q-nbsp" not in [e.qas_id for e in examples]  # skipped, as the original
    assert {f.start_position for f in features} - {0}  # answers inside spans
    assert any(f.start_position == 0 and not f.is_impossible for f in features)


@pytest.mark.parametrize("name", sorted(n for n, case in CASES.items() if case[6] is not None))
def test_predictions_as_the_original(workspace, name, tmp_path):
  version_2, _, lower, max_seq_length = CASES[name][:4]
  n_best_size, max_answer_length, threshold = CASES[name][6:]
  examples, features = _ours(workspace, name)
  logits = workspace["logits"]
  results = [squad_predictions.RawResult(f.unique_id, logits[f"{name}_start"][i],
                                  logits[f"{name}_end"][i])
             for i, f in enumerate(features)]
  predictions, nbest, null_odds = squad_predictions.predict_answers(
      examples, features, results, n_best_size, max_answer_length, lower, version_2,
      threshold or 0.0)
  written = squad_predictions.write_predictions(str(tmp_path), predictions, nbest, null_odds)
  names = ["predictions.json", "nbest_predictions.json"] + (["null_odds.json"] if version_2
                                                             else [])
  assert [os.path.basename(p) for p in written] == names
  for file_name in names:
    ours = (tmp_path / file_name).read_text()
    assert ours == (workspace["original"] / name / file_name).read_text(), file_name
  assert all(len(entries) <= n_best_size + version_2 for entries in nbest.values())
  if version_2:
    assert "" in predictions.values() and set(predictions.values()) - {""}
  if name == "v1_predict":  # No valid span in the top 5: the original's nonce answer.
    assert predictions["q-capital"] == "empty"


def test_final_text_as_the_original(workspace):
  original = json.loads((workspace["original"] / "final_text.json").read_text())
  ours = [squad_predictions.get_final_text(p, o, lower) for p, o, lower in FINAL_TEXT_CASES]
  assert ours == original
  assert ours[:2] == ["Steve Smith", "1895"]


def test_get_final_text_without_the_oracle():
  assert squad_predictions.get_final_text("steve smith", "Steve Smith's", True) == "Steve Smith"
  assert squad_predictions.get_final_text("zurich", "Z\u00fcrich,", True) == "Z\u00fcrich"
  assert squad_predictions.get_final_text("japan", "Japanese", True) == "Japan"
  # Alignment failures return the original words whole.
  assert squad_predictions.get_final_text("dog", "The cat.", True) == "The cat."
  assert squad_predictions.get_final_text("cafe", "Caf\u00e9", False) == "Caf\u00e9"


def test_doc_spans_and_max_context():
  spans = squad_data.doc_spans(10, 4, 3)
  assert spans == [(0, 4), (3, 4), (6, 4)]
  assert squad_data.doc_spans(4, 4, 3) == [(0, 4)]
  assert squad_data.doc_spans(5, 4, 10) == [(0, 4), (4, 1)]  # the stride is capped by the span
  # Piece 3: span 0 (left 3, right 0) and span 1 (0, 3) tie at 0.04: the first wins.
  assert squad_data.max_context_spans(spans, 10) == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]


def _write(tmp_path, contents):
  path = tmp_path / "squad.json"
  path.write_text(contents if isinstance(contents, str) else json.dumps(contents))
  return str(path)


def _one_question(qa, context="The cat sat on the mat."):
  return {"data": [{"paragraphs": [{"context": context, "qas": [qa]}]}]}


def test_malformed_json_names_the_file(tmp_path):
  path = _write(tmp_path, '{"data": [')
  with pytest.raises(ValueError, match=rf"{path}: not valid JSON: .* line 1 column 11"):
    squad_data.read_squad_examples(path, False)
  with pytest.raises(ValueError, match=rf"{path}: expected a SQuAD JSON object"):
    squad_data.read_squad_examples(_write(tmp_path, "[1, 2]"), False)
  with pytest.raises(FileNotFoundError, match="SQuAD file not found: .*absent.json"):
    squad_data.read_squad_examples(str(tmp_path / "absent.json"), True)


def test_missing_keys_are_named(tmp_path):
  path = _write(tmp_path, {"data": [{"paragraphs": [{"qas": []}]}]})
  with pytest.raises(ValueError, match=r"data\[0\].paragraphs\[0\]: missing 'context'"):
    squad_data.read_squad_examples(path, False)
  path = _write(tmp_path, _one_question({"id": "q7", "answers": []}))
  with pytest.raises(ValueError, match="question q7: missing 'question'"):
    squad_data.read_squad_examples(path, False)


@pytest.mark.parametrize("answer, message", [
    ({"text": "dog", "answer_start": 4},
     "question q1: the answer 'dog' is not at answer_start=4 of the context, which has 'cat'"),
    ({"text": "mat", "answer_start": 40}, "question q1: answer_start=40 is not a character"),
    ({"text": "mat", "answer_start": -3}, "question q1: answer_start=-3 is not a character"),
    ({"text": "", "answer_start": 0}, "question q1: the answer text is empty"),
    ({"text": "mat"}, "question q1: answers\\[0\\]: missing 'answer_start'"),
])
def test_answer_not_in_context_names_the_question(tmp_path, answer, message):
  path = _write(tmp_path, _one_question({"id": "q1", "question": "?", "answers": [answer]}))
  with pytest.raises(ValueError, match=rf"{path}: {message}"):
    squad_data.read_squad_examples(path, True)
  assert len(squad_data.read_squad_examples(path, False)) == 1  # answers unused


def test_training_answer_counts(tmp_path):
  two = {"id": "q2", "question": "?", "answers": [{"text": "cat", "answer_start": 4}] * 2}
  with pytest.raises(ValueError, match="question q2: .*exactly 1 answer, found 2"):
    squad_data.read_squad_examples(_write(tmp_path, _one_question(two)), True)
  none = {"id": "q3", "question": "?", "answers": [], "is_impossible": True}
  path = _write(tmp_path, _one_question(none))
  with pytest.raises(ValueError, match="question q3: .*found 0 .*read the file as 2.0"):
    squad_data.read_squad_examples(path, True)
  example, = squad_data.read_squad_examples(path, True, version_2_with_negative=True)
  assert (example.is_impossible, example.start_position, example.orig_answer_text) == (
      True, -1, "")
  no_flag = {"id": "q4", "question": "?", "answers": []}
  with pytest.raises(ValueError, match="question q4: missing 'is_impossible'"):
    squad_data.read_squad_examples(_write(tmp_path, _one_question(no_flag)), True, True)


def test_answer_lost_in_the_word_split_is_skipped_with_a_warning(tmp_path, caplog):
  qa = {"id": "q5", "question": "?", "answers": [{"text": "10\u00a0km", "answer_start": 4}]}
  path = _write(tmp_path, _one_question(qa, "The 10\u00a0km race."))
  with caplog.at_level(logging.WARNING):
    assert squad_data.read_squad_examples(path, True) == []
  assert "question q5: skipped" in caplog.text


def test_gold_answers(tmp_path):
  qa = {"id": "q6", "question": "?", "answers": [{"text": "cat", "answer_start": 4},
                                                {"text": "the cat", "answer_start": 0}]}
  test_qa = {"id": "q7", "question": "?"}
  data = _one_question(qa)
  data["data"][0]["paragraphs"][0]["qas"].append(test_qa)
  assert squad_data.read_gold_answers(_write(tmp_path, data)) == {"q6": ["cat", "the cat"],
                                                                  "q7": []}


def test_feature_arrays(workspace):
  _, features = _ours(workspace, "v2_train")
  arrays = squad_data.feature_arrays(features, True)
  assert sorted(arrays) == ["end_positions", "input_ids", "input_mask", "segment_ids",
                            "start_positions"]
  assert arrays["input_ids"].shape == (len(features), 40)
  assert arrays["input_ids"].dtype == np.int32
  assert arrays["start_positions"].tolist() == [f.start_position for f in features]
  assert sorted(squad_data.feature_arrays(features, False)) == ["input_ids", "input_mask",
                                                                "segment_ids"]
  examples, _ = _ours(workspace, "v2_train")
  streamed = squad_data.feature_arrays(squad_data.iter_features(
      examples, FullTokenizer(workspace["vocab"]), 40, 9, 8, True), True)
  for name, values in arrays.items():
    np.testing.assert_array_equal(streamed[name], values)
