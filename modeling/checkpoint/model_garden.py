"""Model Garden TF2 `BertEncoder` checkpoints in and out of the original layout.

Model Garden converts the original's checkpoints to its object-based ones only;
these go both ways. Read: the encoder and pooler of `tf.train.Checkpoint(
encoder=BertEncoder(...))` (also under `model/` of a BertClassifier), the
masked-LM and next-sentence heads of BertPretrainerV2 and BertClassifier's output
projection, with
both the current and the pre-v2.4 attention output names (`model_garden_names`);
optimizer slots, `save_counter` and `global_step` are left out with a note.
Written: the same object paths (`encoder/`, `masked_lm/`, `model/`), so that
`tf.train.Checkpoint(encoder=BertEncoder(...)).restore(prefix)` (or `masked_lm=`,
`model=BertClassifier`) loads it, beside bert_config.json and vocab.txt as in
Model Garden's own TF2 BERT releases.

Sizes and heads follow from the shapes; what shapes cannot say (the activation,
the dropout) comes from a bert_config.json given or found beside the checkpoint,
and is otherwise BertEncoder's default (`gelu`, the tanh form), with a note.

  is_model_garden(path)                                  -> bool
  read_model_garden(ckpt_path, bert_config_file=None, allow_unused=())
                                                         -> (config, tensors, notes)
  from_model_garden(src, output_dir, bert_config_file=None, vocab_file=None,
                    allow_unused=())                     -> Conversion
  to_model_garden(ckpt_path, bert_config_file, output_dir, vocab_file=None,
                  allow_unused=())                       -> Conversion
"""

import os
import re

import tensorflow as tf

from modeling.checkpoint import model_garden_names as names
from modeling.checkpoint.hf_import import Conversion, copy_file, write_directory, write_text
from modeling.checkpoint.hf_names import infer_task
from modeling.checkpoint.layout import READ_ERRORS
from modeling.checkpoint.release import (CHECKPOINT_NAME, CONFIG_NAME, RELEASE_FILES,
                                         VOCAB_NAME, check_shapes, check_vocabulary,
                                         read_original, write_release)
from modeling.data import files
from modeling.model.config import BertConfig

_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
_COUNTERS = ("save_counter", "global_step")


def checkpoint_prefix(path):
  """The prefix of a TF checkpoint at `path` (a prefix, or a directory with a
  `checkpoint` file or one `*.index`), or None."""
  path = os.fspath(path).rstrip("/")
  if files.isdir(path):
    latest = tf.train.latest_checkpoint(path) if files.exists(
        os.path.join(path, "checkpoint")) else None
    if latest:
      return latest
    indexes = files.glob(os.path.join(path, "*.index"))
    return indexes[0][:-len(".index")] if len(indexes) == 1 else None
  return path if files.exists(path + ".index") else None


def is_model_garden(path):
  """Whether `path` is an object-based (TF2) checkpoint, as Model Garden writes."""
  prefix = checkpoint_prefix(path)
  if prefix is None:
    return False
  try:
    keys = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  except READ_ERRORS:
    return False
  return _GRAPH in keys and any(key.endswith(names.SUFFIX) for key in keys)


def _paths(prefix):
  """(reader, {object path: key}, notes) of the model variables of a TF2 checkpoint."""
  try:
    reader = tf.train.load_checkpoint(prefix)
  except READ_ERRORS as error:
    raise ValueError(f"{prefix}: unreadable checkpoint ({error.__class__.__name__})") from None
  paths, slots, counters = {}, 0, []
  for key in reader.get_variable_to_shape_map():
    if key == _GRAPH:
      continue
    if not key.endswith(names.SUFFIX):
      raise ValueError(f"{prefix}: {key} is a name-based entry; a Model Garden checkpoint is "
                       "object-based (names end in .ATTRIBUTES/VARIABLE_VALUE)")
    path = key[:-len(names.SUFFIX)]
    if path.startswith("optimizer/") or "/.OPTIMIZER_SLOT/" in path:
      slots += 1
    elif path.rsplit("/", 1)[-1] in _COUNTERS:
      counters.append(path)
    else:
      paths[path] = key
  notes = []
  if slots:
    notes.append(f"left out {slots} optimizer entries (slots and iterations): the original "
                 "layout's Adam slots are named by variable, Model Garden's by object")
  if counters:
    notes.append(f"left out {', '.join(sorted(counters))} (counters, not weights)")
  return reader, paths, notes


def _encoder_root(paths, prefix):
  """The object path of the one BertEncoder in a checkpoint, e.g. "encoder/"."""
  norm = names.layer(3) + "gamma"
  roots = sorted(p[:-len(norm)] for p in paths if p.endswith(norm)
                 and p[:-len(norm)] + names.layer(4) + "_attention_layer/_query_dense/kernel"
                 in paths)
  if len(roots) == 1:
    return roots[0]
  if roots:
    raise ValueError(f"{prefix}: {len(roots)} BertEncoders ({', '.join(roots)}); convert a "
                     "checkpoint of one")
  projection = [p for p in paths if p.endswith(names.layer(4) + "kernel")]
  hint = (f" ({projection[0]} looks like an embedding projection: BertEncoder with "
          "embedding_width != hidden_size, which the original BERT has no place for)"
          if projection else "")
  raise ValueError(f"{prefix}: no Model Garden BertEncoder in it (no "
                   f"<encoder>/{names.layer(4)}_attention_layer/_query_dense/kernel); another "
                   f"architecture{hint}? Its first variables: {', '.join(sorted(paths)[:5])}")


def _implied_config(tensors, heads, num_layers, bert_config_file, prefix, notes):
  """The BertConfig of the tensors: sizes from shapes, the rest from the file."""
  dims = {"vocab_size": tensors["bert/embeddings/word_embeddings"].shape[0],
          "hidden_size": tensors["bert/embeddings/word_embeddings"].shape[1],
          "max_position_embeddings": tensors["bert/embeddings/position_embeddings"].shape[0],
          "type_vocab_size": tensors["bert/embeddings/token_type_embeddings"].shape[0],
          "num_hidden_layers": num_layers, "num_attention_heads": heads,
          "intermediate_size":
              tensors["bert/encoder/layer_0/intermediate/dense/kernel"].shape[1]}
  if bert_config_file is None:
    notes.append(f"{prefix}: sizes from the shapes; hidden_act 'gelu' (the tanh form, "
                 "BertEncoder's default inner_activation), dropout 0.1: pass "
                 "--bert_config_file for a model trained otherwise")
    return BertConfig.from_dict({**dims, "hidden_act": "gelu"}, source=prefix)
  config = BertConfig.from_json_file(bert_config_file)
  wrong = [f"{key}={getattr(config, key)} where the checkpoint has {value}"
           for key, value in dims.items() if getattr(config, key) != value]
  if config.is_albert:
    wrong.insert(0, "an ALBERT config for a BERT encoder")
  if wrong:
    raise ValueError(f"{bert_config_file} disagrees with the shapes of {prefix}: "
                     + "; ".join(wrong))
  return config


def read_model_garden(ckpt_path, bert_config_file=None, allow_unused=()):
  """Reads a Model Garden BertEncoder checkpoint into the original layout, in memory.

  Args:
    ckpt_path: the checkpoint prefix, or a directory holding it.
    bert_config_file: a bert_config.json for what shapes cannot say; None: the
      one beside the checkpoint if any, else BertEncoder's defaults.
    allow_unused: regexes (`re.search`) of object paths with no place in the
      original layout that may be left out.

  Returns:
    (BertConfig, {original name: np.ndarray}, notes).

  Raises:
    FileNotFoundError: no checkpoint at `ckpt_path`.
    ValueError: not a BertEncoder, two of them, untied masked-LM weights, a
      tensor missing, paths with no place, a config that disagrees with the shapes.
  """
  prefix = checkpoint_prefix(ckpt_path)
  if prefix is None:
    raise FileNotFoundError(f"no checkpoint at {ckpt_path}")
  reader, paths, notes = _paths(prefix)
  root = _encoder_root(paths, prefix)
  num_layers = 0
  while root + names.layer(4 + num_layers) + "_attention_layer/_query_dense/kernel" in paths:
    num_layers += 1
  rows = [(root + path, ours, kind) for path, ours, kind in names.encoder_rows(num_layers)]
  rows += names.head_rows()
  word = root + names.layer(0) + "embeddings"
  if word not in paths and names.MLM_TABLE in paths:
    rows[0] = (names.MLM_TABLE, rows[0][1], rows[0][2])  # The tied table, saved once.
  used, tensors, missing = set(), {}, []
  for path, ours, kind in rows:
    found = path if path in paths else names.old_name(path)
    if found not in paths:
      if not ours.startswith(("cls/", "output_")):
        missing.append(path)
      continue
    used.add(found)
    tensors[ours] = (found, kind)
  if missing:
    raise ValueError(f"{prefix}: a BertEncoder of {num_layers} layers lacks "
                     f"{', '.join(missing[:6])}{', ...' if len(missing) > 6 else ''}")
  for head in ("cls/predictions/", "cls/seq_relationship/", "output_"):
    absent = [path for path, ours, _ in names.head_rows()
              if ours.startswith(head) and ours not in tensors]
    if absent and any(ours.startswith(head) for ours in tensors):
      raise ValueError(f"{prefix}: a head with {', '.join(absent)} absent; refused")
  heads = reader.get_variable_to_shape_map()[paths[tensors[
      "bert/encoder/layer_0/attention/self/query/kernel"][0]]][1]
  values = {ours: names.to_original(reader.get_tensor(paths[path]), kind)
            for ours, (path, kind) in tensors.items()}
  if names.MLM_TABLE in paths and names.MLM_TABLE not in used:
    table = reader.get_tensor(paths[names.MLM_TABLE])
    if table.tobytes() != values["bert/embeddings/word_embeddings"].tobytes():
      raise ValueError(f"{prefix}: {names.MLM_TABLE} differs from {word}; the original layout "
                       "ties the masked-LM output weights to the word embeddings; refused")
    used.add(names.MLM_TABLE)
  if "cls/seq_relationship/output_weights" in values:
    for part in ("kernel", "bias"):
      path = names.NSP_POOLER + part
      if path not in paths or reader.get_tensor(paths[path]).tobytes() != values[
          f"bert/pooler/dense/{part}"].tobytes():
        problem = "is absent" if path not in paths else "differs from the encoder's"
        raise ValueError(f"{prefix}: the next-sentence head's own pooler {path} {problem}; "
                         "the original layout's next-sentence head reads the encoder's pooler, "
                         "the only one it has; refused")
      used.add(path)
  patterns = [re.compile(p) for p in allow_unused]
  left = sorted(set(paths) - used)
  refused = [p for p in left if not any(r.search(p) for r in patterns)]
  if refused:
    raise ValueError(f"{prefix}: variables with no place in the original layout: "
                     f"{', '.join(refused)}; refused (nothing was written). Pass "
                     "--allow_unused REGEX (allow_unused=[...]) to leave them out")
  notes += [f"left out {p} (--allow_unused)" for p in left]
  if "cls/predictions/output_bias" in values:
    notes.append("masked-LM head read as applying hidden_act, as Model Garden's pretraining "
                 "config (mlm_activation: gelu) builds it")
  if bert_config_file is None and files.exists(os.path.join(os.path.dirname(prefix),
                                                            CONFIG_NAME)):
    bert_config_file = os.path.join(os.path.dirname(prefix), CONFIG_NAME)
    notes.append(f"config from {bert_config_file}")
  config = _implied_config(values, heads, num_layers, bert_config_file, prefix, notes)
  check_shapes(values, config, prefix)
  return config, values, notes


def from_model_garden(src, output_dir, bert_config_file=None, vocab_file=None,
                      allow_unused=()):
  """Converts a Model Garden BertEncoder checkpoint to a Google release directory.

  Writes `output_dir/bert_model.ckpt`, `bert_config.json`, and `vocab.txt`
  (`vocab_file`, or the one beside the checkpoint), whole or not at all.

  Returns:
    A Conversion.
  """
  config, tensors, notes = read_model_garden(src, bert_config_file, allow_unused)
  prefix = checkpoint_prefix(src)
  if vocab_file is None and files.exists(os.path.join(os.path.dirname(prefix), VOCAB_NAME)):
    vocab_file = os.path.join(os.path.dirname(prefix), VOCAB_NAME)
  if vocab_file:
    check_vocabulary(config, vocab_file)
  else:
    notes.append(f"no {VOCAB_NAME} beside {prefix} and no --vocab_file: give the scripts the "
                 "model's vocabulary")
  written = write_release(output_dir, config, tensors, vocab_file)
  return Conversion(prefix, "Model Garden BertEncoder", infer_task(tensors), len(tensors),
                    written, notes)


# The original names a Model Garden checkpoint holds.
_PLACES = (r"^bert/(embeddings|encoder|pooler)/", r"^cls/(predictions|seq_relationship)/",
           r"^output_(weights|bias)$")


def _unescape(part):
  """A checkpoint key's path component back to its object's local name
  ("output_bias.Sbias" -> "output_bias/bias", "a..b" -> "a.b")."""
  return re.sub(r"\.(.)", lambda m: {"S": "/", ".": "."}[m.group(1)], part)


def _tree(values, node=None):
  """Trackable nodes holding `values` ({object path: tf.Variable}) at their paths."""
  node = node if node is not None else tf.Module()
  for path, value in values.items():
    parent = node
    *parents, leaf = path.split("/")
    for part in parents:
      part = _unescape(part)
      if not hasattr(parent, part):
        setattr(parent, part, tf.Module())
      parent = getattr(parent, part)
    setattr(parent, _unescape(leaf), value)
  return node


def to_model_garden(ckpt_path, bert_config_file, output_dir, vocab_file=None, allow_unused=()):
  """Converts an original checkpoint to a Model Garden one, with its config and vocabulary.

  Writes `output_dir/bert_model.ckpt` (object-based: `encoder/` a BertEncoder;
  `masked_lm/` BertPretrainerV2's head when the checkpoint has cls/predictions;
  `model/` a BertClassifier when it has output_weights, or BertPretrainerV2's
  "next_sentence" ClassificationHead, its pooler a copy of the encoder's, when it
  has cls/seq_relationship), `bert_config.json` and `vocab.txt` when given;
  whole or not at all.

  Returns:
    A Conversion.
  """
  config, tensors, notes = read_original(ckpt_path, bert_config_file, "a Model Garden "
                                         "checkpoint", _PLACES, allow_unused)
  rows = [(names.ENCODER_ROOT + path, ours, kind)
          for path, ours, kind in names.encoder_rows(config.num_hidden_layers)]
  missing = [ours for _, ours, _ in rows if ours not in tensors]
  if missing:
    raise ValueError(f"checkpoint {ckpt_path}: a BertEncoder needs {', '.join(missing[:6])}"
                     f"{', ...' if len(missing) > 6 else ''}, which it lacks; refused")
  heads = config.num_attention_heads
  with tf.device("/cpu:0"):
    variables = {ours: tf.Variable(names.from_original(tensors[ours], kind, heads), name=ours,
                                   trainable=False)
                 for _, ours, kind in rows + names.head_rows() if ours in tensors}
  by_path = {path: variables[ours] for path, ours, _ in rows}
  by_path.update({path: variables[ours] for path, ours, _ in names.head_rows()
                  if ours in variables and not path.startswith(names.CLASSIFIER_ROOT)})
  if "cls/predictions/output_bias" in variables:
    by_path[names.MLM_TABLE] = variables["bert/embeddings/word_embeddings"]
  if "cls/seq_relationship/output_bias" in variables:
    if "output_bias" in variables:
      raise ValueError(f"checkpoint {ckpt_path}: Model Garden holds a BertClassifier or a "
                       "BertPretrainerV2's next-sentence head under model/, not both; refused "
                       "(leave one out of the checkpoint)")
    with tf.device("/cpu:0"):  # The head's own pooler, a copy of the encoder's.
      by_path.update({names.NSP_POOLER + part: tf.Variable(tensors[f"bert/pooler/dense/{part}"])
                      for part in ("kernel", "bias")})
  root = _tree(by_path)
  if "output_bias" in variables or "cls/seq_relationship/output_bias" in variables:
    model = tf.Module()
    if "output_bias" in variables:
      setattr(model, names.layer(0).rstrip("/"), root.encoder)  # The same objects: one copy.
    _tree({path[len(names.CLASSIFIER_ROOT):]: variables[ours]
           for path, ours, _ in names.head_rows()
           if path.startswith(names.CLASSIFIER_ROOT) and ours in variables}, model)
    root.model = model
  checkpoint = tf.train.Checkpoint(**{
      name: getattr(root, name)
      for name in ("encoder", "masked_lm", "model", _unescape(names.NSP_POOLER.rstrip("/")))
      if hasattr(root, name)})
  writers = [(CHECKPOINT_NAME, checkpoint.write),
             (CONFIG_NAME, lambda path: write_text(path, config.to_json_string()))]
  if vocab_file:
    check_vocabulary(config, vocab_file)
    writers.append((VOCAB_NAME, lambda path: copy_file(vocab_file, path)))
  written = write_directory(os.fspath(output_dir), "*config.json", RELEASE_FILES, writers)
  return Conversion(os.fspath(ckpt_path), "Model Garden BertEncoder", infer_task(variables),
                    len(variables), written, notes)
