"""`make demo` end to end: every stage runs and leaves its outputs."""

import os
import subprocess
import sys

import pytest

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
  out = tmp_path / "demo"
  result = subprocess.run(["bash", os.path.join(REPO_DIR, "demo", "run.sh"), str(out)],
                          capture_output=True, text=True, cwd=REPO_DIR,
                          env=dict(os.environ, PY=sys.executable))
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  for stage in ("1/5", "2/5", "3/5", "4/5", "5/5"):
    assert f"==== {stage}" in result.stdout
  assert (out / "pretraining" / "model.ckpt-300.index").exists()
  results = dict(line.split(" = ") for line in
                 (out / "classifier" / "eval_results.txt").read_text().splitlines())
  assert 0.0 <= float(results["eval_accuracy"]) <= 1.0
  test_rows = (out / "classifier" / "test_results.tsv").read_text().splitlines()
  test_inputs = (out / "data" / "topics" / "test.tsv").read_text().splitlines()[1:]
  assert len(test_rows) == len(test_inputs)
  # The SavedModel classified the four raw sentences.
  assert result.stdout.count("Return the square root") == 1
  assert "Done: everything is under" in result.stdout
