"""bert-tf2: Google's original BERT on TensorFlow 2, with the TF1 variable names.

The library is grouped by concern, each group importing only those before it:
`modeling.model` (the network) and `modeling.data` (tokenizers, records and each
task's features); `modeling.checkpoint` (the TF1 layout, and every other layout
converted to it); `modeling.training` (the loop, the replica step, the run's
checkpoints, the array predictor, optimization, distribution); `modeling.tasks`
(each task's model, metrics and export).

The names below are imported on first use (PEP 562), so that the modules that do
not need TensorFlow (data.tokenization, data.pretraining_data) load without importing
it. So are the original BERT's modules under their names: `from modeling import
tokenization` (or `optimization`) replaces `from bert import tokenization`.
"""

import importlib

_EXPORTS = {
    "BertConfig": "modeling.model.config",
    "BertModel": "modeling.model.model",
    "ClassifierHead": "modeling.model.heads",
    "MaskedLMHead": "modeling.model.heads",
    "NextSentenceHead": "modeling.model.heads",
    # The original modeling.py's helpers, under its names.
    "assert_rank": "modeling.model.layers",
    "create_initializer": "modeling.model.layers",
    "gelu": "modeling.model.layers",
    "get_activation": "modeling.model.layers",
    "get_shape_list": "modeling.model.layers",
    "reshape_from_matrix": "modeling.model.layers",
    "reshape_to_matrix": "modeling.model.layers",
}

# The original BERT's modules, by the names its users import them under.
_ORIGINAL_MODULES = {
    "tokenization": "modeling.data.tokenization",
    "optimization": "modeling.training.optimization",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
  if name in _ORIGINAL_MODULES:
    return importlib.import_module(_ORIGINAL_MODULES[name])
  if name not in _EXPORTS:
    raise AttributeError(f"module 'modeling' has no attribute {name!r}")
  return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__():
  return sorted(list(globals()) + __all__ + list(_ORIGINAL_MODULES))
