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
import resource
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


def _children_cpu_seconds():
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  return usage.ru_utime + usage.ru_stime


def timed(command, env=None):
  """Runs `command`; returns its (wall, CPU) seconds, CPU of all its processes, or exits
  with its stderr."""
  start, start_cpu = time.perf_counter(), _children_cpu_seconds()
  result = subprocess.run(command, cwd=REPO_DIR, env=env, capture_output=True, text=True)
  elapsed, cpu = time.perf_counter() - start, _children_cpu_seconds() - start_cpu
  if result.returncode != 0:
    sys.exit(f"{command[:3]} failed:\n{result.stderr[-4000:]}")
  return elapsed, cpu


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--input_file", default=os.path.join(
      SHARED_DIR, "data", "corpus", "fortunes_corpus.txt"))
  parser.add_argument("--vocab_file", default=os.path.join(
      SHARED_DIR, "models", "minilm-l6-h384-uncased", "vocab.txt"))
  parser.add_argument("--repeats", type=int, default=3, help="runs of each; the best counts")
  args, flags = parser.parse_known_args()
  common = [f"--input_file={args.input_file}", f"--vocab_file={args.vocab_file}", *flags]

  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=os.pathsep.join(
      [os.path.join(REPO_DIR, "tests"), os.environ.get("PYTHONPATH", "")]))
  with tempfile.TemporaryDirectory() as tmp:
    theirs_file = os.path.join(tmp, "original.tfrecord")
    ours_file = os.path.join(tmp, "ours.tfrecord")
    original = [sys.executable, "-c", RUN_ORIGINAL, *common, f"--output_file={theirs_file}"]
    ours = [sys.executable, os.path.join(REPO_DIR, "create_pretraining_data.py"), *common,
            f"--output_file={ours_file}"]
    times = {"original": [], "ours": []}
    for repeat in range(args.repeats):
      for name, command in (("original", original), ("ours", ours)):
        times[name].append(timed(command, env))
      print(f"run {repeat + 1}: " + ", ".join(
          f"{name} {wall:.2f}s (CPU {cpu:.2f}s)" for name, (wall, cpu) in
          ((name, runs[-1]) for name, runs in times.items())), flush=True)
    comparison = subprocess.run([sys.executable, "-c", COMPARE, ours_file, theirs_file],
                                capture_output=True, text=True, env=env, check=True).stdout
  best = {name: (min(wall for wall, _ in runs), min(cpu for _, cpu in runs))
          for name, runs in times.items()}
  print(f"flags: {' '.join(common)}")
  print(f"original: {best['original'][0]:.2f}s  ours: {best['ours'][0]:.2f}s  (wall, best of "
        f"{args.repeats}, {os.cpu_count()} CPUs)")
  print(f"ratio original / ours: {best['original'][0] / best['ours'][0]:.2f}x wall, "
        f"{best['original'][1] / best['ours'][1]:.2f}x CPU time")
  print(comparison.strip())


if __name__ == "__main__":
  main()
