"""Long texts: peak memory and time of full vs memory-efficient attention against length.

  .venv/bin/python bench/long_texts.py [--lengths 512,1024,...] [--chunk_size 512]
      [--max_full_gb 10] [--output bench/results/long_texts]

MiniLM-L6-H384 dimensions, batch 1, hierarchical position embeddings (any length up
to 512^2 from the 512-row table). Two steps per length:
  forward: the encoder, training=False.
  train:   a classifier fine-tuning step: encoder + classifier head with dropout,
           gradients of every variable, one AdamWeightDecay update.
Each point runs in its own process, so its peak resident memory (VmHWM, which
includes the ~0.5 GB of TensorFlow itself) is that point's alone; full and chunked
run one after the other in the same invocation. Full attention is skipped where
its score matrices alone would pass --max_full_gb. Writes <output>.json and
<output>.png (needs `pip install matplotlib`) and prints a Markdown table.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402
from modeling import BertConfig, BertModel, ClassifierHead  # noqa: E402
from modeling.training.optimization import create_optimizer  # noqa: E402

STEPS = ("forward", "train")
MODES = ("full", "chunked")


def full_scores_gb(seq_length, step):
  """Rough GB the full [N, S, S] score matrices need: 3 live in a forward layer;
  training keeps about 3 per layer for the backward pass."""
  config = common.MINILM
  one = config["num_attention_heads"] * seq_length * seq_length * 4 / 1e9
  return 3 * one * (config["num_hidden_layers"] if step == "train" else 1)


def measure_point(seq_length, mode, step, chunk_size):
  """Runs one point in this process; returns seconds per call and peak RSS in GB."""
  # Full attention: a chunk size of S never chunks S tokens.
  config = BertConfig.from_dict(
      {**common.MINILM, "position_embedding_type": "hierarchical",
       "attention_chunk_size": seq_length if mode == "full" else chunk_size})
  model = BertModel(config)
  batch = common.pretraining_batch(1, seq_length, 20, config.vocab_size)
  inputs = [tf.constant(batch[k]) for k in ("input_ids", "input_mask", "segment_ids")]
  if step == "forward":
    run = tf.function(lambda ids, mask, types: model(ids, mask, types)["pooled_output"])
  else:
    head = ClassifierHead(config, num_labels=5)
    variables = model.trainable_variables + head.trainable_variables
    optimizer = create_optimizer("adamw", variables, 5e-5, 1000, 100)
    labels = tf.constant([1])

    @tf.function
    def run(ids, mask, types):
      with tf.GradientTape() as tape:
        outputs = model(ids, mask, types, training=True)
        loss, _, _, _ = head(outputs["pooled_output"], labels, training=True)
      optimizer.apply_gradients(tape.gradient(loss, variables))
      return loss

  # Long points are slow: one untimed call (tracing, graph optimisation) only below 8192.
  warmup, iterations = (1, 3) if seq_length < 8192 else (0, 1)
  seconds = common.time_calls(lambda: run(*inputs).numpy(), warmup, iterations)
  with open("/proc/self/status", encoding="utf-8") as status:
    peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
  return {"seconds": seconds, "peak_gb": peak_kb / 1e6}


def run_point(seq_length, mode, step, chunk_size):
  """Measures one point in a subprocess; returns its dict, or an error string."""
  command = [sys.executable, os.path.abspath(__file__), "--point",
             f"{seq_length},{mode},{step}", "--chunk_size", str(chunk_size)]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run(command, capture_output=True, text=True, env=env)
  if result.returncode != 0:
    return {"error": f"exit {result.returncode}: {result.stderr.strip()[-300:]}"}
  return json.loads(result.stdout.strip().splitlines()[-1])


def markdown_table(results, lengths):
  """One row per length: seconds and peak GB for each step and mode."""
  def cell(point):
    if point is None:
      return "—"
    if "skipped" in point or "error" in point:
      return point.get("skipped") or "failed"
    return f"{point['seconds']:.2f} s, {point['peak_gb']:.2f} GB"

  header = [f"{step} {mode}" for step in STEPS for mode in MODES]
  lines = ["| tokens | " + " | ".join(header) + " |", "|---:" + "|---" * len(header) + "|"]
  for length in lengths:
    cells = [cell(results.get(f"{length},{mode},{step}")) for step in STEPS for mode in MODES]
    lines.append(f"| {length} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def plot(results, lengths, png_path):
  """Peak memory and time against length, log-log, one line per step and mode."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
  figure, axes = pyplot.subplots(1, 2, figsize=(11, 4.2))
  for step in STEPS:
    for mode in MODES:
      points = [(n, results[f"{n},{mode},{step}"]) for n in lengths
                if "seconds" in results.get(f"{n},{mode},{step}", {})]
      if not points:
        continue
      xs = [n for n, _ in points]
      style = {"linestyle": "-" if mode == "chunked" else "--",
               "marker": "o" if step == "forward" else "s", "label": f"{step}, {mode}"}
      axes[0].plot(xs, [p["peak_gb"] for _, p in points], **style)
      axes[1].plot(xs, [p["seconds"] for _, p in points], **style)
  for ax, label in zip(axes, ("peak process memory (GB)", "seconds per call")):
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel(label)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
  figure.suptitle("MiniLM-L6-H384, batch 1, CPU: full vs memory-efficient (chunked) attention")
  figure.tight_layout()
  figure.savefig(png_path, dpi=110)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lengths", default="512,1024,2048,4096,8192,16384,32768")
  parser.add_argument("--train_lengths_up_to", type=int, default=16384,
                      help="the training step is measured up to this length")
  parser.add_argument("--chunk_size", type=int, default=512)
  parser.add_argument("--max_full_gb", type=float, default=10.0,
                      help="skip full attention where its scores alone need more")
  parser.add_argument("--output", default=os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "results", "long_texts"))
  parser.add_argument("--point", help=argparse.SUPPRESS)  # "S,mode,step": one point
  args = parser.parse_args()
  if args.point:
    length, mode, step = args.point.split(",")
    print(json.dumps(measure_point(int(length), mode, step, args.chunk_size)))
    return

  lengths = [int(n) for n in args.lengths.split(",")]
  results = {}
  for length in lengths:
    for step in STEPS:
      for mode in MODES:
        key = f"{length},{mode},{step}"
        if step == "train" and length > args.train_lengths_up_to:
          continue
        if mode == "chunked" and length <= args.chunk_size:
          results[key] = {"skipped": "= full (one block)"}
        elif mode == "full" and full_scores_gb(length, step) > args.max_full_gb:
          results[key] = {"skipped": f"skipped (~{full_scores_gb(length, step):.0f} GB)"}
        else:
          start = time.perf_counter()
          results[key] = run_point(length, mode, step, args.chunk_size)
          print(f"{key}: {results[key]} ({time.perf_counter() - start:.0f} s wall)",
                flush=True)
  os.makedirs(os.path.dirname(args.output), exist_ok=True)
  with open(args.output + ".json", "w", encoding="utf-8") as writer:
    json.dump({"chunk_size": args.chunk_size, "results": results}, writer, indent=1)
  print(markdown_table(results, lengths))
  plot(results, lengths, args.output + ".png")
  print(f"wrote {args.output}.json and {args.output}.png")


if __name__ == "__main__":
  main()
