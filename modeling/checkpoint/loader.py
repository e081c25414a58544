"""Opens any supported checkpoint and loads it into variables by name.

A supported checkpoint is a TF1 prefix (or a directory with a `checkpoint` file)
in the original layout, or a Hugging Face BERT/ALBERT directory, converted in
memory to that layout.

  open_checkpoint(ckpt_path)                  -> (prefix, reader, entries)
  load(ckpt_path, variables, allow_missing=()) -> LoadReport
"""

from modeling.checkpoint import hf_import
from modeling.checkpoint.layout import (READ_ERRORS, compare, named_variables, open_prefix,
                                        variable_entries)


def open_checkpoint(ckpt_path):
  """Opens a checkpoint, or a Hugging Face directory (converted in memory), for reading.

  Returns:
    (prefix or description, reader with `get_tensor(name)`,
    {name: (shape tuple, tf.DType)}).

  Raises:
    FileNotFoundError: no such checkpoint.
    ValueError: the checkpoint's files are corrupt or truncated.
  """
  if hf_import.is_hf_directory(ckpt_path):
    return hf_import.open_directory(ckpt_path)
  return open_prefix(ckpt_path)


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
  expected = variable_entries(by_name.values())
  report, errors = compare(entries, expected, allow_missing, prefix)
  if errors:
    raise ValueError(f"checkpoint {prefix} does not fit the model:\n  " + "\n  ".join(errors))
  values = {}
  for name in report.loaded:
    try:
      values[name] = reader.get_tensor(name)
    except READ_ERRORS as error:
      raise ValueError(f"{prefix}: cannot read {name} ({error.__class__.__name__}); the "
                       "checkpoint data file is corrupt or truncated") from None
  for name, value in values.items():
    by_name[name].assign(value)
  return report
