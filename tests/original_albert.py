"""Imports Google's ALBERT (PyPI `albert-tensorflow==1.1`) as a test oracle.

Import this module only in a subprocess (see `oracle.run`), as `original_bert`,
whose set-up it reuses (Keras 2, the `tensorflow.contrib.layers.layer_norm`
stand-in, TF1 behaviour). ALBERT's modules write `import tensorflow as tf` and
use the TF1 API, so each is read from the installed package, its TensorFlow
import pointed at `tensorflow.compat.v1`, and executed into a fresh module
registered as `albert.<name>` (DESIGN.md section 5). `tensorflow.contrib.tpu`,
`data` and `cluster_resolver`, which its scripts import but these tests never
use, are empty stand-ins.

Exposes `modeling`, `optimization`, `tokenization` and `run_pretraining`.
"""

import importlib.util
import sys
import types

import original_bert  # noqa: F401  (sets up TF1, Keras 2 and tensorflow.contrib)

for _name in ("tpu", "data", "cluster_resolver", "metrics"):
  _module = types.ModuleType(f"tensorflow.contrib.{_name}")
  setattr(sys.modules["tensorflow.contrib"], _name, _module)
  sys.modules[_module.__name__] = _module


def _load(name):
  """Executes albert/<name>.py with its TensorFlow import on tf.compat.v1."""
  full_name = f"albert.{name}"
  spec = importlib.util.find_spec(full_name)
  with open(spec.origin, encoding="utf-8") as reader:
    source = reader.read()
  tf1_import = "import tensorflow as tf\n"
  if tf1_import not in source:
    raise ImportError(f"{spec.origin}: no {tf1_import.strip()!r} line to redirect")
  source = source.replace(tf1_import, "import tensorflow.compat.v1 as tf\n", 1)
  module = types.ModuleType(full_name)
  module.__file__ = spec.origin
  sys.modules[full_name] = module
  exec(compile(source, spec.origin, "exec"), module.__dict__)  # noqa: S102 (our oracle)
  setattr(sys.modules["albert"], name, module)
  return module


import albert  # noqa: E402,F401  (the package; its modules are loaded below)

modeling = _load("modeling")
lamb_optimizer = _load("lamb_optimizer")
optimization = _load("optimization")
tokenization = _load("tokenization")
run_pretraining = _load("run_pretraining")
