"""bert-tf2: Google's original BERT on TensorFlow 2, with the TF1 variable names.

The names below are imported on first use (PEP 562), so that the modules that do
not need TensorFlow (tokenization, pretraining_data) load without importing it.
"""

import importlib

_EXPORTS = {
    "BertConfig": "modeling.config",
    "BertModel": "modeling.model",
    "ClassifierHead": "modeling.heads",
    "MaskedLMHead": "modeling.heads",
    "NextSentenceHead": "modeling.heads",
    # The original modeling.py's helpers, under its names.
    "assert_rank": "modeling.layers",
    "create_initializer": "modeling.layers",
    "gelu": "modeling.layers",
    "get_activation": "modeling.layers",
    "get_shape_list": "modeling.layers",
    "reshape_from_matrix": "modeling.layers",
    "reshape_to_matrix": "modeling.layers",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
  if name not in _EXPORTS:
    raise AttributeError(f"module 'modeling' has no attribute {name!r}")
  return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__():
  return sorted(list(globals()) + __all__)
