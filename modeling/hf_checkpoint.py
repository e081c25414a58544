"""Hugging Face BERT and ALBERT checkpoints in and out, losslessly, in the original layout.

A Hugging Face BERT directory (`config.json` with "model_type": "bert", weights in
`model.safetensors` or shards listed by `model.safetensors.index.json`) holds the
tensors of an original checkpoint under other names; an ALBERT one ("model_type":
"albert") those of a checkpoint of Google's ALBERT (our `modeling.model.albert`),
with PyTorch's Linear weights [out, in] where the original's dense kernels are
[in, out]. Both directions copy
every tensor's bits (a transpose only moves them); what one side cannot represent
is refused with its name, never dropped or approximated.

  from_hf(hf_dir, output_dir, allow_unused=())       -> Conversion
  to_hf(ckpt_path, bert_config_file, output_dir, task=None, vocab_file=None,
        labels_file=None, do_lower_case=True, allow_unused=(),
        spm_model_file=None)                          -> Conversion
  read_hf(hf_dir, allow_unused=())                    -> HfCheckpoint (in memory)

Weights are read and written with the `safetensors` package, without PyTorch. A
`pytorch_model.bin` is a pickle, which can run any code when loaded: it is never
opened. The command line is `python -m modeling.checkpoint from-hf|to-hf`; the
name table and the config mapping are in modeling.hf_names.
"""

import dataclasses
import json
import os
import re

import numpy as np
import safetensors
import safetensors.numpy
import tensorflow as tf

from modeling import checkpoint
from modeling.data import files
from modeling.hf_names import (ARCHITECTURES, FAMILIES, TASKS, architecture_for,
                               architecture_of, canonical_key, config_from_hf, config_to_hf,
                               family_of, infer_task, name_table, reading_table, refusal)
from modeling.model.config import BertConfig
from modeling.model.heads import ClassifierHead, MaskedLMHead, NextSentenceHead, SquadHead
from modeling.model.model import BertModel
from modeling.training import loop

WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
CONFIG_FILE = "config.json"
# Weight files in formats we do not read, and why.
_UNREAD_FORMATS = {
    "pytorch_model.bin": "a Python pickle, and loading a pickle can run any code it contains",
    "tf_model.h5": "the Keras format of the TFBert* classes that transformers removed",
    "flax_model.msgpack": "the Flax format",
}


# ----------------------------------------------------------------------------
# JSON and labels files.

def _read_json(path):
  with files.open(path) as reader:
    text = reader.read()
  try:
    return json.loads(text)
  except json.JSONDecodeError as error:
    raise ValueError(f"{path}: not valid JSON ({error})") from None


def read_labels(labels_file, count):
  """The class names of `labels_file`, one a line, checked to number `count`."""
  with files.open(labels_file) as reader:
    labels = reader.read().splitlines()
  if len(labels) != count:
    raise ValueError(f"{labels_file}: {len(labels)} labels, but the checkpoint's classifier "
                     f"has {count} outputs (output_bias [{count}])")
  for number, label in enumerate(labels, 1):
    if not label.strip() or labels.index(label) != number - 1:
      raise ValueError(f"{labels_file}, line {number}: label {label!r} is "
                       f"{'empty' if not label.strip() else 'repeated'}")
  return labels


# ----------------------------------------------------------------------------
# Safetensors files, read and written through the safetensors package.

# safetensors dtype -> numpy dtype (bfloat16 is TensorFlow's numpy extension type).
_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16,
           "BF16": tf.bfloat16.as_numpy_dtype, "I64": np.int64, "I32": np.int32,
           "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _read_safetensors(path):
  """{key: np.ndarray} of a safetensors file (any dtype numpy or bfloat16 holds)."""
  with files.open(path, "rb") as reader:
    data = reader.read()
  try:
    entries = safetensors.deserialize(data)
  except Exception as error:  # SafetensorError, raised from Rust with no public class.
    raise ValueError(f"{path}: not a readable safetensors file ({error})") from None
  tensors = {}
  for key, entry in entries:
    if entry["dtype"] not in _DTYPES:
      raise ValueError(f"{path}: tensor {key} has dtype {entry['dtype']}, which has no "
                       "float32 counterpart in the original layout")
    dtype = np.dtype(_DTYPES[entry["dtype"]]).newbyteorder("<")
    tensors[key] = np.frombuffer(entry["data"], dtype).reshape(entry["shape"])
  return tensors


def _weight_files(hf_dir):
  """The safetensors files of a directory: [model.safetensors] or its shards."""
  single, index = os.path.join(hf_dir, WEIGHTS_FILE), os.path.join(hf_dir, INDEX_FILE)
  if files.exists(single):
    return [single], None
  if files.exists(index):
    weight_map = _read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
      raise ValueError(f"{index}: no \"weight_map\" of tensor names to shard files")
    for shard in set(weight_map.values()):
      if not isinstance(shard, str) or os.path.basename(shard) != shard or shard in (".", ".."):
        raise ValueError(f"{index}: shard {shard!r} is not a file name in {hf_dir}")
    return [os.path.join(hf_dir, shard) for shard in sorted(set(weight_map.values()))], weight_map
  found = [name for name in _UNREAD_FORMATS if files.exists(os.path.join(hf_dir, name))]
  if found:
    name = found[0]
    raise ValueError(
        f"{hf_dir} has {name} but no {WEIGHTS_FILE}: {name} is {_UNREAD_FORMATS[name]}, so it "
        f"is never read here. Get the model's {WEIGHTS_FILE} instead: most models on the "
        "Hugging Face Hub have one (see the repository's files, or its "
        "refs/pr/N safetensors conversion); for a file you trust, transformers converts it: "
        "python -c \"import transformers as t; t.BertForPreTraining.from_pretrained('DIR')"
        ".save_pretrained('NEW_DIR')\" (with the class named in its config.json)")
  raise FileNotFoundError(f"{hf_dir}: no {WEIGHTS_FILE} or {INDEX_FILE}")


def read_tensors(hf_dir):
  """{Hugging Face key: np.ndarray} of a directory's model.safetensors or shards."""
  paths, weight_map = _weight_files(hf_dir)
  tensors = {}
  for path in paths:
    for key, value in _read_safetensors(path).items():
      if weight_map is not None and weight_map.get(key) != os.path.basename(path):
        raise ValueError(f"{path}: tensor {key} is not listed for this shard in {INDEX_FILE}")
      tensors[key] = value
  if weight_map is not None and set(weight_map) - set(tensors):
    missing = sorted(set(weight_map) - set(tensors))
    raise ValueError(f"{os.path.join(hf_dir, INDEX_FILE)} lists tensors absent from their "
                     f"shards: {', '.join(missing[:5])}")
  return tensors


def write_safetensors(path, tensors):
  """Writes {key: np.ndarray} to `path` atomically, with the metadata transformers reads."""
  with files.atomic_open(path, "wb") as writer:
    writer.write(safetensors.numpy.save(tensors, metadata={"format": "pt"}))


# ----------------------------------------------------------------------------
# Hugging Face -> ours.

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
  """
  directory: str
  architecture: str
  config: BertConfig
  tensors: dict
  labels: list = None
  vocab_file: str = None
  do_lower_case: bool = None
  notes: list = dataclasses.field(default_factory=list)

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


def expected_shapes(config, num_labels=2):
  """{name: (shape, tf.DType)} of every variable the original layout holds for
  `config`: the encoder, pooler, both pretraining heads, a classifier head of
  `num_labels` outputs and the SQuAD head."""
  with tf.device("/cpu:0"):
    model = BertModel(config)
    modules = [model, MaskedLMHead(config, model.embedding_table), NextSentenceHead(config),
               ClassifierHead(config, num_labels), SquadHead(config)]
  return {name: (tuple(v.shape.as_list()), v.dtype)
          for name, v in checkpoint.named_variables(modules).items()}


def _check_shapes(tensors, config, source):
  """Refuses tensors whose shapes disagree with the config (named, with hints)."""
  num_labels = tensors["output_bias"].shape[0] if "output_bias" in tensors else 2
  entries = {name: (value.shape, tf.as_dtype(value.dtype)) for name, value in tensors.items()}
  _, errors = checkpoint.compare(entries, expected_shapes(config, num_labels),
                                 allow_missing=(r"^",), prefix=source)
  if errors:
    raise ValueError(f"{source}: the tensors do not fit its config:\n  " + "\n  ".join(errors))


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
      disagree with the classifier; and a directory holding only
      pytorch_model.bin, which is never unpickled.
  """
  hf_dir = os.fspath(hf_dir)
  config_path = os.path.join(hf_dir, CONFIG_FILE)
  weights = read_tensors(hf_dir)  # First: a pytorch_model.bin-only directory says why.
  if not files.exists(config_path):
    raise FileNotFoundError(f"{hf_dir}: no {CONFIG_FILE}")
  hf_config = _read_json(config_path)
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
  labels = None
  if "output_bias" in tensors:
    count = tensors["output_bias"].shape[0]
    id2label = hf_config.get("id2label")
    if id2label:
      if sorted(id2label) != sorted(str(i) for i in range(count)):
        raise ValueError(f"{config_path}: id2label has ids {sorted(id2label)}, but the "
                         f"classifier has {count} outputs (classifier.bias [{count}])")
      labels = [str(id2label[str(i)]) for i in range(count)]
  vocab_file = os.path.join(hf_dir, family.vocab_file)
  tokenizer_config = os.path.join(hf_dir, "tokenizer_config.json")
  do_lower_case = None
  if files.exists(tokenizer_config):
    do_lower_case = _read_json(tokenizer_config).get("do_lower_case")
  return HfCheckpoint(hf_dir, architecture, config, tensors, labels,
                      vocab_file if files.exists(vocab_file) else None, do_lower_case, notes)


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


def _copy_file(source, destination):
  with files.open(source, "rb") as reader:
    data = reader.read()
  with files.atomic_open(destination, "wb") as writer:
    writer.write(data)


def _write_text(path, text):
  with files.atomic_open(path) as writer:
    writer.write(text)


def from_hf(hf_dir, output_dir, allow_unused=()):
  """Converts a Hugging Face BERT or ALBERT directory to the original layout.

  Writes `output_dir/bert_model.ckpt` (name-based, atomic), `bert_config.json`,
  `vocab.txt` when the directory has one, and `labels.txt` (one class a line,
  from `id2label`) for a classifier head; for ALBERT `model.ckpt`,
  `albert_config.json` and `spiece.model` (ALBERT's layout, for the scripts'
  --spm_model_file) instead. Nothing is written unless the whole conversion can
  go ahead.

  Args:
    hf_dir: the Hugging Face directory (see `read_hf`).
    output_dir: where to write; created if needed.
    allow_unused: regexes of Hugging Face keys that may be left out.

  Returns:
    A Conversion.
  """
  hf = read_hf(hf_dir, allow_unused)
  output_dir = os.fspath(output_dir)
  prefix = os.path.join(output_dir, hf.family.checkpoint_name)
  with tf.device("/cpu:0"):
    variables = [tf.Variable(value, name=name, trainable=False)
                 for name, value in hf.tensors.items()]
  checkpoint.save(prefix, variables)
  written = [prefix]
  config_file = os.path.join(output_dir, hf.family.config_file)
  _write_text(config_file, hf.config.to_json_string())
  written.append(config_file)
  notes = list(hf.notes)
  vocab_name = hf.family.vocab_file
  if hf.vocab_file:
    _copy_file(hf.vocab_file, os.path.join(output_dir, vocab_name))
    written.append(os.path.join(output_dir, vocab_name))
  else:
    notes.append(f"no {vocab_name} in {hf_dir}: give the scripts the model's vocabulary")
  if hf.labels is not None:
    _write_text(os.path.join(output_dir, "labels.txt"), "".join(f"{l}\n" for l in hf.labels))
    written.append(os.path.join(output_dir, "labels.txt"))
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
                  for name in (CONFIG_FILE, WEIGHTS_FILE, INDEX_FILE, *_UNREAD_FORMATS)))


def open_directory(hf_dir):
  """`checkpoint.open_checkpoint` of a Hugging Face directory: (description,
  reader, {name: (shape, tf.DType)}) of its tensors in the original layout."""
  hf = read_hf(hf_dir)
  entries = {name: (tuple(value.shape), tf.as_dtype(value.dtype))
             for name, value in hf.tensors.items()}
  return (f"{os.fspath(hf_dir)} (Hugging Face {hf.architecture})", ArrayReader(hf.tensors),
          entries)


# ----------------------------------------------------------------------------
# Ours -> Hugging Face.

def _is_training_state(name):
  """global_step, the Adam slots, and our training loop's `bert_tf2/` state."""
  return (name == "global_step" or name.endswith(("/adam_m", "/adam_v"))
          or any(re.search(pattern, name) for pattern in loop.OPTIONAL_STATE))


def to_hf(ckpt_path, bert_config_file, output_dir, task=None, vocab_file=None,
          labels_file=None, do_lower_case=True, allow_unused=(), spm_model_file=None):
  """Converts a checkpoint in the original layout (ours or the original's, BERT or
  ALBERT as its config says) to a Hugging Face directory.

  Writes `model.safetensors`, `config.json` (`architectures`, `hidden_act`,
  `id2label`) and, with a vocabulary, `vocab.txt` (or ALBERT's `spiece.model`)
  and `tokenizer_config.json`.
  The training state (`global_step`, Adam slots, our loop's `bert_tf2/`
  variables) is left out; so is the pooler for the classes
  that have none (BertForQuestionAnswering, BertForTokenClassification,
  BertForMaskedLM: their heads do not read it). Nothing is written unless the
  whole conversion can go ahead.

  Args:
    ckpt_path: a checkpoint prefix, or a directory with a `checkpoint` file.
    bert_config_file: its bert_config.json.
    output_dir: where to write; created if needed.
    task: "encoder" (BertModel), "pretraining" (BertForPreTraining, or
      BertForMaskedLM without cls/seq_relationship), "classifier"
      (BertForSequenceClassification), "squad" (BertForQuestionAnswering),
      "ner" (BertForTokenClassification); None: from the checkpoint's heads.
    vocab_file: the vocab.txt to ship, or None.
    spm_model_file: instead, an ALBERT config's SentencePiece model, shipped as
      spiece.model with tokenizer_class AlbertTokenizer.
    labels_file: the class names, one a line (run_classifier writes
      labels.txt), for classifier and ner; else LABEL_0, LABEL_1, ...
    do_lower_case: written to tokenizer_config.json.
    allow_unused: regexes of checkpoint names the class has no place for that
      may be left out (e.g. "^cls/" with task encoder).

  Returns:
    A Conversion.
  """
  bert_config_file, output_dir = os.fspath(bert_config_file), os.fspath(output_dir)
  vocab_file = vocab_file and os.fspath(vocab_file)
  labels_file = labels_file and os.fspath(labels_file)
  spm_model_file = spm_model_file and os.fspath(spm_model_file)
  config = BertConfig.from_json_file(bert_config_file)
  family = family_of(config)
  if spm_model_file and (vocab_file or not config.is_albert):
    raise ValueError(f"--spm_model_file={spm_model_file}: "
                     + ("give --vocab_file or --spm_model_file, not both" if vocab_file else
                        f"{bert_config_file} is a BERT config; a SentencePiece model goes "
                        "with an ALBERT config (give --vocab_file)"))
  prefix, reader, entries = checkpoint.open_checkpoint(ckpt_path)
  names = {name for name in entries if not _is_training_state(name)}
  task = task or infer_task(names)
  if task not in TASKS:
    raise ValueError(f"task {task!r} is not one of {', '.join(TASKS)}")
  architecture = architecture_for(task, names, family.model_type)
  rows = name_table(config, architecture)
  needed = {ours for ours, _, _ in rows}
  num_labels = entries["output_bias"][0][0] if "output_bias" in entries else 2
  expected = expected_shapes(config, num_labels)
  _, errors = checkpoint.compare({n: entries[n] for n in names & needed},
                                 {n: expected[n] for n in needed}, prefix=prefix)
  if errors:
    raise ValueError(f"checkpoint {prefix} does not fit {bert_config_file} for "
                     f"{architecture}:\n  " + "\n  ".join(errors))
  notes = []
  patterns = [re.compile(p) for p in allow_unused]
  unused = []
  for name in sorted(names - needed):
    if name.startswith("bert/pooler/") and not ARCHITECTURES[architecture].pooler:
      notes.append(f"left out {name} ({architecture} has no pooler; its head does not read it)")
    elif any(p.search(name) for p in patterns):
      notes.append(f"left out {name} (--allow_unused)")
    else:
      unused.append(name)
  if unused:
    raise ValueError(f"checkpoint {prefix}: {architecture} (task {task}) has no place for "
                     f"{', '.join(unused)}; refused (nothing was written). Choose the --task "
                     "that holds them, or pass --allow_unused REGEX to leave them out")
  state = len(entries) - len(names)
  if state:
    notes.append(f"left out {state} training-state entries (global_step, Adam slots, "
                 "bert_tf2/ state)")
  labels = None
  if ARCHITECTURES[architecture].heads == ("classifier",):
    count = entries["output_bias"][0][0]
    labels = (read_labels(labels_file, count) if labels_file
              else [f"LABEL_{i}" for i in range(count)])
  hf_config = config_to_hf(config, architecture, labels, bert_config_file)
  tensors = {}
  for ours, theirs, transposed in rows:
    value = reader.get_tensor(ours)
    tensors[theirs] = np.ascontiguousarray(value.T) if transposed else value

  tf.io.gfile.makedirs(output_dir)
  written = [os.path.join(output_dir, WEIGHTS_FILE), os.path.join(output_dir, CONFIG_FILE)]
  write_safetensors(written[0], tensors)
  _write_text(written[1], json.dumps(hf_config, indent=2, sort_keys=True) + "\n")
  tokenizer = FAMILIES["albert" if spm_model_file else "bert"]
  if vocab_file or spm_model_file:
    written += [os.path.join(output_dir, tokenizer.vocab_file),
                os.path.join(output_dir, "tokenizer_config.json")]
    _copy_file(vocab_file or spm_model_file, written[-2])
    _write_text(written[-1], json.dumps(
        {"do_lower_case": bool(do_lower_case), "tokenizer_class": tokenizer.tokenizer_class,
         "model_max_length": config.max_position_embeddings}, indent=2) + "\n")
  else:
    notes.append("no --vocab_file or --spm_model_file: no tokenizer files written")
  return Conversion(prefix, architecture, task, len(tensors), written, notes)
