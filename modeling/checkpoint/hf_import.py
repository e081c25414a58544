"""Hugging Face BERT and ALBERT directories into the original layout, losslessly.

A Hugging Face BERT directory (`config.json` with "model_type": "bert", weights in
`model.safetensors` or shards listed by `model.safetensors.index.json`) holds the
tensors of an original checkpoint under other names; an ALBERT one ("model_type":
"albert") those of a checkpoint of Google's ALBERT (our `modeling.model.albert`),
with PyTorch's Linear weights [out, in] where the original's dense kernels are
[in, out]. Every tensor's bits are copied (a transpose only moves them); what the
original layout cannot represent is refused with its name, never dropped or
approximated. The name table and the config mapping are in `hf_names`; the other
direction is `hf_export`.

  read_hf(hf_dir, allow_unused=())              -> HfCheckpoint (in memory)
  from_hf(hf_dir, output_dir, allow_unused=())  -> Conversion
"""

import dataclasses
import os
import re

import numpy as np
import tensorflow as tf

from modeling.checkpoint.expected import expected_variables
from modeling.checkpoint.hf_names import (ARCHITECTURES, FAMILIES, architecture_of,
                                          canonical_key, config_from_hf, family_of,
                                          name_table, reading_table, refusal)
from modeling.checkpoint.layout import compare, save
from modeling.checkpoint.safetensors_files import (CONFIG_FILE, INDEX_FILE, WEIGHTS_FILE,
                                                   UNREAD_FORMATS, read_json, read_tensors)
from modeling.data import files
from modeling.model.config import BertConfig


@dataclasses.dataclass
class HfCheckpoint:
  """A Hugging Face BERT directory read into the original layout, in memory.

  Attributes:
    directory: the directory read.
    architecture: its transformers class (config.json's `architectures`, else
      what its tensors make it).
    config: our BertConfig.
    tensors: {our checkpoint name: float32 np.ndarray}.
    labels: the class names of a classifier head (`id2label`), else None.
    vocab_file: its vocab.txt (BERT) or spiece.model (ALBERT), or None.
    do_lower_case: tokenizer_config.json's do_lower_case, or None.
    notes: what was left out or widened, and why, one line each.
    multi_label: whether the classifier head is multi-label (problem_type
      multi_label_classification: a sigmoid per label).
  """
  directory: str
  architecture: str
  config: BertConfig
  tensors: dict
  labels: list = None
  vocab_file: str = None
  do_lower_case: bool = None
  notes: list = dataclasses.field(default_factory=list)
  multi_label: bool = False

  @property
  def task(self):
    return ARCHITECTURES[self.architecture].task

  @property
  def family(self):
    return FAMILIES[ARCHITECTURES[self.architecture].model_type]


def _same_bits(a, b):
  return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _buffer_note(key, value, config):
  """Why a non-weight buffer may be left out, or None if `key` is not one."""
  base = re.sub(r"^(bert|albert)\.", "", key)
  if base == "embeddings.position_ids" and np.array_equal(
      value.reshape(-1), np.arange(value.size)) and value.size == config.max_position_embeddings:
    return f"{key} (a buffer equal to 0..{value.size - 1}, not a weight)"
  if base == "embeddings.token_type_ids" and not np.any(value):
    return f"{key} (a buffer of zeros, not a weight)"
  return None


def _map_tensors(hf_tensors, config, allow_unused, source):
  """{our name: array} of the Hugging Face tensors, and notes on what was left out."""
  table = reading_table(config)
  mlm = family_of(config).mlm
  patterns = [re.compile(p) for p in allow_unused]
  tensors, origin, notes, unused = {}, {}, [], []
  decoder = {}
  for key in sorted(hf_tensors):
    value, name = hf_tensors[key], canonical_key(key)
    if name in (f"{mlm}.decoder.weight", f"{mlm}.decoder.bias"):
      decoder[name] = (key, value)
      continue
    if name not in table:
      note = _buffer_note(key, value, config)
      if note:
        notes.append(f"left out {note}")
      elif any(p.search(key) for p in patterns):
        notes.append(f"left out {key} {list(value.shape)} (--allow_unused)")
      else:
        unused.append(f"{key} {list(value.shape)}")
      continue
    ours, transposed = table[name]
    if ours in tensors:
      raise ValueError(f"{source}: both {origin[ours]} and {key} would be {ours}")
    origin[ours] = key
    tensors[ours] = np.ascontiguousarray(value.T) if transposed else value
  if unused:
    raise ValueError(f"{source}: tensors with no place in the original layout: "
                     f"{', '.join(unused)}; refused (nothing was written). Pass --allow_unused "
                     "REGEX (allow_unused=[...]) to leave them out")
  _check_decoder(decoder, tensors, mlm, source)
  return tensors, notes


def _check_decoder(decoder, tensors, mlm, source):
  """The MLM decoder (`mlm` the head's scope): its weight must be the word embeddings
  (the original ties them), its bias `cls/predictions/output_bias`."""
  if f"{mlm}.decoder.weight" in decoder:
    key, value = decoder[f"{mlm}.decoder.weight"]
    if not _same_bits(value, tensors.get("bert/embeddings/word_embeddings", np.empty(0))):
      raise ValueError(f"{source}: {key} differs from the word embeddings; the original "
                       "layout ties the masked-LM output weights to "
                       "bert/embeddings/word_embeddings and cannot hold untied ones; refused")
  if f"{mlm}.decoder.bias" in decoder:
    key, value = decoder[f"{mlm}.decoder.bias"]
    if "cls/predictions/output_bias" not in tensors:
      tensors["cls/predictions/output_bias"] = value
    elif not _same_bits(value, tensors["cls/predictions/output_bias"]):
      raise ValueError(f"{source}: {key} differs from {mlm}.bias; the original "
                       "layout has one masked-LM output bias; refused")


def _widen(tensors, notes, source):
  """float16 and bfloat16 tensors to float32 (exact); other non-float32 refused."""
  widened = []
  for name, value in tensors.items():
    if value.dtype in (np.float16, tf.bfloat16.as_numpy_dtype):
      widened.append(value.dtype.name)
      tensors[name] = value.astype(np.float32)
    elif value.dtype != np.float32:
      raise ValueError(f"{source}: {name} has dtype {value.dtype.name}; the original layout "
                       "holds float32 weights")
  if widened:
    notes.append(f"widened {len(widened)} {'/'.join(sorted(set(widened)))} tensors to float32 "
                 "(exact)")


def _check_shapes(tensors, config, source):
  """Refuses tensors whose shapes disagree with the config (named, with hints)."""
  num_labels = tensors["output_bias"].shape[0] if "output_bias" in tensors else 2
  entries = {name: (value.shape, tf.as_dtype(value.dtype)) for name, value in tensors.items()}
  _, errors = compare(entries, expected_variables(config, None, num_labels),
                                 allow_missing=(r"^",), prefix=source)
  if errors:
    raise ValueError(f"{source}: the tensors do not fit its config:\n  " + "\n  ".join(errors))


def _check_complete(tensors, config, architecture, source):
  """Refuses weights lacking a tensor the config and class imply, or not finite."""
  missing = sorted({ours for ours, _, _ in name_table(config, architecture)} - set(tensors))
  if missing:
    raise ValueError(f"{source}: {architecture} with this config has {len(missing)} tensors "
                     f"that the weights lack: {', '.join(missing[:8])}"
                     f"{', ...' if len(missing) > 8 else ''}; refused (nothing was written)")
  for name in sorted(tensors):
    if not np.all(np.isfinite(tensors[name])):
      raise ValueError(f"{source}: the weights' {name} holds NaN or Inf; refused (nothing "
                       "was written)")


def _problem_type(hf_config, architecture, count, source):
  """What a sentence classifier's head computes: "regression" (its problem_type, or
  one output), "multi_label_classification" (a sigmoid per label, run_classifier
  --multi_label), else "single_label_classification"; None for other heads.
  Refuses the problem types the original heads do not have."""
  if ARCHITECTURES[architecture].task != "classifier":
    return None
  problem_type = hf_config.get("problem_type")
  if problem_type in (None, "single_label_classification"):
    return "regression" if count == 1 else "single_label_classification"
  if problem_type == "regression" and count != 1:
    raise refusal(source, "problem_type", problem_type,
                  f"but the classifier has {count} outputs; a regression has one")
  if problem_type in ("regression", "multi_label_classification"):
    return problem_type
  raise refusal(source, "problem_type", problem_type,
                "which no head of the original layout computes (it has softmax and "
                "multi-label classification, and regression); refused, not read as "
                "single-label")


def read_hf(hf_dir, allow_unused=()):
  """Reads a Hugging Face BERT or ALBERT directory into the original layout, in memory.

  Args:
    hf_dir: a directory with config.json and model.safetensors (or the shards
      of model.safetensors.index.json); vocab.txt (BERT) or spiece.model
      (ALBERT) and tokenizer_config.json are read when present.
    allow_unused: regexes (`re.search`) of Hugging Face keys that have no place
      in the original layout and may be left out.

  Returns:
    An HfCheckpoint.

  Raises:
    FileNotFoundError: no config.json or weights.
    ValueError: what the original layout cannot hold, named: see
      `config_from_hf`, tensors with no place (not in `allow_unused`), an
      untied decoder, shapes that disagree with the config, labels that
      disagree with the classifier, a tensor the config implies absent or not
      finite, a problem_type no original head computes; and a directory
      holding only pytorch_model.bin, which is never unpickled.
  """
  hf_dir = os.fspath(hf_dir)
  config_path = os.path.join(hf_dir, CONFIG_FILE)
  weights = read_tensors(hf_dir)  # First: a pytorch_model.bin-only directory says why.
  if not files.exists(config_path):
    raise FileNotFoundError(f"{hf_dir}: no {CONFIG_FILE}")
  hf_config = read_json(config_path)
  config = config_from_hf(hf_config, config_path)
  architecture = architecture_of(hf_config, weights, config_path)
  tensors, notes = _map_tensors(weights, config, allow_unused, hf_dir)
  family = family_of(config)
  if hf_config.get("tie_word_embeddings") is False and "cls/predictions/output_bias" in tensors \
     and f"{family.mlm}.decoder.weight" not in weights:
    raise refusal(config_path, "tie_word_embeddings", False,
                  "but the masked-LM decoder weight is absent from the weights")
  _widen(tensors, notes, hf_dir)
  _check_shapes(tensors, config, hf_dir)
  _check_complete(tensors, config, architecture, config_path)
  labels, multi_label = None, False
  if "output_bias" in tensors:
    count = tensors["output_bias"].shape[0]
    id2label = hf_config.get("id2label")
    problem_type = _problem_type(hf_config, architecture, count, config_path)
    multi_label = problem_type == "multi_label_classification"
    if problem_type == "regression":
      notes.append(f"{config_path}: a regression head (one output, no labels.txt): "
                   "run_classifier.py reads it as --task_name=sts-b")
    elif multi_label:
      notes.append(f"{config_path}: a multi-label head (a sigmoid per label): "
                   "run_classifier.py reads it with --task_name=tsv --multi_label")
    if problem_type != "regression" and id2label:
      if sorted(id2label) != sorted(str(i) for i in range(count)):
        raise ValueError(f"{config_path}: id2label has ids {sorted(id2label)}, but the "
                         f"classifier has {count} outputs (classifier.bias [{count}])")
      labels = [str(id2label[str(i)]) for i in range(count)]
  vocab_file = os.path.join(hf_dir, family.vocab_file)
  tokenizer_config = os.path.join(hf_dir, "tokenizer_config.json")
  do_lower_case = None
  if files.exists(tokenizer_config):
    do_lower_case = read_json(tokenizer_config).get("do_lower_case")
  return HfCheckpoint(hf_dir, architecture, config, tensors, labels,
                      vocab_file if files.exists(vocab_file) else None, do_lower_case, notes,
                      multi_label)


@dataclasses.dataclass
class Conversion:
  """What a conversion did: the class and task, the files written, notes."""
  source: str
  architecture: str
  task: str
  tensors: int
  written: list
  notes: list

  def __str__(self):
    lines = [f"converted {self.source} ({self.architecture}, task {self.task}): "
             f"{self.tensors} tensors"]
    lines += [f"wrote {path}" for path in self.written]
    lines += self.notes
    return "\n".join(lines)


def copy_file(source, destination):
  with files.open(source, "rb") as reader:
    data = reader.read()
  with files.open(destination, "wb") as writer:
    writer.write(data)


def write_text(path, text):
  with files.open(path, "w") as writer:
    writer.write(text)


def write_directory(output_dir, marker, contents, writers):
  """Writes a converted model directory whole, or nothing.

  The files are written into a fresh temporary directory renamed to `output_dir`,
  so the directory holds this conversion's files and no other: no earlier
  `tokenizer.json` or `labels.txt` is left beside them, and a crash leaves the
  earlier directory as it was. An existing `output_dir` must be empty or an
  earlier conversion's (`files.atomic_directory`).

  Args:
    output_dir: the directory to write; its parent is created if needed.
    marker, contents: fnmatch patterns of a file every earlier conversion holds,
      and of all the files one may hold.
    writers: [(file name, write(path))], in the order of the paths returned.

  Returns:
    The paths written, in `output_dir`.
  """
  output_dir = output_dir.rstrip("/")
  parent = os.path.dirname(output_dir)
  if parent:
    tf.io.gfile.makedirs(parent)
  with files.atomic_directory(output_dir, marker, "output_dir", contents) as temp:
    tf.io.gfile.makedirs(temp)
    for name, write in writers:
      write(os.path.join(temp, name))
  return [os.path.join(output_dir, name) for name, _ in writers]


# What from_hf writes (BERT and ALBERT layouts), for `write_directory`.
_OURS = ("bert_model.ckpt.*", "model.ckpt.*", "bert_config.json", "albert_config.json",
         "vocab.txt", "spiece.model", "labels.txt")


def from_hf(hf_dir, output_dir, allow_unused=()):
  """Converts a Hugging Face BERT or ALBERT directory to the original layout.

  Writes `output_dir/bert_model.ckpt` (name-based), `bert_config.json`,
  `vocab.txt` when the directory has one, and `labels.txt` (one class a line,
  from `id2label`) for a classifier head; for ALBERT `model.ckpt`,
  `albert_config.json` and `spiece.model` (ALBERT's layout, for the scripts'
  --spm_model_file) instead. Nothing is written unless the whole conversion can
  go ahead, and then the directory holds these files only (`write_directory`).

  Args:
    hf_dir: the Hugging Face directory (see `read_hf`).
    output_dir: where to write: absent, empty, or an earlier conversion's.
    allow_unused: regexes of Hugging Face keys that may be left out.

  Returns:
    A Conversion.
  """
  hf = read_hf(hf_dir, allow_unused)
  with tf.device("/cpu:0"):
    variables = [tf.Variable(value, name=name, trainable=False)
                 for name, value in hf.tensors.items()]
  writers = [(hf.family.checkpoint_name, lambda path: save(path, variables)),
             (hf.family.config_file, lambda path: write_text(path, hf.config.to_json_string()))]
  notes = list(hf.notes)
  vocab_name = hf.family.vocab_file
  if hf.vocab_file:
    writers.append((vocab_name, lambda path: copy_file(hf.vocab_file, path)))
  else:
    notes.append(f"no {vocab_name} in {hf_dir}: give the scripts the model's vocabulary")
  if hf.labels is not None:
    writers.append(("labels.txt", lambda path: write_text(
        path, "".join(f"{label}\n" for label in hf.labels))))
  written = write_directory(os.fspath(output_dir), "*config.json", _OURS, writers)
  if hf.do_lower_case is not None:
    notes.append(f"tokenizer_config.json: do_lower_case={hf.do_lower_case}; run the scripts "
                 f"with --do_lower_case={hf.do_lower_case}")
  return Conversion(hf_dir, hf.architecture, hf.task, len(hf.tensors), written, notes)


class ArrayReader:
  """`get_tensor(name)` of a tf.train.CheckpointReader, over arrays in memory."""

  def __init__(self, tensors):
    self._tensors = tensors

  def get_tensor(self, name):
    return self._tensors[name]


def is_hf_directory(path):
  """Whether `path` is a Hugging Face model directory (not one of TF checkpoints)."""
  path = os.fspath(path)
  return (files.isdir(path) and not files.exists(os.path.join(path, "checkpoint"))
          and any(files.exists(os.path.join(path, name))
                  for name in (CONFIG_FILE, WEIGHTS_FILE, INDEX_FILE, *UNREAD_FORMATS)))


def open_directory(hf_dir):
  """`checkpoint.open_checkpoint` of a Hugging Face directory: (description,
  reader, {name: (shape, tf.DType)}) of its tensors in the original layout."""
  hf = read_hf(hf_dir)
  entries = {name: (tuple(value.shape), tf.as_dtype(value.dtype))
             for name, value in hf.tensors.items()}
  return (f"{os.fspath(hf_dir)} (Hugging Face {hf.architecture})", ArrayReader(hf.tensors),
          entries)
