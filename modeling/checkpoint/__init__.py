"""Checkpoints in the original TF1 layout, and every other layout converted to it.

  load(ckpt_path, variables, allow_missing=())  -> LoadReport
  save(ckpt_prefix, variables)                  -> the prefix written
  from_hf(hf_dir, output_dir) / to_hf(ckpt_path, bert_config_file, output_dir, ...)
  from_model_garden / to_model_garden, from_keras_hub / to_keras_hub,
  from_tfhub / to_tfhub (the same shapes)
  convert(src, dst, to, bert_config_file=None, vocab_file=None, **options)

`layout` is the TF1 layout itself, `loader` opens any supported checkpoint,
`release` the directory of a Google release (the hub of every conversion),
`hf_import`/`hf_export` (with the `hf_names` table) convert Hugging Face
directories, `model_garden` (`model_garden_names`) Model Garden TF2 checkpoints,
`keras_hub` (`keras_hub_names`) keras-hub presets, `tfhub_import`/`tfhub_export`
TF Hub SavedModels; `formats` recognises each from
its files; `inspection` and `__main__` are `python -m modeling.checkpoint`.
"""

from modeling.checkpoint.expected import TASKS, expected_variables
from modeling.checkpoint.formats import FORMATS, convert, format_of
from modeling.checkpoint.hf_export import to_hf
from modeling.checkpoint.hf_import import from_hf, read_hf
from modeling.checkpoint.inspection import check_checkpoint, implied_dimensions, inspect_checkpoint
from modeling.checkpoint.keras_hub import from_keras_hub, read_keras_hub, to_keras_hub
from modeling.checkpoint.layout import (OPTIONAL_STATE, LoadReport, checkpoint_name, compare,
                                        named_variables, save)
from modeling.checkpoint.loader import load, open_checkpoint
from modeling.checkpoint.model_garden import (from_model_garden, read_model_garden,
                                              to_model_garden)
from modeling.checkpoint.tfhub_export import to_tfhub
from modeling.checkpoint.tfhub_import import from_tfhub, read_tfhub

__all__ = ["FORMATS", "OPTIONAL_STATE", "TASKS", "LoadReport", "check_checkpoint",
           "checkpoint_name", "compare", "convert", "expected_variables", "format_of", "from_hf",
           "from_keras_hub", "from_model_garden", "from_tfhub", "implied_dimensions", "inspect_checkpoint",
           "load", "named_variables", "open_checkpoint", "read_hf", "read_keras_hub",
           "read_model_garden", "read_tfhub", "save", "to_hf", "to_keras_hub", "to_model_garden",
           "to_tfhub"]
