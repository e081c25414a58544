"""Runs code against Google's original BERT in a separate Python process.

The original needs TF1 graph mode and Keras 2 globally, so it never runs in the
pytest process. A test passes a script; the script imports `original_bert`
(which sets the original up) and exchanges arrays through files in a temporary
directory.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def require():
  """Skips the calling test, with a reason, when bert-tensorflow is not installed."""
  if importlib.util.find_spec("bert") is None or importlib.util.find_spec("tf_keras") is None:
    pytest.skip("the original BERT (pip install bert-tensorflow==1.0.4 tf-keras) is needed "
                "as the test oracle")


def run(script, *args, timeout=600):
  """Runs `script` (Python source) with `args` as sys.argv[1:]; returns its stdout.

  The script runs with tests/ on sys.path, so `import original_bert` works, and
  fails the calling test with the script's stderr when it exits non-zero.
  """
  require()
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [TESTS_DIR] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
  result = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout)
  if result.returncode != 0:
    raise AssertionError(f"oracle script failed ({result.returncode}):\n{result.stderr[-6000:]}")
  return result.stdout
