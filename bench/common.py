"""Shared pieces of the benchmarks: configs, inputs, timing, the original as a peer.

Every benchmark measures ours and the original in the same invocation, one after
the other on the same machine, and prints the ratio: absolute times on shared
CPUs are noisy, ratios measured side by side are not.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS_DIR = os.path.join(REPO_DIR, "tests")

# MiniLM-L6-H384 dimensions (../shared/models/minilm-l6-h384-uncased).
MINILM = {
    "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
    "num_attention_heads": 12, "intermediate_size": 1536, "hidden_act": "gelu_exact",
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02,
}
BASE = {**MINILM, "hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 3072,
        "hidden_act": "gelu"}
LARGE = {**BASE, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
         "intermediate_size": 4096}
CONFIGS = {"minilm": MINILM, "base": BASE, "large": LARGE}


def pretraining_batch(batch_size, seq_length, max_predictions, vocab_size, seed=0):
  """A fixed random pretraining batch (numpy), full-length sequences, two segments."""
  rng = np.random.RandomState(seed)
  positions = np.sort(np.stack([rng.choice(np.arange(1, seq_length), max_predictions,
                                           replace=False) for _ in range(batch_size)]), -1)
  segment_ids = np.zeros([batch_size, seq_length], np.int32)
  segment_ids[:, seq_length // 2:] = 1
  return {
      "input_ids": rng.randint(1, vocab_size, [batch_size, seq_length]).astype(np.int32),
      "input_mask": np.ones([batch_size, seq_length], np.int32),
      "segment_ids": segment_ids,
      "masked_lm_positions": positions.astype(np.int32),
      "masked_lm_ids": rng.randint(1, vocab_size, [batch_size, max_predictions]).astype(np.int32),
      "masked_lm_weights": np.ones([batch_size, max_predictions], np.float32),
      "next_sentence_labels": rng.randint(0, 2, [batch_size, 1]).astype(np.int32),
  }


def time_calls(fn, warmup, iterations):
  """Seconds per call of `fn()` after `warmup` calls (median of the timed calls)."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(iterations):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def run_timed(command, env=None):
  """Runs `command`; (its stdout, its stderr, wall seconds). Raises with the end of its
  stderr when it fails."""
  start = time.perf_counter()
  result = subprocess.run(command, capture_output=True, text=True, env=env)
  seconds = time.perf_counter() - start
  if result.returncode != 0:
    raise RuntimeError(f"{' '.join(command[:2])} failed:\n{result.stderr[-4000:]}")
  return result.stdout, result.stderr, seconds


def last_json_line(stdout):
  """The JSON value a side process prints on its last line."""
  return json.loads(stdout.strip().splitlines()[-1])


def run_original(mode, **settings):
  """Runs bench/original_peer.py in a subprocess (the original needs TF1 mode).

  Returns the JSON dict it prints on its last line, plus `wall`: the seconds of the
  whole process.
  """
  env = dict(os.environ, PYTHONPATH=TESTS_DIR, TF_CPP_MIN_LOG_LEVEL="2")
  script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "original_peer.py")
  stdout, _, seconds = run_timed([sys.executable, script, mode, json.dumps(settings)], env)
  return dict(last_json_line(stdout), wall=seconds)


def run_fine_tuning(script, output_dir, *flags):
  """Runs one of our scripts (run_classifier.py, run_ner.py) with --do_eval from an empty
  `output_dir` (a checkpoint left there would resume).

  Returns:
    (eval_results.txt as {name: float}, training examples/s: the median of the logged
    intervals but the first, which includes tracing, wall seconds of the process).
  """
  shutil.rmtree(output_dir, ignore_errors=True)
  _, stderr, seconds = run_timed([sys.executable, os.path.join(REPO_DIR, script),
                                  f"--output_dir={output_dir}", *flags])
  logged = [float(x) for x in re.findall(r"([\d.]+) examples/s", stderr)]
  with open(os.path.join(output_dir, "eval_results.txt"), encoding="utf-8") as results:
    values = {name: float(value) for name, value in
              (line.split(" = ") for line in results.read().splitlines())}
  return values, float(np.median(logged[1:] or logged)), seconds


def encoder_flops(config, batch_size, seq_length):
  """Multiply-add FLOPs (2 per MAC) of one encoder forward pass over a batch."""
  h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
  per_token = layers * (2 * (4 * h * h + 2 * h * i) + 2 * 2 * seq_length * h)
  return batch_size * (seq_length * per_token + 2 * h * h)  # + the pooler


def pretraining_flops(config, batch_size, seq_length, max_predictions):
  """FLOPs of one training step: forward and backward (3x forward) of encoder and heads."""
  h, v = config["hidden_size"], config["vocab_size"]
  heads = batch_size * max_predictions * (2 * h * h + 2 * h * v)
  return 3 * (encoder_flops(config, batch_size, seq_length) + heads)


def matmul_peak(dtype_name, size=2048, iterations=10):
  """Measured FLOP/s of a large square matmul in TensorFlow, in this process."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  dtype = tf.as_dtype(dtype_name)
  a = tf.cast(tf.random.normal([size, size]), dtype)
  b = tf.cast(tf.random.normal([size, size]), dtype)
  matmul = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b)[:1, :1], tf.float32)))
  seconds = time_calls(lambda: matmul().numpy(), 2, iterations)
  return 2 * size ** 3 / seconds


def report(unit, batch_size, flops, peaks, original_seconds, ours_seconds):
  """Prints the peaks, then each run's throughput and FLOP/s against the peak of its
  dtype, then the ratios to the original, last.

  Args:
    unit: what one item of a batch is ("examples", "sequences").
    batch_size: items per call.
    flops: FLOPs per call.
    peaks: {"float32": FLOP/s, "bfloat16": FLOP/s}, from `matmul_peak`.
    original_seconds: seconds per call of the original (fp32).
    ours_seconds: {dtype name: seconds per call of ours}.
  """
  print(f"matmul peak: {peaks['float32'] / 1e9:.0f} GFLOP/s fp32, "
        f"{peaks['bfloat16'] / 1e9:.0f} GFLOP/s bf16")
  rows = [("original fp32", original_seconds, "float32")]
  rows += [(f"ours {dtype}", seconds, dtype) for dtype, seconds in ours_seconds.items()]
  for name, seconds, dtype in rows:
    achieved = flops / seconds
    print(f"{name:18s} {batch_size / seconds:7.1f} {unit}/s  {achieved / 1e9:6.0f} GFLOP/s = "
          f"{achieved / peaks[dtype]:.0%} of {dtype} peak")
  for dtype, seconds in ours_seconds.items():
    print(f"ratio ours {dtype} / original fp32: {original_seconds / seconds:.2f}x")


def chosen_sides(parser, sides, choices):
  """The comma-separated `--sides` value as a list; an unknown side is a usage error."""
  sides = sides.split(",")
  unknown = sorted(set(sides) - set(choices))
  if unknown:
    parser.error(f"--sides: unknown {unknown}; choose from {', '.join(choices)}")
  return sides


def cpu_description():
  """"<CPU model>, <n> cores, flags: avx512_bf16 amx_bf16 ..." (the bf16/AMX/VNNI units)."""
  model, flags = "unknown CPU", set()
  if os.path.exists("/proc/cpuinfo"):
    for line in open("/proc/cpuinfo", encoding="utf-8"):
      key, _, value = line.partition(":")
      if key.strip() == "model name":
        model = value.strip()
      elif key.strip() == "flags":
        flags = set(value.split())
  wanted = sorted(f for f in flags if f.startswith("amx")
                  or f in ("avx512_bf16", "avx512f", "avx512_vnni", "avx_vnni"))
  return f"{model}, {os.cpu_count()} cores, flags: {' '.join(wanted) or 'no avx512/amx'}"


def argument_parser(doc):
  """The arguments every side-by-side benchmark takes; `doc` is the script's docstring."""
  parser = argparse.ArgumentParser(description=doc.splitlines()[0])
  parser.add_argument("--config", choices=sorted(CONFIGS), default="minilm")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--iterations", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--xla", action="store_true", help="jit_compile our step")
  return parser
