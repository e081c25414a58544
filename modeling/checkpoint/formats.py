"""The checkpoint formats `convert` reads and writes, each recognised from its files.

Every format converts to and from the original layout, the hub: a conversion
between two other formats goes through a Google release directory
(`release.write_release`) in a temporary directory.

  FORMATS: {name: Format}; the first whose `detect` accepts a path is its format
  format_of(path)                      -> name
  open_any(path)                       -> (name, description, reader, entries)
  convert(src, dst, to, bert_config_file=None, vocab_file=None, **options)
                                       -> [Conversion], one per step

A Format's functions:
  detect(path) -> bool
  read(src, output_dir, bert_config_file=None, vocab_file=None, **options)
      -> Conversion, writing the release layout (bert_model.ckpt, bert_config.json,
         vocab.txt)
  write(ckpt_path, bert_config_file, output_dir, vocab_file=None, **options)
      -> Conversion
  lowercase(path) -> the tokenizer's do_lower_case recorded in `path`, or None
"""

import collections
import os
import tempfile

import tensorflow as tf

from modeling.checkpoint import (hf_export, hf_import, keras_hub, model_garden, tfhub_export,
                                 tfhub_import)
from modeling.checkpoint.hf_import import ArrayReader
from modeling.checkpoint.layout import open_prefix, resolve_prefix
from modeling.checkpoint.release import (CONFIG_NAME, VOCAB_NAME, check_vocabulary,
                                         read_original, release_files, write_release)
from modeling.checkpoint.safetensors_files import read_json
from modeling.data import files

Format = collections.namedtuple(
    "Format", "description detect read write lowercase read_options write_options")


def _beside(prefix, name):
  path = os.path.join(os.path.dirname(prefix), name)
  return path if files.exists(path) else None


def _refuse(flags, source, why):
  """Refuses the flags (name: value) given that cannot take effect."""
  given = [f"{flag}={value}" for flag, value in flags.items() if value]
  if given:
    raise ValueError(f"{', '.join(given)}: {source} {why}; the flag cannot take effect")


def is_original(path):
  """Whether `path` is a name-based TF1 checkpoint (a prefix, or a directory with a
  `checkpoint` file or a release's bert_model.ckpt)."""
  prefix = model_garden.checkpoint_prefix(path)
  return prefix is not None and not model_garden.is_model_garden(prefix)


def from_original(src, output_dir, bert_config_file=None, vocab_file=None, allow_unused=()):
  """An original checkpoint (of a run, with training state) to a release directory:
  its model tensors, config and vocabulary (given, or found beside it)."""
  prefix = model_garden.checkpoint_prefix(src) or resolve_prefix(src)
  bert_config_file = bert_config_file or _beside(prefix, CONFIG_NAME)
  if not bert_config_file:
    raise ValueError(f"{src}: no {CONFIG_NAME} beside the checkpoint; give --bert_config_file")
  vocab_file = vocab_file or _beside(prefix, VOCAB_NAME)
  config, tensors, notes = read_original(prefix, bert_config_file, "the original layout",
                                         (r"^",), allow_unused)
  if vocab_file:
    check_vocabulary(config, vocab_file)
  else:
    notes.append(f"no {VOCAB_NAME} beside {prefix} and no --vocab_file: none written")
  written = write_release(output_dir, config, tensors, vocab_file)
  return hf_import.Conversion(prefix, "original BERT", "as held", len(tensors), written, notes)


def to_original(ckpt_path, bert_config_file, output_dir, vocab_file=None, allow_unused=()):
  return from_original(ckpt_path, output_dir, bert_config_file, vocab_file, allow_unused)


def _from_hf(src, output_dir, bert_config_file=None, vocab_file=None, allow_unused=()):
  _refuse({"--bert_config_file": bert_config_file, "--vocab_file": vocab_file}, src,
          "is a Hugging Face directory, which holds its config.json and tokenizer files")
  return hf_import.from_hf(src, output_dir, allow_unused)


def _to_hf(ckpt_path, bert_config_file, output_dir, vocab_file=None, do_lower_case=True,
           task=None, labels_file=None, allow_unused=()):
  spm = vocab_file if vocab_file and vocab_file.endswith(".model") else None
  return hf_export.to_hf(ckpt_path, bert_config_file, output_dir, task,
                         None if spm else vocab_file, labels_file, do_lower_case, allow_unused,
                         spm)


def _hf_lowercase(path):
  tokenizer_config = os.path.join(os.fspath(path), "tokenizer_config.json")
  return read_json(tokenizer_config).get("do_lower_case") if files.exists(
      tokenizer_config) else None


def _keras_hub_lowercase(path):
  tokenizer = os.path.join(os.fspath(path), keras_hub.TOKENIZER_FILE)
  return read_json(tokenizer).get("config", {}).get("lowercase") if files.exists(
      tokenizer) else None


def _is_hf(path):
  return hf_import.is_hf_directory(path) and not keras_hub.is_keras_hub_preset(path)


# Detection order: a SavedModel holds a checkpoint in variables/; a keras-hub preset
# also has a config.json; a Model Garden checkpoint is also a TF checkpoint prefix.
FORMATS = {
    "tfhub": Format("TF Hub / Kaggle BERT encoder SavedModel", tfhub_import.is_tfhub_savedmodel,
                    tfhub_import.from_tfhub, tfhub_export.to_tfhub, tfhub_import.saved_lowercase, (),
                    ("do_lower_case", "seq_length")),
    "keras-hub": Format("keras-hub BertBackbone preset", keras_hub.is_keras_hub_preset,
                        keras_hub.from_keras_hub, keras_hub.to_keras_hub, _keras_hub_lowercase,
                        (), ("do_lower_case", "approximate_gelu", "allow_unused")),
    "hf": Format("Hugging Face directory", _is_hf, _from_hf, _to_hf, _hf_lowercase,
                 ("allow_unused",), ("do_lower_case", "task", "labels_file", "allow_unused")),
    "model-garden": Format("Model Garden TF2 checkpoint (BertEncoder)",
                           model_garden.is_model_garden, model_garden.from_model_garden,
                           model_garden.to_model_garden, lambda path: None,
                           ("allow_unused",), ("allow_unused",)),
    "original": Format("original TF1 checkpoint", is_original, from_original, to_original,
                       lambda path: None, ("allow_unused",), ("allow_unused",)),
}


def format_of(path):
  """The name of the format of `path` (FORMATS' first that detects it).

  Raises:
    FileNotFoundError: `path` is none of them, naming what each needs.
  """
  for name, row in FORMATS.items():
    if row.detect(path):
      return name
  raise FileNotFoundError(
      f"{path}: not a checkpoint of any supported format ({', '.join(FORMATS)}): expected a "
      "TF checkpoint prefix (or a directory holding one), a Hugging Face directory "
      "(config.json, model.safetensors), a keras-hub preset (config.json, "
      "model.weights.h5) or a SavedModel (saved_model.pb, variables/)")


def open_any(path):
  """Opens a checkpoint of any format for reading, in the original layout.

  Returns:
    (format name, description, reader with `get_tensor(name)`,
    {name: (shape tuple, tf.DType)}).
  """
  name = format_of(path)
  if name in ("model-garden", "keras-hub", "tfhub"):
    if name == "tfhub":
      tensors = tfhub_import.read_tfhub(path).tensors
      description = f"{os.fspath(path)} (TF Hub BERT encoder SavedModel)"
    elif name == "model-garden":
      _, tensors, _ = model_garden.read_model_garden(path)
      description = f"{model_garden.checkpoint_prefix(path)} (Model Garden BertEncoder)"
    else:
      tensors = keras_hub.read_keras_hub(path).tensors
      description = f"{os.fspath(path)} (keras-hub preset)"
    entries = {k: (tuple(v.shape), tf.as_dtype(v.dtype)) for k, v in tensors.items()}
    return name, description, ArrayReader(tensors), entries
  if name == "hf":
    return (name, *hf_import.open_directory(path))
  return (name, *open_prefix(model_garden.checkpoint_prefix(path)))


def convert(src, dst, to, bert_config_file=None, vocab_file=None, **options):
  """Converts the checkpoint `src` (of any format) to format `to` at `dst`.

  Args:
    src: a checkpoint of one of FORMATS, recognised from its files.
    dst: the directory to write, whole or not at all.
    to: a name in FORMATS.
    bert_config_file, vocab_file: for a source that holds none (an original or
      Model Garden checkpoint); refused for one that holds its own.
    options: do_lower_case (None: the source's, else True), approximate_gelu,
      seq_length,
      task, labels_file, allow_unused; None is not given. A given one is refused
      when neither the reading nor the writing side takes it.

  Returns:
    The Conversions done, one per step.
  """
  if to not in FORMATS:
    raise ValueError(f"--to={to}: not one of {', '.join(FORMATS)}")
  if os.path.realpath(os.fspath(src)) == os.path.realpath(os.fspath(dst)):
    raise ValueError(f"{dst}: the destination is the source; write the conversion elsewhere")
  source_name = format_of(src)
  source, target = FORMATS[source_name], FORMATS[to]
  given = {key: value for key, value in options.items() if value is not None}
  takes = set(target.write_options) | (set(source.read_options) if source_name != "original"
                                       else set())
  refused = sorted(set(given) - takes)
  if refused:
    raise ValueError(f"--{refused[0]}: converting {source_name} to {to} has no use for it; "
                     "refused, not ignored")
  if "do_lower_case" in target.write_options and given.get("do_lower_case") is None:
    lowercase = source.lowercase(src)
    given["do_lower_case"] = True if lowercase is None else lowercase
  read_options = {k: v for k, v in given.items() if k in source.read_options}
  write_options = {k: v for k, v in given.items() if k in target.write_options}
  if to == "original":
    return [source.read(src, dst, bert_config_file, vocab_file, **read_options)]
  if source_name == "original":
    prefix = model_garden.checkpoint_prefix(src) or resolve_prefix(src)
    bert_config_file = bert_config_file or _beside(prefix, CONFIG_NAME)
    if not bert_config_file:
      raise ValueError(f"{src}: no {CONFIG_NAME} beside the checkpoint; give "
                       "--bert_config_file")
    return [target.write(prefix, bert_config_file, dst, vocab_file or _beside(prefix, VOCAB_NAME),
                         **write_options)]
  with tempfile.TemporaryDirectory(prefix="bert-convert-") as temp:
    hub = os.path.join(temp, "original")
    first = source.read(src, hub, bert_config_file, vocab_file, **read_options)
    prefix, config_file, hub_vocab = release_files(hub)
    labels = os.path.join(hub, "labels.txt")
    if "labels_file" in target.write_options and files.exists(labels):
      write_options.setdefault("labels_file", labels)
    first.notes.append(f"wrote the original layout in a temporary directory, then {to}")
    first.written = []
    second = target.write(prefix, config_file, dst, hub_vocab, **write_options)
    second.source = f"{src} (through the original layout)"
    return [first, second]
