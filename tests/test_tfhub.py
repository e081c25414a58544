"""TF Hub / Kaggle BERT SavedModels in and out: `checkpoint.tfhub_import` and `tfhub_export`.

Oracles, in one subprocess (tests/tfhub_oracle.py, tf-keras): Model Garden's own TF Hub
exporter (`export_tfhub_lib.export_model`, as Google exported its TF Hub BERTs) for the
import, and `tensorflow_hub.KerasLayer` on our exports. Random weights, uneven sizes
(hidden 72, 2 layers, 4 heads, intermediate 150).
"""

import importlib.util
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from conftest import MINILM_DIR, SHARED_DIR
from modeling import BertConfig, BertModel
from modeling.checkpoint import layout
from modeling.checkpoint.loader import load
from modeling.checkpoint.tfhub_export import read_checkpoint, to_tfhub
from modeling.checkpoint.tfhub_import import from_tfhub, is_tfhub_savedmodel, read_tfhub
from modeling.data import classifier_data, tokenization
from modeling.model.heads import MaskedLMHead, NextSentenceHead

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
SIZES = dict(hidden_size=72, num_hidden_layers=2, num_attention_heads=4, intermediate_size=150,
             hidden_act="gelu", max_position_embeddings=40, type_vocab_size=3)
SMALL_VOCAB = (["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
               + list("abcdefghijklmnopqrstuvwxyz") + ["the", "##s", "##ing", "cat", "dog", ".",
                                                       ",", "!", "hub", "##b"])
SENTENCES = [("The cats sing!", "A dog."), ("hubs, the dog", ""), ("Ünïcode cat", "the b" * 30)]
ENCODER_OUTPUTS = ["sequence_output", "pooled_output", "default", "encoder_outputs_0",
                   "encoder_outputs_1", "mlm_logits"]


def _require_oracle():
  missing = [m for m in ("official", "tf_keras", "tensorflow_hub", "tensorflow_text")
             if importlib.util.find_spec(m) is None]
  if missing:
    pytest.skip(f"the TF Hub oracles need {', '.join(missing)} (pip install tensorflow-hub "
                "tf-keras 'setuptools<81'; tf-models-official==2.20.0 with --no-deps, "
                "gin-config tf-slim immutabledict)")


def _write_lines(path, lines):
  with open(path, "w", encoding="utf-8") as writer:
    writer.write("".join(f"{line}\n" for line in lines))
  return str(path)


def _random_checkpoint(directory, vocab_size, seed=0):
  """A random-weight checkpoint (encoder, pooler, masked-LM and next-sentence heads)."""
  config_file = directory / "bert_config.json"
  config_file.write_text(json.dumps({"vocab_size": vocab_size, **SIZES}))
  config = BertConfig.from_json_file(config_file)
  model = BertModel(config)
  heads = [MaskedLMHead(config, model.embedding_table), NextSentenceHead(config)]
  rng = np.random.RandomState(seed)
  for variable in model.variables + heads[0].variables + heads[1].variables:
    variable.assign(rng.normal(0.0, 0.5, variable.shape).astype(np.float32))
  prefix = layout.save(str(directory / "bert_model.ckpt"), [model, *heads])
  return prefix, str(config_file), model, heads[0]


def _sentences():
  """Pairs of real sentences from ../shared's topics set, else the fixed ones."""
  dev = os.path.join(SHARED_DIR, "data", "topics", "dev.tsv")
  if not os.path.isfile(dev):
    return SENTENCES
  with open(dev, encoding="utf-8") as reader:
    texts = [line.split("\t", 1)[1] for line in reader.read().splitlines()[1:41]]
  return list(zip(texts[::2], texts[1::2])) + SENTENCES


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
  """Our export of a random checkpoint, Model Garden's TF Hub export, and the oracle's
  outputs on both. The vocabulary is MiniLM's when ../shared has it (real WordPiece
  on real sentences), else a small one."""
  _require_oracle()
  work = tmp_path_factory.mktemp("tfhub")
  minilm_vocab = os.path.join(MINILM_DIR, "vocab.txt")
  vocab = minilm_vocab if os.path.isfile(minilm_vocab) else _write_lines(work / "vocab.txt",
                                                                         SMALL_VOCAB)
  _write_lines(work / "model_garden_vocab.txt", SMALL_VOCAB)
  (work / "checkpoint").mkdir()
  prefix, config_file, model, mlm_head = _random_checkpoint(
      work / "checkpoint", len(tokenization.load_vocab(vocab)))
  conversion = to_tfhub(prefix, config_file, work / "ours", vocab_file=vocab, seq_length=32)
  rng = np.random.RandomState(3)
  mask = (np.arange(20)[None, :] < np.array([20, 13, 5])[:, None]).astype(np.int32)
  inputs = {"input_word_ids": rng.randint(1, len(SMALL_VOCAB), [3, 20]).astype(np.int32) * mask,
            "input_mask": mask,
            "input_type_ids": (rng.randint(0, 3, [3, 20]) * mask).astype(np.int32),
            "masked_lm_positions": np.array([[1, 4, 19], [0, 2, 12], [1, 3, 0]], np.int32)}
  np.savez(work / "inputs.npz", **inputs)
  pairs = _sentences()
  _write_lines(work / "sentences.txt", [f"{a}\t{b}" for a, b in pairs])
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
  result = subprocess.run([sys.executable, os.path.join(TESTS_DIR, "tfhub_oracle.py"),
                           str(work)], capture_output=True, text=True, env=env, timeout=600)
  if result.returncode != 0:
    raise AssertionError(f"tfhub_oracle.py failed:\n{result.stderr[-6000:]}")
  return types.SimpleNamespace(
      work=work, prefix=prefix, config_file=config_file, vocab=vocab, model=model,
      mlm_head=mlm_head, conversion=conversion, inputs=inputs, pairs=pairs,
      ours=dict(np.load(work / "ours.npz")), model_garden=dict(np.load(work / "model_garden.npz")))


def _our_outputs(model, mlm_head, inputs):
  outputs = model(inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"])
  positions = inputs["masked_lm_positions"]
  flat = {"sequence_output": outputs["sequence_output"], "pooled_output": outputs["pooled_output"],
          "default": outputs["pooled_output"],
          "mlm_logits": tf.reshape(mlm_head.logits(outputs["sequence_output"], positions),
                                   [*positions.shape, -1])}
  flat.update({f"encoder_outputs_{i}": x for i, x in enumerate(outputs["all_encoder_layers"])})
  return {key: np.asarray(value) for key, value in flat.items()}


@pytest.mark.slow  # The `hub` fixture: an export and the oracle's subprocess.
def test_hub_keras_layer_runs_our_encoder_and_mlm(hub):
  """hub.KerasLayer(encoder) and hub.KerasLayer(encoder.mlm) give our BertModel's outputs."""
  expected = _our_outputs(hub.model, hub.mlm_head, hub.inputs)
  for key in ENCODER_OUTPUTS:
    np.testing.assert_allclose(hub.ours[key], expected[key], atol=1e-5, rtol=0, err_msg=key)
  np.testing.assert_allclose(hub.ours["mlm_sequence_output"], expected["sequence_output"],
                             atol=1e-5, rtol=0)
  assert hub.conversion.task == "pretraining"
  assert [os.path.basename(p) for p in hub.conversion.written] == ["encoder", "preprocess"]
  assert any("cls/seq_relationship/output_weights" in note for note in hub.conversion.notes)


@pytest.mark.slow  # The `hub` fixture: an export and the oracle's subprocess.
def test_hub_preprocess_packs_as_the_original(hub):
  """hub.KerasLayer(preprocess), and tokenize + bert_pack_inputs on pairs, give the ids of
  FullTokenizer and the original's `convert_single_example`; the encoder behind them
  gives our outputs; fine-tuning through hub.KerasLayer(trainable=True) reaches every
  weight."""
  tokenizer = tokenization.FullTokenizer(hub.vocab, do_lower_case=True)
  for mode, length in (("single", 32), ("pair", 24)):
    features = [classifier_data.convert_example(
        classifier_data.InputExample(str(i), a, b if mode == "pair" else None), None, length,
        tokenizer) for i, (a, b) in enumerate(hub.pairs)]
    for ours, theirs in (("input_word_ids", "input_ids"), ("input_mask", "input_mask"),
                         ("input_type_ids", "segment_ids")):
      np.testing.assert_array_equal(hub.ours[f"{mode}_{ours}"],
                                    [getattr(f, theirs) for f in features], err_msg=mode)
  packed = {k: hub.ours[f"single_{k}"] for k in ("input_word_ids", "input_mask",
                                                  "input_type_ids")}
  outputs = hub.model(packed["input_word_ids"], packed["input_mask"], packed["input_type_ids"])
  np.testing.assert_allclose(hub.ours["single_pooled_output"], outputs["pooled_output"],
                             atol=1e-5, rtol=0)
  assert hub.ours["trainable_weights"] == len(hub.model.trainable_variables)
  assert hub.ours["gradients_nonzero"] == len(hub.model.trainable_variables)
  vocab = tokenization.load_vocab(hub.vocab)
  assert (hub.ours["special_start_of_sequence_id"], hub.ours["special_end_of_segment_id"],
          hub.ours["special_vocab_size"]) == (vocab["[CLS]"], vocab["[SEP]"], len(vocab))


@pytest.mark.slow  # The `hub` fixture: an export and the oracle's subprocess.
def test_model_garden_export_imports_with_its_outputs(hub, tmp_path):
  """Model Garden's TF Hub export -> ours: the same outputs, the config from the shapes."""
  source = str(hub.work / "model_garden")
  assert is_tfhub_savedmodel(source) and not is_tfhub_savedmodel(hub.prefix)
  conversion = from_tfhub(source, tmp_path / "release")
  assert conversion.task == "pretraining" and conversion.tensors == 5 + 16 * 2 + 2 + 5
  assert sorted(os.listdir(tmp_path / "release")) == [
      "bert_config.json", "bert_model.ckpt.data-00000-of-00001", "bert_model.ckpt.index",
      "vocab.txt"]
  config = BertConfig.from_json_file(tmp_path / "release" / "bert_config.json")
  assert config == BertConfig.from_dict({"vocab_size": len(SMALL_VOCAB), **SIZES})
  assert any("do_lower_case=True" in note for note in conversion.notes)
  model = BertModel(config)
  mlm_head = MaskedLMHead(config, model.embedding_table)
  load(str(tmp_path / "release" / "bert_model.ckpt"), [model, mlm_head])
  ours = _our_outputs(model, mlm_head, hub.inputs)
  for key in ENCODER_OUTPUTS:
    np.testing.assert_allclose(ours[key], hub.model_garden[key], atol=1e-5, rtol=0, err_msg=key)


@pytest.mark.slow  # The `hub` fixture: an export and the oracle's subprocess.
def test_round_trip_through_tfhub_is_bit_exact(hub, tmp_path):
  """original -> tfhub -> original: every exported tensor's bits, the config, the vocab."""
  conversion = from_tfhub(hub.work / "ours" / "encoder", tmp_path / "back")
  back = tf.train.load_checkpoint(str(tmp_path / "back" / "bert_model.ckpt"))
  original = tf.train.load_checkpoint(hub.prefix)
  names = set(back.get_variable_to_shape_map())
  assert names == set(original.get_variable_to_shape_map()) - {
      "cls/seq_relationship/output_weights", "cls/seq_relationship/output_bias"}
  for name in names:
    assert back.get_tensor(name).tobytes() == original.get_tensor(name).tobytes(), name
  assert (BertConfig.from_json_file(tmp_path / "back" / "bert_config.json")
          == BertConfig.from_json_file(hub.config_file))
  with open(hub.vocab, "rb") as a, open(tmp_path / "back" / "vocab.txt", "rb") as b:
    assert a.read() == b.read()
  assert conversion.notes == ["do_lower_case=True (the SavedModel's variable): run the "
                              "scripts with --do_lower_case=True"]
  with pytest.raises(ValueError, match="holds its own bert_config.json asset"):
    read_tfhub(hub.work / "ours" / "encoder", bert_config_file=hub.config_file)


@pytest.mark.slow  # The `hub` fixture: an export and the oracle's subprocess.
def test_refuses_what_does_not_map(hub, tmp_path):
  """A config that disagrees with Model Garden's export, a second vocabulary, a
  destination that is not an earlier conversion: each refused, named, nothing written."""
  wrong = tmp_path / "wrong_config.json"
  wrong.write_text(json.dumps({"vocab_size": len(SMALL_VOCAB), **SIZES,
                               "num_attention_heads": 6}))
  with pytest.raises(ValueError, match=r"num_attention_heads=6, but .*/(query|key|value)/"
                                       r"kernel has 4 heads"):
    from_tfhub(hub.work / "model_garden", tmp_path / "x", bert_config_file=wrong)
  wrong.write_text(json.dumps({"vocab_size": len(SMALL_VOCAB), **SIZES,
                               "intermediate_size": 151}))
  with pytest.raises(ValueError, match=r"do not fit the config:\n.*intermediate/dense/bias: "
                                       r"checkpoint \[150\] float32 vs variable \[151\]"):
    from_tfhub(hub.work / "model_garden", tmp_path / "x", bert_config_file=wrong)
  other_vocab = _write_lines(tmp_path / "vocab.txt", SMALL_VOCAB[::-1])
  with pytest.raises(ValueError, match="differs from the SavedModel's own vocab_file asset"):
    from_tfhub(hub.work / "model_garden", tmp_path / "x", vocab_file=other_vocab)

  (tmp_path / "data").mkdir()
  (tmp_path / "data" / "train.tsv").write_text("keep me")
  with pytest.raises(ValueError, match=r"output_dir=.*data exists and is not an earlier"):
    from_tfhub(hub.work / "model_garden", tmp_path / "data")
  with pytest.raises(ValueError, match=r"is not an earlier export \(no encoder\)"):
    to_tfhub(hub.prefix, hub.config_file, tmp_path / "data", vocab_file=hub.vocab,
             seq_length=16)
  assert os.listdir(tmp_path / "data") == ["train.tsv"]
  assert not (tmp_path / "x").exists()


def _save_variables(path, named_arrays):
  """A SavedModel holding only variables with these names (no functions, no assets)."""
  root = tf.Module()
  root.weights = [tf.Variable(value, name=name) for name, value in named_arrays.items()]
  tf.saved_model.save(root, str(path))
  return str(path)


@pytest.mark.parametrize("name, what", [
    ("embedding_projection/kernel", r"an embedding projection \(embedding width != hidden"),
    ("transformer/layer_0/self_attention/pre_softmax_weight", "Talking-Heads attention")])
def test_refuses_other_architectures_naming_them(tmp_path, name, what):
  """Model Garden's names for what BERT has not (ELECTRA-small's embedding projection
  of BertEncoder(embedding_width=...), TalkingHeadsAttention's mixing weights)."""
  path = _save_variables(tmp_path / "encoder", {
      "word_embeddings/embeddings": np.zeros([8, 4], np.float32), name: np.zeros([2, 3],
                                                                             np.float32)})
  with pytest.raises(ValueError, match=f"{what}.*1 variables have no place in it "
                                       f"\\({name} \\[2, 3\\]\\); refused"):
    from_tfhub(path, tmp_path / "out")
  assert not (tmp_path / "out").exists()


def test_refuses_a_missing_vocabulary_or_config(tmp_path):
  """A SavedModel with no vocab_file asset needs --vocab_file; without its config and
  with no [H, heads, head_dim] kernels, --bert_config_file."""
  config = BertConfig.from_dict({"vocab_size": len(SMALL_VOCAB), **SIZES})
  config_file = tmp_path / "bert_config.json"
  config_file.write_text(config.to_json_string())
  model = BertModel(config)
  bare = _save_variables(tmp_path / "bare", {layout.checkpoint_name(v): v.numpy()
                                             for v in model.variables})
  with pytest.raises(ValueError, match="do not give the number of heads: pass "
                                       "--bert_config_file"):
    read_tfhub(bare)
  with pytest.raises(ValueError, match="has no vocab_file asset; pass --vocab_file"):
    read_tfhub(bare, bert_config_file=config_file)
  vocab = _write_lines(tmp_path / "vocab.txt", SMALL_VOCAB)
  read = read_tfhub(bare, bert_config_file=config_file, vocab_file=vocab)
  assert read.task == "encoder" and read.do_lower_case is None
  assert set(read.tensors) == {layout.checkpoint_name(v) for v in model.variables}
  with pytest.raises(FileNotFoundError, match="not a SavedModel directory"):
    read_tfhub(tmp_path)
  (tmp_path / "bare" / "saved_model.pb").write_bytes(b"\x0b not a protocol buffer")
  with pytest.raises(ValueError, match="bare: not a readable SavedModel"):
    read_tfhub(bare)


def test_to_tfhub_refuses_albert_and_a_missing_vocabulary(tmp_path):
  """Checked before anything is built."""
  config_file = tmp_path / "bert_config.json"
  config_file.write_text(json.dumps({"vocab_size": 30, **SIZES}))
  with pytest.raises(ValueError, match=r"no --vocab_file, and no vocab.txt beside"):
    to_tfhub(tmp_path / "model.ckpt", config_file, tmp_path / "out", seq_length=16)
  with pytest.raises(ValueError, match=r"max_position_embeddings=40 .*got --seq_length 41"):
    to_tfhub(tmp_path / "model.ckpt", config_file, tmp_path / "out", seq_length=41)
  albert = tmp_path / "albert_config.json"
  albert.write_text(json.dumps({"vocab_size": 30, **SIZES, "embedding_size": 16}))
  with pytest.raises(ValueError, match="an ALBERT config"):
    to_tfhub(tmp_path / "model.ckpt", albert, tmp_path / "out")
  no_pad = _write_lines(tmp_path / "vocab.txt", SMALL_VOCAB[1:] + ["[PAD]"])
  with pytest.raises(ValueError, match=r"vocab.txt: \[PAD\] has id 41; the original's "
                                       "packing pads with id 0"):
    to_tfhub(tmp_path / "model.ckpt", config_file, tmp_path / "out", vocab_file=no_pad,
             seq_length=16)
  assert not (tmp_path / "out").exists()


def test_the_encoder_has_mlm_only_with_the_whole_head(tmp_path):
  """An encoder-only checkpoint (a Google release) exports no .mlm; one holding part of
  cls/predictions is refused; the next-sentence head is named as left out."""
  prefix, config_file, model, mlm_head = _random_checkpoint(tmp_path, 30)
  config = BertConfig.from_json_file(config_file)
  _, head, report, notes = read_checkpoint(prefix, config)
  assert head is not None and len(report.loaded) == 44
  assert notes == [f"left out cls/seq_relationship/{name} (TF Hub's BERT interface has no "
                   "place for it)" for name in ("output_bias", "output_weights")]
  encoder_only = layout.save(str(tmp_path / "encoder.ckpt"), model)
  _, head, report, notes = read_checkpoint(encoder_only, config)
  assert head is None and notes == [] and len(report.loaded) == 39
  partial = layout.save(str(tmp_path / "partial.ckpt"), [model, mlm_head.transform])
  with pytest.raises(ValueError, match=r"holds only part of the masked-LM head \(it lacks "
                                       r"cls/predictions/output_bias, "):
    read_checkpoint(partial, config)


def test_reads_a_tf1_hub_module(tmp_path):
  """TF Hub's first format (a TF1 SavedModel, as the first TF Hub BERTs): no object
  graph, variables under their TF1 names, the vocabulary in assets/vocab.txt."""
  config = BertConfig.from_dict({"vocab_size": len(SMALL_VOCAB), **SIZES})
  config_file = tmp_path / "bert_config.json"
  config_file.write_text(config.to_json_string())
  vocab = _write_lines(tmp_path / "vocab.txt", SMALL_VOCAB)
  rng = np.random.RandomState(0)
  arrays = {layout.checkpoint_name(v): rng.normal(size=v.shape).astype(np.float32)
            for v in BertModel(config).variables}
  with tf.Graph().as_default():
    for name, value in arrays.items():
      tf.compat.v1.get_variable(name, initializer=value)
    assets = tf.compat.v1.GraphKeys.ASSET_FILEPATHS
    tf.compat.v1.add_to_collection(assets, tf.constant(vocab))
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      builder = tf.compat.v1.saved_model.Builder(str(tmp_path / "module"))
      builder.add_meta_graph_and_variables(session, ["serve"],
                                           assets_collection=tf.compat.v1.get_collection(assets))
      builder.save()
  with pytest.raises(ValueError, match="which do not give the number of heads"):
    from_tfhub(tmp_path / "module", tmp_path / "out")
  conversion = from_tfhub(tmp_path / "module", tmp_path / "out", bert_config_file=config_file)
  assert conversion.task == "encoder" and conversion.notes == []
  back = tf.train.load_checkpoint(str(tmp_path / "out" / "bert_model.ckpt"))
  assert set(back.get_variable_to_shape_map()) == set(arrays)
  for name, value in arrays.items():
    assert back.get_tensor(name).tobytes() == value.tobytes(), name
  assert (tmp_path / "out" / "vocab.txt").read_text() == (tmp_path / "vocab.txt").read_text()
