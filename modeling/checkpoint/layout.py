"""The original TF1 checkpoint layout: names, reading a prefix, comparing, saving.

A variable's checkpoint name is its `tf.Variable.name` without ":0", which our
modules set to the original's names, so Google's checkpoints load with no
conversion table and ours load into the original code. Besides the model, a
training checkpoint holds `global_step`, the Adam slots and our loop's state
under `bert_tf2/` (TRAINING_STATE), names the original's code ignores.

  open_prefix(ckpt_path)     -> (prefix, reader, {name: (shape, dtype)})
  compare(entries, expected) -> (LoadReport, error lines)
  save(ckpt_prefix, variables) -> the prefix written
"""

import dataclasses
import os
import re
import uuid

import tensorflow as tf

# What reading a corrupt or truncated checkpoint raises, depending on where it breaks.
READ_ERRORS = (tf.errors.OpError, ValueError, IndexError)

# Names of our training loop's state (`training.steps.TrainingState`): absent from
# the original's checkpoints, so a resume may find them missing.
OPTIONAL_STATE = (r"^bert_tf2/",)


def is_training_state(name):
  """global_step, the Adam slots, and our training loop's `bert_tf2/` state."""
  return (name == "global_step" or name.endswith(("/adam_m", "/adam_v"))
          or any(re.search(pattern, name) for pattern in OPTIONAL_STATE))


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


def resolve_prefix(ckpt_path):
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


def open_prefix(ckpt_path):
  """Opens a TF1 checkpoint for reading.

  Args:
    ckpt_path: a checkpoint prefix, or a directory holding a `checkpoint` file.

  Returns:
    (prefix, reader, {name: (shape tuple, tf.DType)}).

  Raises:
    FileNotFoundError: no such checkpoint.
    ValueError: the checkpoint's files are corrupt or truncated.
  """
  prefix = resolve_prefix(ckpt_path)
  try:
    reader = tf.train.load_checkpoint(prefix)
  except READ_ERRORS as error:
    raise ValueError(f"{prefix}: unreadable checkpoint ({error.__class__.__name__}: "
                     f"{getattr(error, 'message', error)})") from None
  shapes = reader.get_variable_to_shape_map()
  dtypes = reader.get_variable_to_dtype_map()
  return prefix, reader, {name: (tuple(shapes[name]), dtypes[name]) for name in shapes}


def variable_entries(variables):
  """{name: (shape tuple, tf.DType)} of variables, as `open_prefix` gives a checkpoint's."""
  return {name: (tuple(v.shape.as_list()), v.dtype)
          for name, v in named_variables(variables).items()}


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


def describe(shape, dtype):
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
        errors.append(f"missing from the checkpoint: {name} {describe(shape, dtype)}")
      continue
    ckpt_shape, ckpt_dtype = ckpt_entries[name]
    if tuple(ckpt_shape) != tuple(shape) or tf.as_dtype(ckpt_dtype) != tf.as_dtype(dtype):
      line = (f"{name}: checkpoint {describe(ckpt_shape, ckpt_dtype)} vs variable "
              f"{describe(shape, dtype)}{_mismatch_hint(name, ckpt_shape, shape)}")
      report.mismatched.append(line)
      errors.append(f"shape or dtype mismatch: {line}")
      continue
    report.loaded.append(name)
  return report, errors


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
