"""Times the original extract_features.py and ours on the same lines, checkpoint and flags.

Each runs as its own process, start-up (TensorFlow import, checkpoint load)
included, as a user runs it; the original runs unchanged through
tests/original_extract_features.py. The inputs are --num_lines lines of the
corpus, every third one a `text_a ||| text_b` pair of consecutive sentences. The
two outputs are then compared line by line (tokens equal, values within 2e-5).

  .venv/bin/python bench/extract_features_bench.py --num_lines=512 \\
    --model_dir=../shared/models/minilm-l6-h384-uncased
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DIR = os.path.join(os.path.dirname(REPO_DIR), "shared")
TESTS_DIR = os.path.join(REPO_DIR, "tests")


def make_input(corpus, num_lines, path):
  """The first `num_lines` lines of a one-sentence-a-line corpus, every third a pair."""
  with open(corpus, encoding="utf-8") as reader:
    sentences = [line.strip() for line in reader if line.strip()]
  lines = [f"{sentences[i]} ||| {sentences[i + 1]}" if i % 3 == 0 else sentences[i]
           for i in range(num_lines)]
  with open(path, "w", encoding="utf-8") as writer:
    writer.writelines(line + "\n" for line in lines)


def timed(command):
  """Runs `command` with tests/ on PYTHONPATH; returns its wall seconds, or exits."""
  env = dict(os.environ, PYTHONPATH=TESTS_DIR, TF_CPP_MIN_LOG_LEVEL="2")
  start = time.perf_counter()
  result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_DIR)
  if result.returncode != 0:
    sys.exit(f"{command[1]} failed:\n{result.stderr[-4000:]}")
  return time.perf_counter() - start


def compare(ours_path, original_path):
  """Lines, lines with equal tokens and the largest value difference."""
  lines = equal_tokens = 0
  worst = 0.0
  with open(ours_path, encoding="utf-8") as ours, open(original_path, encoding="utf-8") as theirs:
    for a, b in zip(ours, theirs):
      a, b = json.loads(a)["features"], json.loads(b)["features"]
      lines += 1
      if [f["token"] for f in a] == [f["token"] for f in b]:
        equal_tokens += 1
        values = lambda features: np.array([[l["values"] for l in f["layers"]]  # noqa: E731
                                            for f in features])
        worst = max(worst, float(np.abs(values(a) - values(b)).max()))
  return lines, equal_tokens, worst


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model_dir",
                      default=os.path.join(SHARED_DIR, "models", "minilm-l6-h384-uncased"))
  parser.add_argument("--corpus",
                      default=os.path.join(SHARED_DIR, "data", "corpus", "fortunes_corpus.txt"))
  parser.add_argument("--num_lines", type=int, default=512)
  parser.add_argument("--max_seq_length", type=int, default=128)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--layers", default="-1,-2,-3,-4")
  args = parser.parse_args()

  with tempfile.TemporaryDirectory() as tmp:
    input_file = os.path.join(tmp, "input.txt")
    make_input(args.corpus, args.num_lines, input_file)
    flags = {"vocab_file": os.path.join(args.model_dir, "vocab.txt"),
             "bert_config_file": os.path.join(args.model_dir, "bert_config.json"),
             "init_checkpoint": os.path.join(args.model_dir, "bert_model.ckpt"),
             "input_file": input_file, "layers": args.layers,
             "max_seq_length": args.max_seq_length, "batch_size": args.batch_size}
    ours_output, original_output = os.path.join(tmp, "ours.jsonl"), os.path.join(tmp, "original.jsonl")
    spec = os.path.join(tmp, "spec.json")
    with open(spec, "w", encoding="utf-8") as writer:
      json.dump({"flags": dict(flags, output_file=original_output), "raw": None}, writer)
    original = timed([sys.executable, os.path.join(TESTS_DIR, "original_extract_features.py"),
                      spec])
    ours = timed([sys.executable, os.path.join(REPO_DIR, "extract_features.py"),
                  *(f"--{name}={value}" for name, value in flags.items()),
                  f"--output_file={ours_output}"])
    lines, equal_tokens, worst = compare(ours_output, original_output)
    size = os.path.getsize(ours_output)

  print(f"extract_features: {args.num_lines} lines, max_seq_length {args.max_seq_length}, "
        f"batch {args.batch_size}, layers {args.layers}, {size / 1e6:.0f} MB of JSON")
  print(f"  original  {original:7.1f} s  {args.num_lines / original:6.1f} lines/s")
  print(f"  ours      {ours:7.1f} s  {args.num_lines / ours:6.1f} lines/s  "
        f"({original / ours:.2f}x the original)")
  print(f"  {lines} lines, {equal_tokens} with the original's tokens, largest value "
        f"difference {worst:.1e}")


if __name__ == "__main__":
  main()
