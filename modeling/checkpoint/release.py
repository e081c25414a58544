"""The layout of a Google BERT release, the hub every other format converts through.

A release directory holds `bert_model.ckpt` (name-based, model tensors only),
`bert_config.json` and `vocab.txt` (plus `labels.txt` for a classifier we
converted). The foreign formats' readers write one with `write_release`; their
writers read an original checkpoint with `read_original`.

  read_original(ckpt_path, bert_config_file, target, places, allow_unused)
      -> (BertConfig, {name: np.ndarray}, notes)
  write_release(output_dir, config, tensors, vocab_file=None, labels=None)
      -> paths written
  release_files(directory) -> (ckpt prefix, config file, vocab file or None)
  check_shapes(tensors, config, source), check_vocabulary(config, vocab_file)
"""

import os
import re

import numpy as np
import tensorflow as tf

from modeling.checkpoint.expected import expected_variables
from modeling.checkpoint.hf_import import copy_file, write_directory, write_text
from modeling.checkpoint.layout import compare, is_training_state, save
from modeling.checkpoint.loader import open_checkpoint
from modeling.data import files, tokenization
from modeling.model.config import BertConfig

CHECKPOINT_NAME, CONFIG_NAME, VOCAB_NAME = "bert_model.ckpt", "bert_config.json", "vocab.txt"

# What `write_release` (and from_hf's BERT and ALBERT layouts) leave, for `write_directory`.
RELEASE_FILES = ("bert_model.ckpt.*", "model.ckpt.*", "bert_config.json", "albert_config.json",
                 "vocab.txt", "spiece.model", "labels.txt")


def check_shapes(tensors, config, source):
  """Refuses tensors whose shapes disagree with `config` (each named)."""
  num_labels = tensors["output_bias"].shape[0] if "output_bias" in tensors else 2
  entries = {name: (value.shape, tf.as_dtype(value.dtype)) for name, value in tensors.items()}
  expected = expected_variables(config, None, num_labels)
  _, errors = compare(entries, expected, allow_missing=(r"^",), prefix=source)
  unknown = sorted(set(entries) - set(expected))
  errors += [f"no place in the original layout: {name}" for name in unknown]
  if errors:
    raise ValueError(f"{source}: the tensors do not fit the config:\n  " + "\n  ".join(errors))


def check_vocabulary(config, vocab_file):
  """Refuses a vocabulary with more entries than the config's vocab_size."""
  config.check_vocab_size(len(tokenization.create_tokenizer(vocab_file).vocab), vocab_file)


def read_original(ckpt_path, bert_config_file, target, places, allow_unused=()):
  """Reads the model tensors of an original checkpoint that a target format holds.

  Args:
    ckpt_path: a checkpoint prefix, a directory with a `checkpoint` file, or a
      Hugging Face directory (`loader.open_checkpoint`).
    bert_config_file: its bert_config.json; an ALBERT config is refused.
    target: the target format's name, for messages.
    places: regexes (`re.search`) of the names the target format holds.
    allow_unused: regexes of other names that may be left out.

  Returns:
    (BertConfig, {name: float32 np.ndarray}, notes).

  Raises:
    ValueError: an ALBERT config, tensors that do not fit the config, names the
      target has no place for (not in `allow_unused`).
  """
  config = BertConfig.from_json_file(os.fspath(bert_config_file))
  if config.is_albert:
    raise ValueError(f"{bert_config_file} is an ALBERT config; {target} holds BERT encoders "
                     "(ALBERT's shared layers and factorized embeddings have no place there)")
  prefix, reader, entries = open_checkpoint(ckpt_path)
  names = sorted(name for name in entries if not is_training_state(name))
  notes = []
  if len(names) < len(entries):
    notes.append(f"left out {len(entries) - len(names)} training-state entries (global_step, "
                 "Adam slots, bert_tf2/ state)")
  held = [re.compile(p) for p in places]
  allowed = [re.compile(p) for p in allow_unused]
  unused = [n for n in names if not any(p.search(n) for p in held)]
  refused = [n for n in unused if not any(p.search(n) for p in allowed)]
  if refused:
    raise ValueError(f"checkpoint {prefix}: {target} has no place for {', '.join(refused)}; "
                     "refused (nothing was written). Pass --allow_unused REGEX "
                     "(allow_unused=[...]) to leave them out")
  notes += [f"left out {name} (--allow_unused)" for name in unused]
  tensors = {n: reader.get_tensor(n) for n in names if n not in unused}
  for name, value in tensors.items():
    if value.dtype != np.float32:
      raise ValueError(f"checkpoint {prefix}: {name} has dtype {value.dtype.name}; "
                       f"{target} is written from float32 weights")
  check_shapes(tensors, config, f"checkpoint {prefix} with {bert_config_file}")
  return config, tensors, notes


def write_release(output_dir, config, tensors, vocab_file=None, labels=None):
  """Writes a release directory whole, or nothing (`hf_import.write_directory`).

  Args:
    output_dir: absent, empty, or an earlier conversion's directory.
    config: the BertConfig, written as bert_config.json.
    tensors: {original name: np.ndarray}, written as bert_model.ckpt.
    vocab_file: copied as vocab.txt, or None.
    labels: class names, written one a line as labels.txt, or None.

  Returns:
    The paths written.
  """
  with tf.device("/cpu:0"):
    variables = [tf.Variable(value, name=name, trainable=False)
                 for name, value in tensors.items()]
  writers = [(CHECKPOINT_NAME, lambda path: save(path, variables)),
             (CONFIG_NAME, lambda path: write_text(path, config.to_json_string()))]
  if vocab_file:
    writers.append((VOCAB_NAME, lambda path: copy_file(vocab_file, path)))
  if labels is not None:
    writers.append(("labels.txt", lambda path: write_text(
        path, "".join(f"{label}\n" for label in labels))))
  return write_directory(os.fspath(output_dir), "*config.json", RELEASE_FILES, writers)


def release_files(directory):
  """(checkpoint prefix, config file, vocab file or None) of a release directory,
  BERT's or ALBERT's (`from_hf` writes model.ckpt, albert_config.json)."""
  for ckpt, config, vocab in ((CHECKPOINT_NAME, CONFIG_NAME, VOCAB_NAME),
                              ("model.ckpt", "albert_config.json", "spiece.model")):
    if files.exists(os.path.join(directory, config)):
      vocab = os.path.join(directory, vocab)
      return (os.path.join(directory, ckpt), os.path.join(directory, config),
              vocab if files.exists(vocab) else None)
  raise FileNotFoundError(f"{directory}: no {CONFIG_NAME}")
