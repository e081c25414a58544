"""Checkpoints in the original TF1 layout, and every other layout converted to it.

  load(ckpt_path, variables, allow_missing=())  -> LoadReport
  save(ckpt_prefix, variables)                  -> the prefix written
  from_hf(hf_dir, output_dir) / to_hf(ckpt_path, bert_config_file, output_dir, ...)

`layout` is the TF1 layout itself, `loader` opens any supported checkpoint,
`hf_import`/`hf_export` (with the `hf_names` table) convert Hugging Face
directories, `inspection` and `__main__` are `python -m modeling.checkpoint`.
"""

from modeling.checkpoint.expected import TASKS, expected_variables
from modeling.checkpoint.hf_export import to_hf
from modeling.checkpoint.hf_import import from_hf, read_hf
from modeling.checkpoint.inspection import check_checkpoint, implied_dimensions, inspect_checkpoint
from modeling.checkpoint.layout import (OPTIONAL_STATE, LoadReport, checkpoint_name, compare,
                                        named_variables, save)
from modeling.checkpoint.loader import load, open_checkpoint

__all__ = ["OPTIONAL_STATE", "TASKS", "LoadReport", "check_checkpoint", "checkpoint_name",
           "compare", "expected_variables", "from_hf", "implied_dimensions", "inspect_checkpoint",
           "load", "named_variables", "open_checkpoint", "read_hf", "save", "to_hf"]
