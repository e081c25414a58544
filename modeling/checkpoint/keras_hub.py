"""keras-hub BertBackbone presets in and out of the original layout, with h5py.

A preset directory holds `config.json` (the BertBackbone's config),
`model.weights.h5` (Keras 3 weights: `layers/<layer>/vars/<i>` datasets),
`tokenizer.json` and `assets/tokenizer/vocabulary.txt`, `metadata.json`, and
for a fine-tuned classifier `task.json`, `preprocessor.json` and
`task.weights.h5` (a BertTextClassifier's logits layer). The weights are read
and written with h5py: no Keras import, nothing unpickled. keras-hub's BERT
shapes attention as Model Garden does (`model_garden_names` kinds) and
hard-codes the tanh GELU (the original's `gelu`): a config with `gelu_exact`
(every Hugging Face BERT) is refused for keras-hub unless `approximate_gelu`.

  is_keras_hub_preset(path)                    -> bool
  read_keras_hub(preset_dir)                   -> KerasHubPreset (in memory)
  from_keras_hub(src, output_dir, bert_config_file=None, vocab_file=None) -> Conversion
  to_keras_hub(ckpt_path, bert_config_file, output_dir, vocab_file=None,
               do_lower_case=True, approximate_gelu=False, allow_unused=()) -> Conversion
"""

import dataclasses
import json
import os

import h5py
import numpy as np
import tensorflow as tf

from modeling.checkpoint.hf_import import Conversion, copy_file, write_directory, write_text
from modeling.checkpoint.keras_hub_names import (CLASSIFIER_ROWS, backbone_rows, empty_layers,
                                                 layer_name)
from modeling.checkpoint.model_garden_names import (OUTPUT_KERNEL, QKV_BIAS, QKV_KERNEL,
                                                    from_original, to_original)
from modeling.checkpoint.release import (check_shapes, check_vocabulary, read_original,
                                         write_release)
from modeling.data import files
from modeling.model.config import BertConfig

CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE = "config.json", "model.weights.h5", "tokenizer.json"
TASK_FILE, TASK_WEIGHTS_FILE, PREPROCESSOR_FILE = ("task.json", "task.weights.h5",
                                                   "preprocessor.json")
VOCABULARY = "assets/tokenizer/vocabulary.txt"
_PRESET_FILES = (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE, TASK_FILE, TASK_WEIGHTS_FILE,
                 PREPROCESSOR_FILE, "metadata.json", "assets", "README.md")
_MODULE = "keras_hub.src.models.bert."
# keras-hub's default sequence length for BERT preprocessors (capped by the positions).
_SEQUENCE_LENGTH = 512


def _read_json(path):
  try:
    with files.open(path) as reader:
      return json.load(reader)
  except json.JSONDecodeError as error:
    raise ValueError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None


def is_keras_hub_preset(path):
  """Whether `path` is a keras-hub preset directory (config.json of a keras_hub class)."""
  config = os.path.join(os.fspath(path), CONFIG_FILE)
  if not (files.isdir(os.fspath(path)) and files.exists(config)):
    return False
  try:
    registered = _read_json(config).get("registered_name") or ""
  except (ValueError, AttributeError):
    return False
  return registered.startswith("keras_hub>")


@dataclasses.dataclass
class KerasHubPreset:
  """A keras-hub BertBackbone preset read into the original layout, in memory."""
  directory: str
  task: str
  config: BertConfig
  tensors: dict
  vocab_file: str = None
  do_lower_case: bool = None
  notes: list = dataclasses.field(default_factory=list)


def _read_rows(weights_path, rows, hidden, heads):
  """{original name: array} of `rows` in an h5 file, and its datasets no row reads."""
  size = hidden // heads
  einsum = {QKV_KERNEL: (hidden, heads, size), QKV_BIAS: (heads, size),
            OUTPUT_KERNEL: (heads, size, hidden)}
  tensors, seen = {}, set()
  with h5py.File(weights_path, "r") as h5:
    h5.visititems(lambda name, item: seen.add(name) if isinstance(item, h5py.Dataset)
                  else None)
    for group, index, ours, kind in rows:
      name = f"{group}vars/{index}"
      if name not in seen:
        raise ValueError(f"{weights_path}: no {name} (for {ours}); not a BertBackbone of "
                         "this config")
      value = np.asarray(h5[name])
      if value.dtype != np.float32:
        raise ValueError(f"{weights_path}: {name} has dtype {value.dtype}; float32 expected")
      if kind in einsum and value.shape != einsum[kind]:
        raise ValueError(f"{weights_path}: {name} ({ours}) is {list(value.shape)}, but the "
                         f"config's {heads} heads of {size} make it {list(einsum[kind])}")
      tensors[ours] = to_original(value, kind)
  unused = sorted(seen - {f"{group}vars/{index}" for group, index, _, _ in rows})
  return tensors, unused


def _backbone_config(preset_config, path):
  """Our BertConfig from config.json's BertBackbone config."""
  if preset_config.get("class_name") != "BertBackbone":
    raise ValueError(f"{path}: a keras-hub {preset_config.get('class_name')!r}, not a "
                     "BertBackbone: another architecture, refused")
  config = preset_config.get("config", {})
  missing = [key for key in ("vocabulary_size", "num_layers", "num_heads", "hidden_dim",
                             "intermediate_dim", "max_sequence_length") if key not in config]
  if missing:
    raise ValueError(f"{path}: the BertBackbone config lacks {', '.join(missing)}")
  dropout = config.get("dropout", 0.1)
  return BertConfig.from_dict({
      "vocab_size": config["vocabulary_size"], "hidden_size": config["hidden_dim"],
      "num_hidden_layers": config["num_layers"], "num_attention_heads": config["num_heads"],
      "intermediate_size": config["intermediate_dim"], "hidden_act": "gelu",
      "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout,
      "max_position_embeddings": config["max_sequence_length"],
      "type_vocab_size": config.get("num_segments", 2)}, source=path)


def read_keras_hub(preset_dir):
  """Reads a keras-hub BertBackbone (or BertTextClassifier) preset, in memory.

  Raises:
    FileNotFoundError: no config.json or model.weights.h5.
    ValueError: another class, weights that do not fit the config, a task
      other than BertTextClassifier, datasets with no place in the original layout.
  """
  preset_dir = os.fspath(preset_dir)
  for name in (CONFIG_FILE, WEIGHTS_FILE):
    if not files.exists(os.path.join(preset_dir, name)):
      raise FileNotFoundError(f"{preset_dir}: no {name}; not a keras-hub preset")
  config_path = os.path.join(preset_dir, CONFIG_FILE)
  config = _backbone_config(_read_json(config_path), config_path)
  weights = os.path.join(preset_dir, WEIGHTS_FILE)
  tensors, unused = _read_rows(weights, backbone_rows(config.num_hidden_layers),
                               config.hidden_size, config.num_attention_heads)
  if unused:
    raise ValueError(f"{weights}: datasets with no place in the original layout: "
                     f"{', '.join(unused)}; refused")
  task, notes = "encoder", ["hidden_act 'gelu' (the tanh form keras-hub's BERT hard-codes)"]
  task_path = os.path.join(preset_dir, TASK_FILE)
  if files.exists(task_path):
    task_config = _read_json(task_path)
    if task_config.get("class_name") != "BertTextClassifier":
      raise ValueError(f"{task_path}: a {task_config.get('class_name')!r} task, whose head "
                       "has no place in the original layout; refused (only "
                       "BertTextClassifier's is read)")
    activation = task_config["config"].get("activation")
    if activation not in (None, "linear", "softmax"):
      raise ValueError(f"{task_path}: activation {activation!r}; the original classifier "
                       "computes logits then softmax")
    head, unused = _read_rows(os.path.join(preset_dir, TASK_WEIGHTS_FILE), CLASSIFIER_ROWS,
                              config.hidden_size, config.num_attention_heads)
    state = [name for name in unused if name.startswith("optimizer/")]
    if state:
      notes.append(f"left out the optimizer state in {TASK_WEIGHTS_FILE} ({len(state)} "
                   "variables)")
    unused = [name for name in unused if name not in state]
    if unused:
      raise ValueError(f"{preset_dir}/{TASK_WEIGHTS_FILE}: datasets with no place in the "
                       f"original layout: {', '.join(unused)}; refused")
    tensors.update(head)
    task = "classifier"
  check_shapes(tensors, config, preset_dir)
  vocab_file = os.path.join(preset_dir, VOCABULARY)
  tokenizer_path = os.path.join(preset_dir, TOKENIZER_FILE)
  do_lower_case = None
  if files.exists(tokenizer_path):
    do_lower_case = _read_json(tokenizer_path).get("config", {}).get("lowercase")
  return KerasHubPreset(preset_dir, task, config, tensors,
                        vocab_file if files.exists(vocab_file) else None, do_lower_case, notes)


def from_keras_hub(src, output_dir, bert_config_file=None, vocab_file=None):
  """Converts a keras-hub BertBackbone preset to a Google release directory.

  Writes `output_dir/bert_model.ckpt`, `bert_config.json` and `vocab.txt` (the
  preset's vocabulary, or `vocab_file` for a preset without one); a classifier's
  classes are unnamed there, so no labels.txt.

  Raises:
    ValueError: `bert_config_file` (the preset holds its config), and what
      `read_keras_hub` refuses.
  """
  if bert_config_file:
    raise ValueError(f"--bert_config_file={bert_config_file}: a keras-hub preset holds its "
                     f"config ({src}/{CONFIG_FILE}); the flag cannot take effect")
  preset = read_keras_hub(src)
  if preset.vocab_file and vocab_file:
    raise ValueError(f"--vocab_file={vocab_file}: {src} holds its vocabulary "
                     f"({VOCABULARY}); the flag cannot take effect")
  vocab_file = preset.vocab_file or vocab_file
  notes = list(preset.notes)
  if vocab_file:
    check_vocabulary(preset.config, vocab_file)
  else:
    notes.append(f"no {VOCABULARY} in {src} and no --vocab_file: give the scripts the model's "
                 "vocabulary")
  written = write_release(output_dir, preset.config, preset.tensors, vocab_file)
  if preset.do_lower_case is not None:
    notes.append(f"{TOKENIZER_FILE}: lowercase={preset.do_lower_case}; run the scripts with "
                 f"--do_lower_case={preset.do_lower_case}")
  if preset.task == "classifier":
    notes.append("a BertTextClassifier's classes have no names in its preset: no labels.txt")
  architecture = "BertTextClassifier" if preset.task == "classifier" else "BertBackbone"
  return Conversion(os.fspath(src), f"keras-hub {architecture}", preset.task,
                    len(preset.tensors), written, notes)


def _serialized(class_name, module, config):
  return {"module": _MODULE + module, "class_name": class_name, "config": config,
          "registered_name": f"keras_hub>{class_name}"}


def _dtype(name):
  return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name},
          "registered_name": None}


def _write_h5(path, datasets, empty_groups, top_name):
  """An h5 file in Keras 3's weights layout: `datasets` {group: (layer name,
  [arrays])} and `empty_groups` [(group, layer name)], each group's `vars` named."""
  with h5py.File(path, "w") as h5:  # Local paths only: HDF5 reads back as it writes.
    for group, name in empty_groups:
      h5.require_group(group + "vars").attrs["name"] = name
    for group, (name, arrays) in datasets.items():
      variables = h5.require_group(group + "vars")
      variables.attrs["name"] = name
      for index, value in enumerate(arrays):
        variables.create_dataset(str(index), data=value)
    h5.require_group("vars").attrs["name"] = top_name


def _grouped(rows, tensors, heads, names):
  """{h5 group: (layer name, [arrays in var order])} of `rows` (which list each
  group's vars in order)."""
  grouped = {}
  for group, index, ours, kind in rows:
    arrays = grouped.setdefault(group, (names(group), []))[1]
    arrays.append(from_original(tensors[ours], kind, heads))
  return grouped


def to_keras_hub(ckpt_path, bert_config_file, output_dir, vocab_file=None, do_lower_case=True,
                 approximate_gelu=False, allow_unused=()):
  """Converts an original checkpoint to a keras-hub BertBackbone preset directory.

  Writes config.json, model.weights.h5, tokenizer.json and
  assets/tokenizer/vocabulary.txt, metadata.json; with a classifier head also
  task.json, preprocessor.json and task.weights.h5 (a BertTextClassifier); whole
  or not at all.

  Args:
    ckpt_path: an original checkpoint (`release.read_original`).
    bert_config_file: its bert_config.json.
    output_dir: absent, empty, or an earlier preset directory.
    vocab_file: the vocab.txt, required: a preset holds its tokenizer.
    do_lower_case: the tokenizer's `lowercase`.
    approximate_gelu: convert a `gelu_exact` model to keras-hub's tanh GELU
      (outputs then differ slightly); refused otherwise.
    allow_unused: regexes of checkpoint names that may be left out.

  Raises:
    ValueError: no vocabulary, an activation keras-hub's BERT lacks, attention
      and hidden dropout that differ, what `read_original` refuses.
  """
  if not vocab_file:
    raise ValueError("a keras-hub preset holds its tokenizer's vocabulary "
                     f"({VOCABULARY}): give --vocab_file")
  config, tensors, notes = read_original(
      ckpt_path, bert_config_file, "a keras-hub BertBackbone preset",
      (r"^bert/(embeddings|encoder|pooler)/", r"^output_(weights|bias)$"), allow_unused)
  if config.hidden_act == "gelu_exact":
    if not approximate_gelu:
      raise ValueError(f"{bert_config_file}: hidden_act 'gelu_exact' (erf GELU) but keras-hub's "
                       "BertBackbone hard-codes the tanh GELU ('gelu'); outputs would differ "
                       "(by up to ~1e-3 per activation). Refused: pass --approximate_gelu to "
                       "convert it to the tanh form anyway")
    notes.append("hidden_act gelu_exact written as keras-hub's tanh GELU (--approximate_gelu): "
                 "outputs differ slightly from the original model's")
  elif config.hidden_act != "gelu":
    raise ValueError(f"{bert_config_file}: hidden_act {config.hidden_act!r}; keras-hub's "
                     "BertBackbone hard-codes the tanh GELU ('gelu'); refused")
  if config.hidden_dropout_prob != config.attention_probs_dropout_prob:
    notes.append(f"keras-hub has one dropout: {config.hidden_dropout_prob} "
                 f"(hidden_dropout_prob; attention_probs_dropout_prob was "
                 f"{config.attention_probs_dropout_prob})")
  missing = [ours for _, _, ours, _ in backbone_rows(config.num_hidden_layers)
             if ours not in tensors]
  if missing:
    raise ValueError(f"checkpoint {ckpt_path}: a BertBackbone needs {', '.join(missing[:6])}, "
                     "which it lacks; refused")
  check_vocabulary(config, vocab_file)
  heads = config.num_attention_heads
  backbone = {"name": "bert_backbone", "trainable": True, "dtype": _dtype("float32"),
              "vocabulary_size": config.vocab_size, "num_layers": config.num_hidden_layers,
              "num_heads": heads, "hidden_dim": config.hidden_size,
              "intermediate_dim": config.intermediate_size,
              "dropout": config.hidden_dropout_prob,
              "max_sequence_length": config.max_position_embeddings,
              "num_segments": config.type_vocab_size}
  tokenizer = _serialized("BertTokenizer", "bert_tokenizer", {
      "name": "bert_tokenizer", "trainable": True, "dtype": _dtype("int32"),
      "config_file": TOKENIZER_FILE, "vocabulary": None, "sequence_length": None,
      "lowercase": bool(do_lower_case), "strip_accents": False, "split": True,
      "suffix_indicator": "##", "oov_token": "[UNK]", "special_tokens": None,
      "special_tokens_in_strings": False})
  weights = _grouped(backbone_rows(config.num_hidden_layers), tensors, heads, layer_name)
  metadata = {"keras_hub_version": "0.32.0",
              "parameter_count": int(sum(v.size for k, v in tensors.items()
                                         if not k.startswith("output_")))}
  dump = lambda value: json.dumps(value, indent=4) + "\n"  # noqa: E731
  writers = [(CONFIG_FILE, lambda path: write_text(
                 path, dump(_serialized("BertBackbone", "bert_backbone", backbone)))),
             (WEIGHTS_FILE, lambda path: _write_h5(path, weights,
                                                    empty_layers(config.num_hidden_layers),
                                                    "bert_backbone")),
             (TOKENIZER_FILE, lambda path: write_text(path, dump(tokenizer))),
             ("metadata.json", lambda path: write_text(path, dump(metadata))),
             (VOCABULARY, lambda path: _copy_into(vocab_file, path))]
  task = "encoder"
  if "output_bias" in tensors:
    task = "classifier"
    preprocessor = _serialized("BertTextClassifierPreprocessor",
                               "bert_text_classifier_preprocessor", {
        "name": "bert_text_classifier_preprocessor", "trainable": True,
        "dtype": _dtype("float32"), "tokenizer": tokenizer,
        "config_file": PREPROCESSOR_FILE,
        "sequence_length": min(_SEQUENCE_LENGTH, config.max_position_embeddings),
        "truncate": "round_robin"})
    classifier = _serialized("BertTextClassifier", "bert_text_classifier", {
        "backbone": _serialized("BertBackbone", "bert_backbone", backbone),
        "preprocessor": preprocessor, "name": "bert_text_classifier",
        "num_classes": int(tensors["output_bias"].shape[0]), "activation": "linear",
        "dropout": config.hidden_dropout_prob})
    head = _grouped(CLASSIFIER_ROWS, tensors, heads, lambda group: "logits")
    # The state of the optimizer a TextClassifier compiles by default (Adam(5e-5)),
    # not yet stepped: Keras warns when a preset holds none.
    head["optimizer/"] = ("adam", [np.array(0, np.int64), np.array(5e-5, np.float32)])
    empty = [("layers/dropout/", "classifier_dropout"),
             ("preprocessor/", "bert_text_classifier_preprocessor"),
             ("preprocessor/tokenizer/", "bert_tokenizer")]
    writers += [(TASK_FILE, lambda path: write_text(path, dump(classifier))),
                (PREPROCESSOR_FILE, lambda path: write_text(path, dump(preprocessor))),
                (TASK_WEIGHTS_FILE, lambda path: _write_h5(path, head, empty,
                                                           "bert_text_classifier"))]
  written = write_directory(os.fspath(output_dir), CONFIG_FILE, _PRESET_FILES, writers)
  return Conversion(os.fspath(ckpt_path), "keras-hub " + (
      "BertTextClassifier" if task == "classifier" else "BertBackbone"), task, len(tensors),
                    written, notes)


def _copy_into(source, path):
  """Copies `source` to `path`, creating its directory (assets/tokenizer/)."""
  directory = os.path.dirname(path)
  tf.io.gfile.makedirs(directory)
  copy_file(source, path)
