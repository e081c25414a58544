"""The TFLite NER export: raw text in, the tags of the SavedModel (windows included) out, in
TFLite and LiteRT (a fresh process importing nothing of ours); bad input; run_ner.py's file
against its --do_predict."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from modeling.tasks import ner, ner_serving, ner_tflite_export, tflite_export
from test_run_ner import _read_columns, run_ner, trained, workspace  # noqa: F401  (fixtures)
from test_convert_export import convert_export
from test_tflite_export import interpreter
from tiny import tiny_config

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "went", "to", "paris",
         "john", "lives", "in", "rome", ".", ",", "!", "##s", "##ed", "a"]
LABELS = ["B-LOC", "B-PER", "I-PER", "O"]
MAX_SEQ_LENGTH, STRIDE = 12, 4  # Windows of 10 pieces, 4 apart: long texts get several.
# Bad input that both read alike: the whitespace of the SavedModel's split (of several
# bytes too), words of no piece ([UNK]), long words, emoji, accents, texts of many windows.
AGREEING = ["John lives in Rome.", "", "   \t\n ", "the cat went to paris, john!",
            " ".join(["the cats went to rome"] * 12), "the 😀 cat 👍🏽!", "Thé ÇAT \u200b in",
            "x" * 201 + " rome", "\u0301 lives", "rome\u00a0paris\u3000\u3000the\u2028cat",
            "é\u2009à\u202fthe\u205f john"]
# Where they differ (docs/deploy.md): control characters split a word's pieces in the fast
# tokenizer (a NUL, \x0b, \x0c and U+0085 are inside a word in both), invalid UTF-8 makes a
# word [UNK].
DIFFERING = ["ca\x00t sa\x07t".encode(), "the\x85cat\x0brome the".encode(),
             b"the c\xc3at \xff\xfe"]


def _char_spans(text):
  """(start, end) characters of the words of a str split at the SavedModel's whitespace."""
  separators = "".join(c for c in map(chr, range(0x3001)) if ner_tflite_export.whitespace_config()
                       [ord(c) // 8] >> ord(c) % 8 & 1)
  assert set(separators) >= set("\t\n\r \u00a0\u3000\u2028") and "\x0b" not in separators
  return [match.span() for match in re.finditer(f"[^{re.escape(separators)}]+", text)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """A tiny tagger, its TFLite server and the .tflite file (fp32)."""
  root = tmp_path_factory.mktemp("ner_tflite")
  (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
  tf.random.set_seed(2)
  # A wide initializer, so that the tags vary with the words and their context.
  model = ner.NerModel(tiny_config(vocab_size=len(VOCAB), initializer_range=0.5), len(LABELS))
  server = ner_tflite_export.TfliteTagger(model, str(root / "vocab.txt"), True, MAX_SEQ_LENGTH,
                                          STRIDE, LABELS)
  path = tflite_export.export(server, str(root / "ner.tflite"))
  return root, model, server, path


def _tag(path, texts):
  return interpreter(path).get_signature_runner()(text=np.array(texts, dtype=object))


def test_tflite_tags_as_the_saved_model_server(exported):
  root, model, server, path = exported
  texts = [text.encode() for text in AGREEING] + DIFFERING
  lite = _tag(path, texts)
  graph = server.tag(tf.constant(texts))
  # The .tflite file computes what its graph computes, on every input.
  for name in ("tags", "tag_ids", "word_start", "word_end", "num_words", "entity_type",
               "entity_start", "entity_end", "num_entities"):
    np.testing.assert_array_equal(lite[name], graph[name].numpy(), err_msg=name)
  for name in ("scores", "entity_score"):
    np.testing.assert_allclose(lite[name], graph[name], atol=1e-5, err_msg=name)
  # And, where the tokenizers agree, the SavedModel's tags, word by word.
  saved_model_server = ner_serving.NerServer(model, str(root / "vocab.txt"), True,
                                             MAX_SEQ_LENGTH, STRIDE, LABELS)
  saved_model = saved_model_server.tag(tf.constant(AGREEING))
  for i, text in enumerate(AGREEING):
    count = int(saved_model["num_words"][i])
    assert int(lite["num_words"][i]) == count, text
    assert list(lite["tags"][i, :count]) == list(saved_model["tags"][i, :count].numpy()), text
    spans = list(zip(lite["word_start"][i, :count], lite["word_end"][i, :count]))
    assert spans == _char_spans(text), text
    entities = int(saved_model["num_entities"][i])
    assert int(lite["num_entities"][i]) == entities, text
    for name in ("entity_type", "entity_start", "entity_end"):
      assert list(lite[name][i, :entities]) == list(saved_model[name][i, :entities].numpy()), \
          (name, text)
    np.testing.assert_allclose(lite["entity_score"][i, :entities],
                               saved_model["entity_score"][i, :entities], atol=1e-5)
    assert set(lite["tag_ids"][i, count:]) <= {-1} and set(lite["tags"][i, count:]) <= {b""}
  assert len(set(lite["tags"].ravel()) - {b""}) >= 3  # The tags vary: the check can fail.
  assert sum(lite["num_entities"]) >= 10 and max(lite["entity_end"].ravel()) > 20
  assert lite["num_words"][4] == 60  # 72 pieces: 17 windows.
  assert lite["num_words"][len(AGREEING)] == 2 and lite["word_end"][len(AGREEING) + 1, 0] == 12


def test_batches_of_any_size_and_no_words(exported):
  _, _, server, path = exported
  tag = interpreter(path).get_signature_runner()
  for texts in (["rome"], ["", "  "], ["john went to paris"] * 5):
    lite = tag(text=np.array(texts, dtype=object))
    graph = server.tag(tf.constant(texts))
    np.testing.assert_array_equal(lite["tags"], graph["tags"].numpy())
  assert lite["tags"].shape == (5, 4)
  # No word in the batch: one padding column (the interpreter cannot return an empty one).
  lite = tag(text=np.array(["", " "], dtype=object))
  assert lite["tags"].tolist() == [[b""], [b""]] and lite["num_words"].tolist() == [0, 0]
  assert lite["entity_type"].tolist() == [[b""], [b""]] and lite["num_entities"].tolist() == [0, 0]
  # An empty batch is refused with an error (the interpreter lives on), not answered.
  with pytest.raises(RuntimeError):
    tag(text=np.array([], dtype=object))
  assert tag(text=np.array(["the cat"], dtype=object))["num_words"].tolist() == [2]


def test_dynamic_int8_is_smaller_and_tags_alike(exported):
  root, _, server, path = exported
  int8 = tflite_export.convert(server, "dynamic")
  assert len(int8) < os.path.getsize(path)
  (root / "int8.tflite").write_bytes(int8)
  texts = AGREEING[:5]
  lite, graph = _tag(str(root / "int8.tflite"), texts), server.tag(tf.constant(texts))
  valid = graph["tag_ids"].numpy() >= 0
  assert np.mean(lite["tags"][valid] == graph["tags"].numpy()[valid]) >= 0.9


LITERT_SCRIPT = """
import json, sys
import numpy as np
from ai_edge_litert.interpreter import InterpreterWithCustomOps
from tensorflow_text import tflite_registrar
interpreter = InterpreterWithCustomOps(custom_op_registerers=tflite_registrar.SELECT_TFTEXT_OPS,
                                       model_path=sys.argv[1])
texts = json.load(open(sys.argv[2], encoding="utf-8"))
outputs = interpreter.get_signature_runner()(text=np.array(texts))
assert not [name for name in sys.modules if name.split(".")[0] in ("modeling", "tests")]
print(json.dumps([[t.decode() for t in tags[:n]]
                  for tags, n in zip(outputs["tags"], outputs["num_words"])]))
"""


@pytest.mark.slow
def test_run_ner_writes_a_file_that_tags_as_do_predict(trained, workspace, tmp_path):
  """run_ner.py --export_tflite alone beside the fine-tuned run's checkpoint, and
  convert_export.py from the run's SavedModel: each file, in LiteRT in a fresh process,
  tags the raw test sentences as that run's --do_predict."""
  output_dir, export_dir = trained
  tflite_path, converted_path = tmp_path / "ner.tflite", tmp_path / "converted.tflite"
  run_ner(workspace, output_dir, "--doc_stride=6", f"--export_tflite={tflite_path}")
  # The same file from the run's SavedModel alone (its --doc_stride=6 inside).
  convert_export(f"--from_export_dir={export_dir}", f"--export_tflite={converted_path}")
  predicted = _read_columns(output_dir / "test_predictions.txt")
  texts = [" ".join(c[0] for c in sentence) for sentence in predicted] + ["", "   "]
  (tmp_path / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
  for path in (tflite_path, converted_path):
    result = subprocess.run([sys.executable, "-c", LITERT_SCRIPT, str(path),
                             str(tmp_path / "texts.json")], capture_output=True, text=True,
                            cwd=tmp_path, env={k: v for k, v in os.environ.items()
                                               if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served == [[c[1] for c in sentence] for sentence in predicted] + [[], []], path
  assert any(len(s) > 14 for s in predicted)  # some test sentences needed several windows
  # ALBERT's SentencePiece is refused by name, before any work.
  result = run_ner(workspace, tmp_path / "out2", "--do_train", "--spm_model_file=x.model",
                   f"--export_tflite={tflite_path}", check=False)
  assert "--export_tflite is not supported with --spm_model_file" in result.stderr
  assert not (tmp_path / "out2").exists()
