"""Times the original create_pretraining_data.py and ours on the same corpus and flags.

Each runs as its own process, start-up (TensorFlow import) included, as a user runs
it; the original is bert-tensorflow's, set up as in tests/original_bert.py. Runs
alternate, the best time of each is kept, and the two outputs are compared record by
record (they are equal with one output file).

  .venv/bin/python bench/create_pretraining_data_bench.py \\
    --input_file=../shared/data/corpus/fortunes_corpus.txt \\
    --vocab_file=../shared/models/minilm-l6-h384-uncased/vocab.txt
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DIR = os.path.join(os.path.dirname(REPO_DIR), "shared")

RUN_ORIGINAL = """
import sys
import original_bert
from absl import app
from bert import create_pretraining_data
app.run(create_pretraining_data.main)
"""

COMPARE = """
import sys
import tensorflow as tf
ours, theirs = ([tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(p)]
                for p in sys.argv[1:])
print(f"{len(ours)} records, {sum(a == b for a, b in zip(ours, theirs))} equal to the "
      f"original's ({len(theirs)})")
"""


def timed(command, env=None):
  """Runs `command`; returns its wall time in seconds, or exits with its stderr."""
  start = time.perf_counter()
  result = subprocess.run(command, cwd=REPO_DIR, env=env, capture_output=True, text=True)
  elapsed = time.perf_counter() - start
  if result.returncode != 0:
    sys.exit(f"{command[:3]} failed:\n{result.stderr[-4000:]}")
  return elapsed


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--input_file", default=os.path.join(
      SHARED_DIR, "data", "corpus", "fortunes_corpus.txt"))
  parser.add_argument("--vocab_file", default=os.path.join(
      SHARED_DIR, "models", "minilm-l6-h384-uncased", "vocab.txt"))
  parser.add_argument("--repeats", type=int, default=3, help="runs of each; the best counts")
  parser.add_argument("--num_workers", type=int, default=2, help="ours only")
  args, flags = parser.parse_known_args()
  common = [f"--input_file={args.input_file}", f"--vocab_file={args.vocab_file}", *flags]

  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=os.pathsep.join(
      [os.path.join(REPO_DIR, "tests"), os.environ.get("PYTHONPATH", "")]))
  with tempfile.TemporaryDirectory() as tmp:
    theirs_file, ours_file = os.path.join(tmp, "original.tfrecord"), os.path.join(tmp, "ours.tfrecord")
    original = [sys.executable, "-c", RUN_ORIGINAL, *common, f"--output_file={theirs_file}"]
    ours = [sys.executable, os.path.join(REPO_DIR, "create_pretraining_data.py"), *common,
            f"--output_file={ours_file}", f"--num_workers={args.num_workers}"]
    times = {"original": [], "ours": []}
    for repeat in range(args.repeats):
      times["original"].append(timed(original, env))
      times["ours"].append(timed(ours, env))
      print(f"run {repeat + 1}: original {times['original'][-1]:.2f}s, "
            f"ours {times['ours'][-1]:.2f}s", flush=True)
    comparison = subprocess.run([sys.executable, "-c", COMPARE, ours_file, theirs_file],
                                capture_output=True, text=True, env=env, check=True).stdout
  best_original, best_ours = min(times["original"]), min(times["ours"])
  print(f"flags: {' '.join(common)}")
  print(f"original: {best_original:.2f}s  ours: {best_ours:.2f}s  (best of {args.repeats}, "
        f"num_workers={args.num_workers}, {os.cpu_count()} CPUs)")
  print(f"ratio original / ours: {best_original / best_ours:.2f}x")
  print(comparison.strip())


if __name__ == "__main__":
  main()
