"""Float flags take finite numbers only: absl parses "inf" and "nan" as floats, and a
weight, rate or probability of either turns the first loss into NaN far from its cause.

Each script calls `require_finite_floats()` once its flags are defined; absl then
refuses --name=inf or --name=nan while parsing the command line, before anything is
read or written. Imports no TensorFlow: create_pretraining_data.py uses it.
"""

import math

from absl import flags

FLAGS = flags.FLAGS
_CHECKED = set()


def _is_finite(value):
  return value is None or math.isfinite(value)


def require_finite_floats():
  """Registers the finiteness check on every float flag defined so far (once each)."""
  for name in sorted(FLAGS):
    flag = FLAGS[name]
    if isinstance(flag.parser, flags.FloatParser) and name == flag.name not in _CHECKED:
      flags.register_validator(name, _is_finite, message=f"--{name} must be a finite number")
      _CHECKED.add(name)
