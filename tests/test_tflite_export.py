"""The TFLite classifier export: raw text in, as the SavedModel, in TFLite and LiteRT
(WordPiece, and ALBERT's SentencePiece)."""

import csv
import os
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
import tensorflow as tf

from modeling import BertConfig
from modeling.data import classifier_data
from modeling.data.graph_packing import pack_inputs
from modeling.data.sentencepiece_tokenization import SentencePieceTokenizer
from modeling.data.tokenization import FullTokenizer
from modeling.tasks import onnx_export, serving, tflite_export
from modeling.tasks.classifier import ClassifierModel
from modeling.tasks.tflite_sentencepiece import FastSentencePieceTokenizer
from test_albert import ALBERT_TINY
# Fixtures: SentencePiece models of the shared corpus and of digits joined to commas.
from test_albert_tokenization import corpus_model, digits_model  # noqa: F401
from test_run_classifier import run_classifier, workspace  # noqa: F401  (workspace: a fixture)
from tiny import tiny_config

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far", "away", "computer",
         "program", "code", "vote", "law", ".", ",", "!", "(", ")", "e", "x", "y", "z"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["##s", "##ed", "##e"]
LABELS = ["art", "computers", "politics"]
MAX_SEQ_LENGTH = 24
BUCKETS = (8, 16, 24)
# Bad input that the fast tokenizer reads as FullTokenizer does.
AGREEING = ["the cat sat on the mat.", "", "   \t\n ", "dog " * 10_000, "the 😀 cat 👍🏽!",
            "Thé ÇAT, (sát)", "a computer program", "x" * 201 + " law"]
# Bad input where it differs (docs/deploy.md): control characters split a word
# instead of vanishing; an invalid UTF-8 byte makes its word [UNK] instead of vanishing.
DIFFERING = ["ca\x00t sa\x07t".encode(), "the\x85cat".encode(), b"the c\xc3at \xff\xfe"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """A tiny classifier, its TFLite server and the .tflite file (fp32, bucketed)."""
  root = tmp_path_factory.mktemp("tflite")
  (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
  tf.random.set_seed(1)
  # A wide initializer, so that every piece of the input moves the probabilities.
  model = ClassifierModel(tiny_config(vocab_size=len(VOCAB), initializer_range=0.5),
                          len(LABELS))
  server = tflite_export.TfliteClassifier(model, str(root / "vocab.txt"), True, MAX_SEQ_LENGTH,
                                          LABELS, buckets=BUCKETS)
  path = tflite_export.export(server, str(root / "model.tflite"))
  return root, model, server, path


def interpreter(path):
  # pylint: disable-next=import-outside-toplevel
  from tensorflow.lite.python.interpreter import InterpreterWithCustomOps
  import tensorflow_text  # pylint: disable=import-outside-toplevel
  return InterpreterWithCustomOps(
      custom_op_registerers=tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS, model_path=path)


def test_tflite_classifies_as_the_saved_model_server(exported):
  root, model, server, path = exported
  saved_model_server = serving.ClassifierServer(model, str(root / "vocab.txt"), True,
                                                MAX_SEQ_LENGTH, LABELS, buckets=BUCKETS)
  classify = interpreter(path).get_signature_runner("classify")
  texts = np.array([text.encode() for text in AGREEING] + DIFFERING, dtype=object)
  lite = classify(text_a=texts)
  graph = server.classify(tf.constant(texts))
  # The .tflite file computes what its graph computes, on every input.
  np.testing.assert_allclose(lite["probabilities"], graph["probabilities"], atol=1e-5)
  assert list(lite["label"]) == list(graph["label"].numpy())
  # And, where the tokenizers agree, what the SavedModel computes.
  agreeing = tf.constant(texts[:len(AGREEING)])
  expected = saved_model_server.classify(agreeing)["probabilities"].numpy()
  np.testing.assert_allclose(lite["probabilities"][:len(AGREEING)], expected, atol=1e-4)
  assert np.ptp(expected[:, 0]) > 0.05  # The inputs move the output: the check can fail.
  for ids_fast, ids_full in zip(
      pack_inputs(server.tokenizer.tokenize(agreeing), None, MAX_SEQ_LENGTH, 2, 3),
      pack_inputs(saved_model_server.tokenizer(agreeing), None, MAX_SEQ_LENGTH, 2, 3)):
    np.testing.assert_array_equal(ids_fast, ids_full)


def test_pairs_and_batches_of_any_size(exported):
  root, model, server, path = exported
  saved_model_server = serving.ClassifierServer(model, str(root / "vocab.txt"), True,
                                                MAX_SEQ_LENGTH, LABELS, buckets=BUCKETS)
  classify_pair = interpreter(path).get_signature_runner("classify_pair")
  for size in (1, 5):
    text_a = np.array(["the cat", "a dog ran far away " * 4, "", "law", "code ."][:size],
                      dtype=object)
    text_b = np.array(["sat on the mat", "", "vote", "dog " * 30, "(x)"][:size], dtype=object)
    lite = classify_pair(text_a=text_a, text_b=text_b)["probabilities"]
    expected = saved_model_server.classify_pair(tf.constant(text_a, tf.string),
                                                tf.constant(text_b, tf.string))
    assert lite.shape == (size, len(LABELS))
    np.testing.assert_allclose(lite, expected["probabilities"], atol=1e-4)
  # An empty batch is refused with an error (the interpreter lives on), not answered.
  empty = np.array([], dtype=object)
  with pytest.raises(RuntimeError, match="NumElements"):
    classify_pair(text_a=empty, text_b=empty)
  assert classify_pair(text_a=text_a[:1], text_b=text_b[:1])["probabilities"].shape == (1, 3)


LITERT_SCRIPT = """
import sys
import numpy as np
from ai_edge_litert.interpreter import InterpreterWithCustomOps
from tensorflow_text import tflite_registrar
interpreter = InterpreterWithCustomOps(custom_op_registerers=tflite_registrar.SELECT_TFTEXT_OPS,
                                       model_path=sys.argv[1])
outputs = interpreter.get_signature_runner("classify")(text_a=np.array(sys.argv[2:]))
assert not [name for name in sys.modules if name.split(".")[0] in ("modeling", "tests")]
print(" ".join(label.decode() for label in outputs["label"]))
print(" ".join(repr(float(p)) for p in outputs["probabilities"].ravel()))
"""


def test_dynamic_int8_is_smaller_and_close(exported):
  _, _, server, path = exported
  int8 = tflite_export.convert(server, "dynamic")
  # TFLite quantizes matmul weights of 1024 elements or more to a quarter of their
  # bytes; measured here: half the bytes of such variables saved (the tokenizer's
  # tables make up most of a tiny model's file).
  quantizable = sum(4 * int(np.prod(v.shape)) for v in server.model.variables
                    if np.prod(v.shape) >= 1024)
  assert os.path.getsize(path) - len(int8) > 0.4 * quantizable
  texts = np.array(AGREEING[:3] + ["a computer program", "vote law ."], dtype=object)
  (exported[0] / "int8.tflite").write_bytes(int8)
  lite = interpreter(str(exported[0] / "int8.tflite")).get_signature_runner("classify")(
      text_a=texts)
  np.testing.assert_allclose(lite["probabilities"],
                             server.classify(tf.constant(texts))["probabilities"], atol=0.05)


def test_refusals(exported):
  root, _, server, _ = exported
  with pytest.raises(ValueError, match="tflite_quantization='int4'"):
    tflite_export.convert(server, "int4")
  regression = ClassifierModel(tiny_config(vocab_size=len(VOCAB)), 1, is_regression=True)
  with pytest.raises(ValueError, match="regression"):
    tflite_export.TfliteClassifier(regression, str(root / "vocab.txt"), True, 16, None)
  (root / "no_unk.txt").write_text("[CLS]\n[SEP]\nthe\n")
  with pytest.raises(ValueError, match="no_unk.txt has no \\[UNK\\]"):
    tflite_export.fast_tokenizer(str(root / "no_unk.txt"), True)


def _shared_sentences(shared_dir):
  """The topics texts and the WNUT 2017 sentences (words joined by spaces)."""
  texts = []
  for split in ("train", "dev"):
    with open(os.path.join(shared_dir, "data", "topics", f"{split}.tsv"),
              encoding="utf-8") as reader:
      texts += [row[1] for row in csv.reader(reader, delimiter="\t",
                                             quoting=csv.QUOTE_NONE)][1:]
    words = []
    with open(os.path.join(shared_dir, "data", "wnut17", f"{split}.conll"),
              encoding="utf-8") as reader:
      for line in list(reader) + [""]:
        if line.strip():
          words.append(line.split("\t")[0])
        elif words:
          texts.append(" ".join(words))
          words = []
  return texts


def _documented_kind(char):
  """Whether `char` is of a kind docs/deploy.md lists as read differently."""
  return (unicodedata.category(char) in ("Cc", "Cf", "Cn")
          or unicodedata.normalize("NFKD", char) != unicodedata.normalize("NFD", char))


def test_fast_tokenizer_parity_on_the_shared_text(shared_dir, minilm_dir):
  vocab_file = os.path.join(minilm_dir, "vocab.txt")
  fast, _ = tflite_export.fast_tokenizer(vocab_file, True)
  full = FullTokenizer(vocab_file, True)
  texts = _shared_sentences(shared_dir)
  assert len(texts) > 7000
  differing = [text for text, ids in zip(texts, fast.tokenize(tf.constant(texts)).to_list())
               if ids != full.convert_tokens_to_ids(full.tokenize(text))]
  # Measured: 5 of 7,260 (docs/deploy.md), each with a character of a listed kind.
  assert len(differing) <= 5, differing
  for text in differing:
    assert any(_documented_kind(char) for char in text), text


# ALBERT's SentencePiece, uncased: text the TFLite tokenizer reads as the Python one, digits
# joined to commas (ALBERT's re-encoding) and the bad input above among them.
ALBERT_AGREEING = ["in 1999, we x7, y ab12, b $99, ok zz12, q", "$99, and 1999, then x1,2 ",
                   "Héllo  WORLD café ``quoted'' ①,", "\u00a0a\u2003b\u3000 ﬁne ²,  tab\there\n",
                   "", "   \t\n ", "the cat " * 1000, "Thé ÇAT, (sát) 😀"]
# Where it differs (docs/deploy.md): control and format characters split a word;
# U+FE0F (category Mn, combining class 0) is dropped.
ALBERT_DIFFERING = ["ca\x00t sa\x07t", "x7,\u200by", "a\ufe0f b"]


@pytest.fixture(scope="module")
def albert_exported(digits_model, tmp_path_factory):
  """A tiny ALBERT classifier on a SentencePiece model with pieces such as "▁x7,", its
  TFLite server and the .tflite file (uncased, bucketed)."""
  spm_model_file, _ = digits_model
  vocab_size = len(SentencePieceTokenizer(spm_model_file).vocab)
  tf.random.set_seed(1)
  # Wide enough that every piece moves the probabilities, narrow enough not to saturate.
  model = ClassifierModel(BertConfig.from_dict(dict(ALBERT_TINY, vocab_size=vocab_size,
                                                    initializer_range=0.2)), len(LABELS))
  server = tflite_export.TfliteClassifier(model, None, True, MAX_SEQ_LENGTH, LABELS,
                                          spm_model_file, BUCKETS)
  path = tflite_export.export(server, str(tmp_path_factory.mktemp("albert") / "albert.tflite"))
  saved_model_server = serving.ClassifierServer(model, None, True, MAX_SEQ_LENGTH, LABELS,
                                                spm_model_file, BUCKETS)
  return saved_model_server, server, path


def test_albert_tflite_classifies_as_the_saved_model_server(albert_exported):
  saved_model_server, server, path = albert_exported
  with open(path, "rb") as reader:
    assert sorted(tflite_export.custom_ops(reader.read())) == [
        "FastBertNormalize", "TFText>FastSentencepieceTokenize"]
  lite = interpreter(path)
  texts = np.array([text.encode() for text in ALBERT_AGREEING + ALBERT_DIFFERING],
                   dtype=object)
  outputs = lite.get_signature_runner("classify")(text_a=texts)
  graph = server.classify(tf.constant(texts))
  np.testing.assert_allclose(outputs["probabilities"], graph["probabilities"], atol=1e-5)
  assert list(outputs["label"]) == list(graph["label"].numpy())
  agreeing = tf.constant(texts[:len(ALBERT_AGREEING)])
  expected = saved_model_server.classify(agreeing)["probabilities"].numpy()
  np.testing.assert_allclose(outputs["probabilities"][:len(ALBERT_AGREEING)], expected,
                             atol=1e-4)
  assert np.ptp(expected[:, 0]) > 0.05  # The inputs move the output: the check can fail.
  ids = server.tokenizer.tokenize(tf.constant(texts)).to_list()
  graph_ids = saved_model_server.tokenizer(tf.constant(texts)).to_list()
  assert ids[:len(ALBERT_AGREEING)] == graph_ids[:len(ALBERT_AGREEING)]
  assert all(a != b for a, b in zip(ids[len(ALBERT_AGREEING):],
                                    graph_ids[len(ALBERT_AGREEING):]))
  # The piece "▁x7," is re-encoded as ALBERT does: "▁x", "7", ",".
  vocab = server.tokenizer.vocab
  assert "▁x7," in vocab and server.tokenizer.tokenize(tf.constant(["x7,"])).to_list() == [
      [vocab["▁x"], vocab["7"], vocab[","]]]
  pair = lite.get_signature_runner("classify_pair")(text_a=texts[:3], text_b=texts[3:6])
  np.testing.assert_allclose(pair["probabilities"], saved_model_server.classify_pair(
      tf.constant(texts[:3]), tf.constant(texts[3:6]))["probabilities"], atol=1e-4)
  # A batch of no piece at all (the re-encoding's tensors are empty).
  empty = np.array([b"", b"  "], dtype=object)
  np.testing.assert_allclose(lite.get_signature_runner("classify")(text_a=empty)["probabilities"],
                             saved_model_server.classify(tf.constant(empty))["probabilities"],
                             atol=1e-4)


def _sentencepiece_kind(char, do_lower_case):
  """Whether `char` is of a kind docs/deploy.md lists as read differently by ALBERT's
  TFLite tokenizer: uncased, control, format and Mn characters; cased, characters
  whose NFKD holds combining marks (accents the Python tokenizer strips)."""
  if do_lower_case:
    return unicodedata.category(char) in ("Cc", "Cf", "Mn")
  return any(unicodedata.combining(c) for c in unicodedata.normalize("NFKD", char))


@pytest.mark.parametrize("do_lower_case, measured", [(True, 33), (False, 8)])
def test_fast_sentencepiece_parity_on_the_shared_text(shared_dir, corpus_model, do_lower_case,
                                                      measured):
  spm_model_file, _ = corpus_model
  fast = FastSentencePieceTokenizer(spm_model_file, do_lower_case)
  python = SentencePieceTokenizer(spm_model_file, do_lower_case)
  texts = _shared_sentences(shared_dir)
  assert len(texts) > 7000
  differing = [text for text, ids in zip(texts, fast.tokenize(tf.constant(texts)).to_list())
               if ids != python.convert_tokens_to_ids(python.tokenize(text))]
  # Measured: 33 of 7,260 uncased, 8 cased (docs/deploy.md), each with a listed kind.
  assert len(differing) == measured, differing
  for text in differing:
    assert any(_sentencepiece_kind(char, do_lower_case) for char in text), text


@pytest.mark.slow
def test_run_classifier_writes_both_files_as_do_predict(workspace, tmp_path):
  """--export_tflite (int8) and --export_onnx from run_classifier.py, checked against
  the same run's test_results.tsv."""
  import onnxruntime  # pylint: disable=import-outside-toplevel
  output_dir, tflite_path, onnx_path = tmp_path / "out", tmp_path / "m.tflite", tmp_path / "m.onnx"
  run_classifier(workspace, output_dir, "--do_train", "--do_predict", "--num_train_epochs=1",
                 "--train_batch_size=16", "--predict_batch_size=13", "--length_buckets=none",
                 f"--init_checkpoint={workspace / 'pretrained' / 'bert_model.ckpt'}",
                 f"--export_tflite={tflite_path}", "--tflite_quantization=dynamic",
                 f"--export_onnx={onnx_path}")
  predicted = np.loadtxt(output_dir / "test_results.tsv")
  processor = classifier_data.get_processor("tsv", str(workspace / "data"))
  examples = processor.get_examples(str(workspace / "data"), "test")
  arrays = classifier_data.to_arrays(examples, processor.get_labels(), 16,
                                     FullTokenizer(str(workspace / "vocab.txt")))
  session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
  served = session.run(None, {name: arrays[name] for name in onnx_export.INPUT_NAMES})[0]
  np.testing.assert_allclose(served, predicted, atol=1e-4)
  # The .tflite file alone, in LiteRT in a fresh process, labels the raw test text.
  result = subprocess.run([sys.executable, "-c", LITERT_SCRIPT, str(tflite_path),
                           *[e.text_a for e in examples]],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
  assert result.returncode == 0, result.stderr[-3000:]
  labels, probabilities = result.stdout.strip().splitlines()[-2:]
  probabilities = np.array(probabilities.split(), float).reshape(predicted.shape)
  np.testing.assert_allclose(probabilities, predicted, atol=0.05)  # int8
  expected_labels = [processor.get_labels()[i] for i in predicted.argmax(1)]
  assert np.mean(np.array(labels.split()) == expected_labels) >= 0.9
  # A quantization without its export is refused before any work.
  result = run_classifier(workspace, tmp_path / "out2", "--do_train",
                          "--onnx_quantization=dynamic", check=False)
  assert "--onnx_quantization=dynamic needs --export_onnx" in result.stderr
  assert not (tmp_path / "out2").exists()
