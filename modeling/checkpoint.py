"""Name-based checkpoints in the original TF1 layout, both ways.

A variable's checkpoint name is its `tf.Variable.name` without ":0", which our
modules set to the original's names, so Google's checkpoints load with no
conversion table and ours load into the original code.

  load(ckpt_path, variables, allow_missing=())  -> LoadReport
  save(ckpt_prefix, variables)                  -> the prefix written

Command line:
  python -m modeling.checkpoint inspect CKPT
  python -m modeling.checkpoint check --bert_config_file CONFIG CKPT \
      [--task encoder|pretraining|classifier|squad]
  python -m modeling.checkpoint from-hf HF_DIR OUTPUT_DIR [--allow_unused REGEX]
  python -m modeling.checkpoint to-hf --bert_config_file CONFIG CKPT OUTPUT_DIR \
      [--task ...] [--vocab_file V | --spm_model_file M] [--labels_file L] \
      [--do_lower_case B]

CKPT may also be a Hugging Face directory (config.json, model.safetensors), read
in the original layout by `modeling.hf_checkpoint`, whose `from_hf` and `to_hf`
are also reachable here (`checkpoint.from_hf`, `checkpoint.to_hf`).
"""

import argparse
import dataclasses
import os
import re
import sys
import uuid

import numpy as np
import tensorflow as tf

from modeling.model.config import BertConfig
from modeling.model.heads import ClassifierHead, MaskedLMHead, NextSentenceHead, SquadHead
from modeling.model.model import BertModel
from modeling.tasks import classifier, pretraining, squad


# What reading a corrupt or truncated checkpoint raises, depending on where it breaks.
_READ_ERRORS = (tf.errors.OpError, ValueError, IndexError)


def checkpoint_name(variable):
  """The checkpoint key of a variable: `variable.name` without the ":N" suffix."""
  return re.sub(r":\d+$", "", variable.name)


def named_variables(variables):
  """Maps checkpoint names to variables.

  Args:
    variables: a tf.Module, a tf.Variable, or an iterable of either.

  Raises:
    ValueError: two different variables share a name.
  """
  if isinstance(variables, (tf.Module, tf.Variable)):
    variables = [variables]
  by_name = {}
  for item in variables:
    for variable in (item.variables if isinstance(item, tf.Module) else [item]):
      name = checkpoint_name(variable)
      if name in by_name and by_name[name] is not variable:
        raise ValueError(f"two different variables are both named {name!r}")
      by_name[name] = variable
  return by_name


def _resolve(ckpt_path):
  """A checkpoint prefix from a prefix or a directory with a `checkpoint` file."""
  ckpt_path = os.fspath(ckpt_path)
  if os.path.isdir(ckpt_path):
    latest = tf.train.latest_checkpoint(ckpt_path)
    if latest is None:
      raise FileNotFoundError(f"no checkpoint found in directory {ckpt_path}")
    return latest
  if not tf.io.gfile.exists(ckpt_path + ".index"):
    raise FileNotFoundError(f"checkpoint not found: {ckpt_path} (no {ckpt_path}.index)")
  return ckpt_path


def open_checkpoint(ckpt_path):
  """Opens a checkpoint, or a Hugging Face directory (converted in memory), for reading.

  Returns:
    (prefix, reader, {name: (shape tuple, tf.DType)}).

  Raises:
    FileNotFoundError: no such checkpoint.
    ValueError: the checkpoint's files are corrupt or truncated.
  """
  from modeling import hf_checkpoint  # imported here: it imports this module
  if hf_checkpoint.is_hf_directory(ckpt_path):
    return hf_checkpoint.open_directory(ckpt_path)
  prefix = _resolve(ckpt_path)
  try:
    reader = tf.train.load_checkpoint(prefix)
  except _READ_ERRORS as error:
    raise ValueError(f"{prefix}: unreadable checkpoint ({error.__class__.__name__}: "
                     f"{getattr(error, 'message', error)})") from None
  shapes = reader.get_variable_to_shape_map()
  dtypes = reader.get_variable_to_dtype_map()
  return prefix, reader, {name: (tuple(shapes[name]), dtypes[name]) for name in shapes}


@dataclasses.dataclass
class LoadReport:
  """What a load did (or, for `compare`, would do): lists of checkpoint names.

  Attributes:
    checkpoint: the checkpoint prefix.
    loaded: names read from the checkpoint into variables.
    missing: variable names absent from the checkpoint (left as initialised).
    unexpected: checkpoint names with no variable (optimizer slots, other heads).
    mismatched: "name: checkpoint [..] float32 vs variable [..] float32" lines.
  """
  checkpoint: str
  loaded: list
  missing: list
  unexpected: list
  mismatched: list = dataclasses.field(default_factory=list)

  def __str__(self):
    lines = [f"checkpoint {self.checkpoint}: {len(self.loaded)} variables loaded"]
    for title, names in (("shape or dtype mismatches", self.mismatched),
                         ("missing from the checkpoint", self.missing),
                         ("in the checkpoint but not used", self.unexpected)):
      if names:
        lines.append(f"{len(names)} {title}:")
        lines.extend(f"  {name}" for name in names)
    return "\n".join(lines)


def _describe(shape, dtype):
  return f"[{', '.join(map(str, shape))}] {tf.as_dtype(dtype).name}"


def _mismatch_hint(name, ckpt_shape, var_shape):
  if name == "bert/embeddings/word_embeddings" and ckpt_shape[:1] != var_shape[:1]:
    return (f" (the config's vocab_size={var_shape[0]} disagrees with the checkpoint's "
            f"{ckpt_shape[0]} embedding rows: use the bert_config.json and vocab.txt that "
            "came with the checkpoint)")
  if name == "bert/embeddings/position_embeddings" and ckpt_shape[:1] != var_shape[:1]:
    return (f" (max_position_embeddings={var_shape[0]} in the config, "
            f"{ckpt_shape[0]} in the checkpoint)")
  return ""


def compare(ckpt_entries, expected, allow_missing=(), prefix="<checkpoint>"):
  """Matches checkpoint entries to the variables a model expects.

  Args:
    ckpt_entries: {name: (shape, dtype)} of the checkpoint.
    expected: {name: (shape, dtype)} of the variables to fill.
    allow_missing: regexes; an expected name absent from the checkpoint is
      acceptable when one of them matches it (`re.search`).
    prefix: the checkpoint's name, for the report.

  Returns:
    (LoadReport, list of error lines; empty when the load may go ahead).
  """
  patterns = [re.compile(p) for p in allow_missing]
  report = LoadReport(prefix, [], [], sorted(set(ckpt_entries) - set(expected)))
  errors = []
  for name in sorted(expected):
    shape, dtype = expected[name]
    if name not in ckpt_entries:
      report.missing.append(name)
      if not any(p.search(name) for p in patterns):
        errors.append(f"missing from the checkpoint: {name} {_describe(shape, dtype)}")
      continue
    ckpt_shape, ckpt_dtype = ckpt_entries[name]
    if tuple(ckpt_shape) != tuple(shape) or tf.as_dtype(ckpt_dtype) != tf.as_dtype(dtype):
      line = (f"{name}: checkpoint {_describe(ckpt_shape, ckpt_dtype)} vs variable "
              f"{_describe(shape, dtype)}{_mismatch_hint(name, ckpt_shape, shape)}")
      report.mismatched.append(line)
      errors.append(f"shape or dtype mismatch: {line}")
      continue
    report.loaded.append(name)
  return report, errors


def load(ckpt_path, variables, allow_missing=()):
  """Reads a checkpoint (ours or the original's) into variables, by name.

  Strict: every variable must be in the checkpoint with the same shape and dtype,
  unless its name matches a regex in `allow_missing` (e.g. `(r"^output_",)` for a
  classifier head absent from a pretrained checkpoint). Checkpoint entries with no
  variable (optimizer slots, unused heads) are listed in the report, not errors.
  Nothing is assigned unless the whole load can go ahead.

  Args:
    ckpt_path: a checkpoint prefix, or a directory holding a `checkpoint` file.
    variables: a tf.Module, a tf.Variable or an iterable of either.
    allow_missing: regexes naming the variables that may be absent.

  Returns:
    A LoadReport.

  Raises:
    FileNotFoundError: no such checkpoint.
    ValueError: missing variables, shape/dtype mismatches or corrupt files, each
      named in the message.
  """
  by_name = named_variables(variables)
  prefix, reader, entries = open_checkpoint(ckpt_path)
  expected = {name: (tuple(v.shape.as_list()), v.dtype) for name, v in by_name.items()}
  report, errors = compare(entries, expected, allow_missing, prefix)
  if errors:
    raise ValueError(f"checkpoint {prefix} does not fit the model:\n  " + "\n  ".join(errors))
  values = {}
  for name in report.loaded:
    try:
      values[name] = reader.get_tensor(name)
    except _READ_ERRORS as error:
      raise ValueError(f"{prefix}: cannot read {name} ({error.__class__.__name__}); the "
                       "checkpoint data file is corrupt or truncated") from None
  for name, value in values.items():
    by_name[name].assign(value)
  return report


def save(ckpt_prefix, variables):
  """Writes variables to a name-based checkpoint in the original TF1 layout.

  The files are written under a temporary prefix and renamed into place, data
  file first and index last, so a crash never leaves a half-written checkpoint
  under `ckpt_prefix` (the index is what makes a checkpoint visible to readers).

  Args:
    ckpt_prefix: path prefix, e.g. `out/model.ckpt-1000`.
    variables: a tf.Module, a tf.Variable or an iterable of either.

  Returns:
    `ckpt_prefix`.
  """
  ckpt_prefix = os.fspath(ckpt_prefix)
  by_name = named_variables(variables)
  names = sorted(by_name)
  directory = os.path.dirname(ckpt_prefix) or "."
  tf.io.gfile.makedirs(directory)
  # Dot-prefixed, so no glob of the checkpoint's name (`model.ckpt-*`) sees it.
  temp_prefix = os.path.join(directory, f".{os.path.basename(ckpt_prefix)}.tmp-{uuid.uuid4().hex}")
  try:
    with tf.device("/cpu:0"):
      tf.raw_ops.SaveV2(prefix=temp_prefix, tensor_names=names,
                        shape_and_slices=[""] * len(names),
                        tensors=[tf.convert_to_tensor(by_name[n]) for n in names])
    temp_files = tf.io.gfile.glob(temp_prefix + ".*")
    data_files = sorted(f for f in temp_files if not f.endswith(".index"))
    for path in data_files + [temp_prefix + ".index"]:
      tf.io.gfile.rename(path, ckpt_prefix + path[len(temp_prefix):], overwrite=True)
  except (tf.errors.OpError, OSError) as error:
    for path in tf.io.gfile.glob(temp_prefix + ".*"):
      tf.io.gfile.remove(path)
    cause = getattr(error, "message", None) or error.strerror or str(error)
    raise OSError(f"cannot write checkpoint {ckpt_prefix}: {cause} (is the disk full?); "
                  "nothing was written under that name") from None
  return ckpt_prefix


# ----------------------------------------------------------------------------
# Command line: inspect and check.

def implied_dimensions(entries):
  """The model dimensions a checkpoint implies, from its variable shapes."""
  dims = {}
  shape = lambda name: entries[name][0] if name in entries else None  # noqa: E731
  if shape("bert/embeddings/word_embeddings"):
    dims["vocab_size"], dims["hidden_size"] = shape("bert/embeddings/word_embeddings")
  if shape("bert/embeddings/position_embeddings"):
    dims["max_position_embeddings"] = shape("bert/embeddings/position_embeddings")[0]
  if shape("bert/embeddings/token_type_embeddings"):
    dims["type_vocab_size"] = shape("bert/embeddings/token_type_embeddings")[0]
  layers = {int(m.group(1)) for n in entries for m in [re.match(r"bert/encoder/layer_(\d+)/", n)]
            if m}
  if layers:
    dims["num_hidden_layers"] = max(layers) + 1
  if shape("bert/encoder/layer_0/intermediate/dense/kernel"):
    dims["intermediate_size"] = shape("bert/encoder/layer_0/intermediate/dense/kernel")[1]
  dims.update(_implied_albert_dimensions(entries))
  heads = [head for head, key in (("pretraining MLM", "cls/predictions/output_bias"),
                                  ("pretraining NSP", "cls/seq_relationship/output_bias"),
                                  ("classifier", "output_bias"),
                                  ("SQuAD span", "cls/squad/output_bias")) if key in entries]
  if "output_bias" in entries:
    dims["num_labels"] = entries["output_bias"][0][0]
  dims["heads"] = ", ".join(heads) or "none (encoder only)"
  dims["optimizer slots"] = "yes" if any(n.endswith("/adam_m") for n in entries) else "no"
  return dims


def _implied_albert_dimensions(entries):
  """ALBERT's dimensions from its shared-layer names (none for a BERT checkpoint).

  The number of layers is not in an ALBERT checkpoint: groups are shared by
  num_hidden_layers / num_hidden_groups layers each.
  """
  blocks = [m.groups() for n in entries
            for m in [re.match(r"bert/encoder/transformer/group_(\d+)/inner_group_(\d+)/", n)]
            if m]
  if not blocks:
    return {}
  dims = {"model": "ALBERT (factorized embeddings, shared layers)",
          "num_hidden_groups": max(int(g) for g, _ in blocks) + 1,
          "inner_group_num": max(int(i) for _, i in blocks) + 1}
  if "bert/embeddings/word_embeddings" in entries:
    dims["embedding_size"] = entries["bert/embeddings/word_embeddings"][0][1]
  kernel = "bert/encoder/transformer/group_0/inner_group_0/ffn_1/intermediate/dense/kernel"
  if kernel in entries:
    dims["hidden_size"], dims["intermediate_size"] = entries[kernel][0]
  return dims


def inspect_checkpoint(ckpt_path, out=sys.stdout):
  """Prints names, shapes, dtypes, parameter count and implied dimensions."""
  prefix, reader, entries = open_checkpoint(ckpt_path)
  print(f"checkpoint: {prefix}", file=out)
  total = 0
  for name in sorted(entries):
    shape, dtype = entries[name]
    total += int(np.prod(shape)) if not name.endswith(("/adam_m", "/adam_v")) else 0
    print(f"  {name:70s} {_describe(shape, dtype)}", file=out)
  print(f"variables: {len(entries)}; parameters (without optimizer slots): {total:,}", file=out)
  if "global_step" in entries:
    print(f"global_step: {int(reader.get_tensor('global_step'))}", file=out)
  for key, value in implied_dimensions(entries).items():
    print(f"{key}: {value}", file=out)


TASKS = ("encoder", "pretraining", "classifier", "squad")


def expected_variables(config, task, num_labels=2):
  """{name: (shape, dtype)} of the variables a task's model creates."""
  with tf.device("/cpu:0"):
    model = BertModel(config)
    modules = [model]
    if task == "pretraining":
      modules += [MaskedLMHead(config, model.embedding_table), NextSentenceHead(config)]
    elif task == "classifier":
      modules.append(ClassifierHead(config, num_labels))
    elif task == "squad":
      modules.append(SquadHead(config))
  return {name: (tuple(v.shape.as_list()), v.dtype)
          for name, v in named_variables(modules).items()}


# Heads a user's checkpoint may lack for each task: they start fresh.
FRESH_HEADS = {"encoder": (), "pretraining": pretraining.FRESH_HEADS,
               "classifier": classifier.FRESH_HEAD, "squad": squad.FRESH_HEAD}


def check_checkpoint(config_file, ckpt_path, task="encoder", out=sys.stdout):
  """Checks that a checkpoint fits a config for a task; returns True when it does.

  Reads every tensor, so truncated or corrupt data files are found too.
  """
  config = BertConfig.from_json_file(config_file)
  prefix, reader, entries = open_checkpoint(ckpt_path)
  num_labels = entries["output_bias"][0][0] if "output_bias" in entries else 2
  expected = expected_variables(config, task, num_labels)
  report, errors = compare(entries, expected, FRESH_HEADS[task], prefix)
  for name in sorted(entries):  # Adam slots and global_step too: a resume reads them.
    try:
      value = reader.get_tensor(name)
    except _READ_ERRORS as error:
      errors.append(f"unreadable tensor {name} ({error.__class__.__name__}): corrupt data file")
      continue
    if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
      errors.append(f"non-finite values in {name}")
  print(report, file=out)
  if errors:
    print(f"INCOMPATIBLE with {config_file} for task {task}:", file=out)
    for line in errors:
      print(f"  {line}", file=out)
    return False
  suffix = f"; initialised fresh: {', '.join(report.missing)}" if report.missing else ""
  print(f"OK: {prefix} fits {config_file} for task {task}{suffix}", file=out)
  return True


def _bool(text):
  """"True"/"False" (any case), as the scripts' absl flags take them."""
  if text.lower() not in ("true", "false", "1", "0"):
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")
  return text.lower() in ("true", "1")


def main(argv=None):
  from modeling import hf_checkpoint  # imported here: it imports this module
  parser = argparse.ArgumentParser(prog="python -m modeling.checkpoint",
                                   description="Inspect BERT checkpoints, check them against a "
                                               "bert_config.json, convert them from and to "
                                               "Hugging Face directories.")
  commands = parser.add_subparsers(dest="command", required=True)
  inspect = commands.add_parser("inspect", help="names, shapes, dtypes, implied dimensions")
  inspect.add_argument("checkpoint")
  check = commands.add_parser("check", help="exit 0 when compatible, 1 with a report")
  check.add_argument("checkpoint")
  check.add_argument("--bert_config_file", required=True)
  check.add_argument("--task", choices=TASKS, default="encoder")
  unused_help = ("regex (re.search) of tensor names with no place in the output that may be "
                 "left out; repeatable")
  from_hf = commands.add_parser("from-hf", help="a Hugging Face BERT directory to "
                                "bert_model.ckpt, bert_config.json, vocab.txt, labels.txt "
                                "(ALBERT: model.ckpt, albert_config.json, spiece.model)")
  from_hf.add_argument("hf_dir")
  from_hf.add_argument("output_dir")
  from_hf.add_argument("--allow_unused", action="append", default=[], metavar="REGEX",
                       help=unused_help)
  to_hf = commands.add_parser("to-hf", help="a checkpoint to model.safetensors, config.json "
                              "and the tokenizer files of a Hugging Face directory")
  to_hf.add_argument("checkpoint")
  to_hf.add_argument("output_dir")
  to_hf.add_argument("--bert_config_file", required=True)
  to_hf.add_argument("--task", choices=hf_checkpoint.TASKS, default=None,
                     help="the transformers class to write (default: from the checkpoint's "
                          "heads)")
  to_hf.add_argument("--vocab_file", help="vocab.txt to ship with tokenizer_config.json")
  to_hf.add_argument("--spm_model_file", help="ALBERT: the SentencePiece model to ship as "
                     "spiece.model (instead of --vocab_file)")
  to_hf.add_argument("--labels_file", help="class names, one a line (classifier, ner)")
  to_hf.add_argument("--do_lower_case", type=_bool, default=True,
                     help="for tokenizer_config.json (default True)")
  to_hf.add_argument("--allow_unused", action="append", default=[], metavar="REGEX",
                     help=unused_help)
  args = parser.parse_args(argv)
  try:
    if args.command == "inspect":
      inspect_checkpoint(args.checkpoint)
      return 0
    if args.command == "from-hf":
      print(hf_checkpoint.from_hf(args.hf_dir, args.output_dir, args.allow_unused))
      return 0
    if args.command == "to-hf":
      print(hf_checkpoint.to_hf(args.checkpoint, args.bert_config_file, args.output_dir,
                                args.task, args.vocab_file, args.labels_file,
                                args.do_lower_case, args.allow_unused,
                                args.spm_model_file))
      return 0
    return 0 if check_checkpoint(args.bert_config_file, args.checkpoint, args.task) else 1
  except (FileNotFoundError, ValueError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 1


def __getattr__(name):
  """`from_hf` and `to_hf` of modeling.hf_checkpoint (imported on first use: it imports us)."""
  if name in ("from_hf", "to_hf"):
    from modeling import hf_checkpoint  # imported here: it imports this module
    return getattr(hf_checkpoint, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
  sys.exit(main())
