"""The Hugging Face bridge for ALBERT: ALBERT directories to our ALBERT layout and back.

Bit-exact round trips for every task on a tiny ALBERT with two groups of two
inner blocks, the refusals, and (with the optional `hf` extra) transformers'
own AlbertFor* classes: their outputs from our model on the converted
checkpoint within 1e-5, and our exports loaded with no missing or unexpected keys.
"""

import json
import os

import numpy as np
import pytest
from safetensors.numpy import load_file

from modeling import BertModel, checkpoint
from modeling.model.config import BertConfig
from modeling.model.heads import MaskedLMHead, NextSentenceHead
from test_hf_checkpoint import (assert_same_bits, copy_of, perturbed_hf_model, read_ckpt,
                                 save_ours, their_outputs)
from tiny import TINY_CONFIG, tiny_inputs

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # Nothing from a model hub, ever.

# Four layers in two groups of two inner blocks, E = 16 < H = 32.
ALBERT_SHAPE = {"embedding_size": 16, "num_hidden_layers": 4, "num_hidden_groups": 2,
                "inner_group_num": 2}

CLASSES = {"encoder": "AlbertModel", "pretraining": "AlbertForPreTraining",
           "classifier": "AlbertForSequenceClassification",
           "squad": "AlbertForQuestionAnswering", "ner": "AlbertForTokenClassification"}


def save_albert(directory, task, seed=0, training_state=False, **changes):
  """save_ours of a tiny ALBERT: (prefix, config file, {name: array})."""
  return save_ours(directory, task, seed, training_state, **{**ALBERT_SHAPE, **changes})


@pytest.fixture(scope="module")
def albert_hf_dir(tmp_path_factory):
  """A tiny Hugging Face AlbertForPreTraining directory (written by to_hf)."""
  root = tmp_path_factory.mktemp("albert")
  prefix, config_file, _ = save_albert(str(root / "ours"), "pretraining")
  checkpoint.to_hf(prefix, config_file, root / "hf")
  return root / "hf"


# ----------------------------------------------------------------------------
# Round trips and names.

@pytest.mark.parametrize("task", sorted(CLASSES))
def test_ours_to_hf_to_ours_is_bit_exact(tmp_path, task):
  prefix, config_file, tensors = save_albert(str(tmp_path / "ours"), task, training_state=True)
  to = checkpoint.to_hf(prefix, config_file, tmp_path / "hf",
                        task="ner" if task == "ner" else None)
  assert (to.architecture, to.task) == (CLASSES[task], task)
  config = json.loads((tmp_path / "hf" / "config.json").read_text())
  assert (config["model_type"], config["architectures"], config["hidden_act"]) == (
      "albert", [CLASSES[task]], "gelu_new")
  assert {k: config[k] for k in ALBERT_SHAPE} == ALBERT_SHAPE
  back = checkpoint.from_hf(tmp_path / "hf", tmp_path / "back")
  assert (back.architecture, back.task) == (to.architecture, task)
  assert back.written[:2] == [str(tmp_path / "back" / "model.ckpt"),
                              str(tmp_path / "back" / "albert_config.json")]
  if task in ("squad", "ner"):  # Their transformers classes have no pooler.
    tensors = {k: v for k, v in tensors.items() if not k.startswith("bert/pooler/")}
  assert_same_bits(read_ckpt(str(tmp_path / "back" / "model.ckpt")), tensors)
  back_config = BertConfig.from_json_file(tmp_path / "back" / "albert_config.json")
  assert back_config.is_albert
  assert back_config == BertConfig.from_json_file(config_file)
  # Hugging Face -> ours -> Hugging Face: the same keys and bits.
  checkpoint.to_hf(tmp_path / "back" / "model.ckpt", tmp_path / "back" / "albert_config.json",
                   tmp_path / "hf2")
  assert_same_bits(load_file(tmp_path / "hf2" / "model.safetensors"),
                   load_file(tmp_path / "hf" / "model.safetensors"))


def test_hugging_face_names(albert_hf_dir):
  keys = set(load_file(albert_hf_dir / "model.safetensors"))
  block = "albert.encoder.albert_layer_groups.1.albert_layers.1."
  for part in ("attention.query", "attention.key", "attention.value", "attention.dense",
               "attention.LayerNorm", "ffn", "ffn_output", "full_layer_layer_norm"):
    assert f"{block}{part}.weight" in keys and f"{block}{part}.bias" in keys, part
  for key in ("albert.embeddings.word_embeddings.weight", "albert.embeddings.LayerNorm.bias",
              "albert.encoder.embedding_hidden_mapping_in.weight", "albert.pooler.weight",
              "predictions.dense.weight", "predictions.LayerNorm.weight", "predictions.bias",
              "sop_classifier.classifier.weight", "sop_classifier.classifier.bias"):
    assert key in keys, key
  # 2 groups x 2 blocks x 16 tensors, 5 embeddings, 2 projection, 2 pooler, 5 MLM, 2 SOP.
  assert len(keys) == 64 + 16
  assert not any(k.startswith(("bert.", "cls.")) or "albert_layer_groups.2." in k for k in keys)


def test_checkpoint_inspect_reads_the_directory(albert_hf_dir):
  _, _, entries = checkpoint.open_checkpoint(str(albert_hf_dir))
  assert entries["bert/encoder/transformer/group_1/inner_group_1/ffn_1/intermediate/dense/"
                 "kernel"][0] == (32, 37)
  assert entries["bert/encoder/embedding_hidden_mapping_in/kernel"][0] == (16, 32)
  assert entries["cls/predictions/transform/dense/kernel"][0] == (32, 16)


def train_tiny_spm(tmp_path, name="spm"):
  """A SentencePiece model of about 60 pieces (within the tiny ALBERT's vocab_size)."""
  sentencepiece = pytest.importorskip("sentencepiece")
  rng = np.random.RandomState(0)
  words = ["the", "cat", "sat", "on", "mat", "Computer", "program", "café", "naïve", "law"]
  (tmp_path / "text.txt").write_text("".join(" ".join(rng.choice(words, 8)) + "\n"
                                             for _ in range(2000)))
  sentencepiece.SentencePieceTrainer.Train(
      input=str(tmp_path / "text.txt"), model_prefix=str(tmp_path / name), vocab_size=60,
      hard_vocab_limit=False, minloglevel=2, pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
      control_symbols="[CLS],[SEP],[MASK]")
  return tmp_path / f"{name}.model"


def test_sentencepiece_model_both_ways(tmp_path):
  prefix, config_file, _ = save_albert(str(tmp_path / "ours"), "encoder")
  spm = train_tiny_spm(tmp_path, "30k-clean")
  conversion = checkpoint.to_hf(prefix, config_file, tmp_path / "hf", spm_model_file=spm,
                                do_lower_case=True)
  assert str(tmp_path / "hf" / "spiece.model") in conversion.written
  assert (tmp_path / "hf" / "spiece.model").read_bytes() == spm.read_bytes()
  tokenizer_config = json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())
  assert tokenizer_config["tokenizer_class"] == "AlbertTokenizer"
  back = checkpoint.from_hf(tmp_path / "hf", tmp_path / "back")
  assert str(tmp_path / "back" / "spiece.model") in back.written
  assert (tmp_path / "back" / "spiece.model").read_bytes() == spm.read_bytes()
  # A SentencePiece model with a BERT config, or with --vocab_file too, is refused.
  bert_prefix, bert_config, _ = save_ours(str(tmp_path / "bert"), "encoder")
  with pytest.raises(ValueError, match=r"--spm_model_file=.*30k-clean\.model: .*bert_config\."
                                       r"json is a BERT config"):
    checkpoint.to_hf(bert_prefix, bert_config, tmp_path / "out", spm_model_file=spm)
  with pytest.raises(ValueError, match=r"give --vocab_file or --spm_model_file, not both"):
    checkpoint.to_hf(prefix, config_file, tmp_path / "out", spm_model_file=spm,
                     vocab_file=spm)
  assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------
# Refusals, each named, nothing written.

@pytest.mark.parametrize("config_changes, tensor_changes, message", [
    ({"embedding_size": 32}, None,
     "embedding_size=32 equals hidden_size: Hugging Face's ALBERT always has "
     "encoder.embedding_hidden_mapping_in"),
    ({"num_hidden_groups": 1}, None,
     "tensors with no place in the original layout: "
     "albert.encoder.albert_layer_groups.1.albert_layers.0.attention.LayerNorm.bias [32]"),
    ({"architectures": ["BertForPreTraining"]}, None,
     "architectures=['BertForPreTraining'] names a class with no counterpart in the original "
     "layout for model_type 'albert'"),
    ({"hidden_act": "silu"}, None, "hidden_act='silu' has no counterpart in the original"),
    ({"model_type": "bert"}, None,
     "architectures=['AlbertForPreTraining'] names a class with no counterpart in the "
     "original layout for model_type 'bert'"),
    (None, {"predictions.decoder.weight": "word embeddings + 1"},
     "predictions.decoder.weight differs from the word embeddings"),
    (None, {"predictions.decoder.bias": "bias + 1"},
     "predictions.decoder.bias differs from predictions.bias"),
    ({"vocab_size": 120}, None,
     "bert/embeddings/word_embeddings: checkpoint [99, 16] float32 vs variable [120, 16]"),
])
def test_refused(albert_hf_dir, tmp_path, config_changes, tensor_changes, message):
  if tensor_changes:
    tensors = load_file(albert_hf_dir / "model.safetensors")
    tensor_changes = {
        "predictions.decoder.weight": {
            "predictions.decoder.weight": tensors["albert.embeddings.word_embeddings.weight"] + 1},
        "predictions.decoder.bias": {
            "predictions.decoder.bias": tensors["predictions.bias"] + 1},
    }[next(iter(tensor_changes))]
  changed = copy_of(albert_hf_dir, tmp_path, config_changes, tensor_changes)
  with pytest.raises(ValueError) as error:
    checkpoint.from_hf(changed, tmp_path / "out")
  assert message in str(error.value)
  assert str(changed) in str(error.value)
  assert not (tmp_path / "out").exists()


def test_to_hf_refusals(tmp_path):
  prefix, config_file, _ = save_albert(str(tmp_path / "same"), "encoder", embedding_size=32)
  with pytest.raises(ValueError, match=r"bert_config\.json: embedding_size=32 equals "
                                       r"hidden_size"):
    checkpoint.to_hf(prefix, config_file, tmp_path / "out")
  # The sentence-order head alone has no Hugging Face class.
  prefix, config_file, _ = save_albert(str(tmp_path / "sop"), "encoder")
  config = BertConfig.from_json_file(config_file)
  model = BertModel(config)
  checkpoint.save(os.path.join(tmp_path, "sop", "bert_model.ckpt"),
                  [model, NextSentenceHead(config)])
  with pytest.raises(ValueError, match=r"cls/seq_relationship \(sentence order\) without "
                                       r"cls/predictions"):
    checkpoint.to_hf(prefix, config_file, tmp_path / "out")
  assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------
# Against transformers itself.

TOLERANCE = 1e-5


def _transformers():
  """transformers and torch, or a skip saying how to install them."""
  torch = pytest.importorskip(
      "torch", reason="PyTorch is not installed (optional: pip install -e '.[hf]' "
      "torch==2.13.0+cpu, as make test tries)")
  transformers = pytest.importorskip(
      "transformers", reason="transformers is not installed (optional: pip install -e '.[hf]')")
  return torch, transformers


def albert_hf_model(name, hidden_act, num_labels=2, seed=0):
  """A random-weight transformers ALBERT model of the tiny dimensions, every
  parameter perturbed (LayerNorms and biases too), in eval mode."""
  _, transformers = _transformers()
  dims = {k: v for k, v in TINY_CONFIG.items() if not k.endswith("dropout_prob")}
  config = transformers.AlbertConfig(**{**dims, **ALBERT_SHAPE, "hidden_act": hidden_act,
                                        "num_labels": num_labels,
                                        "classifier_dropout_prob": 0.0})
  return perturbed_hf_model(name, config, seed)


def our_pretraining_outputs(prefix, config_file, inputs):
  """Sequence and pooled outputs, MLM log-probs and SOP logits of our ALBERT,
  loaded strictly from a checkpoint."""
  config = BertConfig.from_json_file(config_file)
  model = BertModel(config)
  mlm, sop = MaskedLMHead(config, model.embedding_table), NextSentenceHead(config)
  report = checkpoint.load(prefix, [model, mlm, sop])
  assert not [n for n in report.unexpected  # Only training state is left unused.
              if n != "global_step" and not n.startswith("bert_tf2/")
              and not n.endswith(("/adam_m", "/adam_v"))]
  outputs = model(inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"])
  return {"sequence_output": outputs["sequence_output"].numpy(),
          "pooled_output": outputs["pooled_output"].numpy(),
          "mlm_log_probs": mlm.log_probs(outputs["sequence_output"],
                                         inputs["masked_lm_positions"]).numpy(),
          "sop_logits": sop.logits(outputs["pooled_output"]).numpy()}


def assert_close(ours, theirs):
  assert sorted(ours) == sorted(theirs)
  for name in theirs:
    np.testing.assert_allclose(ours[name], theirs[name], rtol=0, atol=TOLERANCE, err_msg=name)


def loaded_without_warnings(name, directory):
  """from_pretrained of an export, checked to load every key and nothing else."""
  _, transformers = _transformers()
  model, info = getattr(transformers, name).from_pretrained(directory, output_loading_info=True)
  assert not info["missing_keys"], info
  assert not info["unexpected_keys"] and not info["mismatched_keys"], info
  assert not info.get("error_msgs"), info
  return model.eval()


@pytest.mark.parametrize("hidden_act", ["gelu_new", "gelu"])
def test_transformers_albert_for_pretraining_both_ways(tmp_path, hidden_act):
  inputs = tiny_inputs(batch_size=3, seq_length=16, vocab_size=99)
  theirs = albert_hf_model("AlbertForPreTraining", hidden_act)
  theirs.save_pretrained(tmp_path / "hf")
  expected = their_outputs(theirs, inputs)

  conversion = checkpoint.from_hf(tmp_path / "hf", tmp_path / "ours")
  assert (conversion.architecture, conversion.task) == ("AlbertForPreTraining", "pretraining")
  prefix, config_file = tmp_path / "ours" / "model.ckpt", tmp_path / "ours" / "albert_config.json"
  assert BertConfig.from_json_file(config_file).hidden_act == \
      {"gelu_new": "gelu", "gelu": "gelu_exact"}[hidden_act]
  assert_close(our_pretraining_outputs(str(prefix), config_file, inputs), expected)

  checkpoint.to_hf(prefix, config_file, tmp_path / "back")
  assert_same_bits(load_file(tmp_path / "back" / "model.safetensors"),
                   load_file(tmp_path / "hf" / "model.safetensors"))
  reloaded = loaded_without_warnings("AlbertForPreTraining", tmp_path / "back")
  assert reloaded.config.hidden_act == hidden_act
  assert_close(their_outputs(reloaded, inputs), expected)


@pytest.mark.parametrize("task", ["pretraining", "classifier", "squad", "ner"])
def test_our_albert_loads_into_transformers(tmp_path, task):
  inputs = tiny_inputs(batch_size=3, seq_length=16, vocab_size=99)
  from test_hf_transformers import our_outputs  # pylint: disable=import-outside-toplevel
  prefix, config_file, _ = save_albert(str(tmp_path / "ours"), task, seed=3,
                                       training_state=True)
  conversion = checkpoint.to_hf(prefix, config_file, tmp_path / "hf", task=task)
  assert conversion.architecture == CLASSES[task]
  theirs = their_outputs(loaded_without_warnings(CLASSES[task], tmp_path / "hf"), inputs)
  if task == "pretraining":
    ours = our_pretraining_outputs(prefix, config_file, inputs)
  else:
    ours = our_outputs(prefix, config_file, task, inputs)
  assert_close(ours, theirs)


def test_hidden_states_of_every_block(tmp_path):
  """Shared groups applied in the same order: every layer's output agrees."""
  torch, _ = _transformers()
  inputs = tiny_inputs(batch_size=2, seq_length=12, vocab_size=99)
  theirs = albert_hf_model("AlbertModel", "gelu_new", seed=4)
  theirs.save_pretrained(tmp_path / "hf")
  checkpoint.from_hf(tmp_path / "hf", tmp_path / "ours")
  config = BertConfig.from_json_file(tmp_path / "ours" / "albert_config.json")
  model = BertModel(config)
  checkpoint.load(str(tmp_path / "ours" / "model.ckpt"), model)
  ours = model(inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"])
  with torch.no_grad():
    out = theirs(input_ids=torch.tensor(inputs["input_ids"], dtype=torch.long),
                 attention_mask=torch.tensor(inputs["input_mask"], dtype=torch.long),
                 token_type_ids=torch.tensor(inputs["segment_ids"], dtype=torch.long),
                 output_hidden_states=True)
  # Both record one output per block applied (4 layers x 2 inner blocks); theirs
  # first hold the input of the first block.
  blocks = ours["all_encoder_layers"]
  assert len(blocks) == 8 and len(out.hidden_states) == len(blocks) + 1
  for index, block in enumerate(blocks):
    np.testing.assert_allclose(block.numpy(), out.hidden_states[index + 1].numpy(), rtol=0,
                               atol=TOLERANCE, err_msg=f"block {index}")
  np.testing.assert_allclose(ours["pooled_output"].numpy(), out.pooler_output.numpy(),
                             rtol=0, atol=TOLERANCE)


def test_exported_sentencepiece_model_tokenizes_as_ours(tmp_path):
  """AutoTokenizer of a to-hf export with --spm_model_file gives our pieces and ids,
  but for pieces ending in a digit and a comma ("1999,"), which Google's ALBERT
  and ours split ("1999", ",") and transformers' AlbertTokenizer keeps whole."""
  _, transformers = _transformers()
  from modeling.data.tokenization import create_tokenizer  # noqa: PLC0415
  spm = train_tiny_spm(tmp_path)
  prefix, config_file, _ = save_albert(str(tmp_path / "ours"), "encoder")
  checkpoint.to_hf(prefix, config_file, tmp_path / "hf", spm_model_file=spm)
  theirs = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
  ours = create_tokenizer(None, True, spm_model_file=str(spm))
  for text in ["The cat sat on the Mat, naïve café law!", "Computer   program  x", "ÀB  c"]:
    pieces = ours.tokenize(text)
    assert theirs.tokenize(text) == pieces, text
    assert theirs(text)["input_ids"] == ours.convert_tokens_to_ids(
        ["[CLS]"] + pieces + ["[SEP]"]), text
