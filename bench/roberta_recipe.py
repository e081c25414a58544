"""The RoBERTa recipe against the original's, continuing the pretraining of MiniLM.

In one run, from the same checkpoint, for the same steps and batch size:
  original: create_pretraining_data.py (static masks, --dupe_factor=5, A/B pairs
    with next-sentence labels), run_pretraining.py with both heads;
  roberta: create_pretraining_data.py --masking=dynamic --packing=full_sentences,
    run_pretraining.py --dynamic_masking --next_sentence=false.
and, as the control for the cost of dynamic masking, the masked-LM-only model on
the static records. All are then evaluated on the same held-out static masked records (documents
neither trained on), masked-LM accuracy and loss. The training examples/s of each
come from the runs' own log lines (median of the steady intervals), and the input
pipeline alone is timed with static and with dynamically masked records.

  .venv/bin/python bench/roberta_recipe.py --steps=300
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import common

SHARED = os.path.join(os.path.dirname(common.REPO_DIR), "shared")


def split_corpus(corpus, train_path, heldout_path, train_documents, heldout_documents):
  """Writes the first documents of `corpus` to `train_path`, the last to `heldout_path`."""
  with open(corpus, encoding="utf-8") as reader:
    documents = [d.strip() for d in reader.read().split("\n\n") if d.strip()]
  if len(documents) < train_documents + heldout_documents:
    raise ValueError(f"{corpus} has {len(documents)} documents; asked for "
                     f"{train_documents} + {heldout_documents}")
  for path, chosen in ((train_path, documents[:train_documents]),
                       (heldout_path, documents[-heldout_documents:])):
    with open(path, "w", encoding="utf-8") as writer:
      writer.write("\n\n".join(chosen) + "\n")


def run(script, *args):
  """Runs one of our scripts; returns its log (stderr)."""
  result = subprocess.run([sys.executable, os.path.join(common.REPO_DIR, script), *args],
                          capture_output=True, text=True, cwd=common.REPO_DIR,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  if result.returncode != 0:
    raise RuntimeError(f"{script} failed:\n{result.stderr[-4000:]}")
  return result.stderr


def examples_per_second(log):
  """Median examples/s of the log lines after the first (which includes tracing)."""
  rates = [float(r) for r in re.findall(r"([\d.]+) examples/s", log)]
  return statistics.median(rates[1:]) if len(rates) > 1 else float("nan")


def eval_results(path):
  with open(path, encoding="utf-8") as reader:
    return {k: float(v) for k, v in (line.strip().split(" = ") for line in reader)}


def time_pipeline(records, masked, args, vocab_file):
  """Records/s of the training input pipeline alone (best of 3 passes of 200 batches)."""
  # pylint: disable-next=import-outside-toplevel
  from modeling.data import dynamic_masking, pretraining_input
  masker = None if masked else dynamic_masking.DynamicMasker(
      vocab_file, args.max_predictions_per_seq, seed=1)
  dataset = pretraining_input.pretraining_dataset(
      [records], args.seq_length, args.max_predictions_per_seq, args.batch_size, True, seed=1,
      masker=masker, next_sentence=masked)
  best = float("inf")
  for _ in range(3):
    start = time.perf_counter()
    for _ in dataset.take(200):
      pass
    best = min(best, time.perf_counter() - start)
  return 200 * args.batch_size / best


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--corpus", default=os.path.join(SHARED, "data", "corpus",
                                                       "fortunes_corpus.txt"))
  parser.add_argument("--model_dir", default=os.path.join(SHARED, "models",
                                                          "minilm-l6-h384-uncased"))
  parser.add_argument("--train_documents", type=int, default=1500)
  parser.add_argument("--heldout_documents", type=int, default=300)
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--batch_size", type=int, default=16)
  parser.add_argument("--seq_length", type=int, default=64)
  parser.add_argument("--max_predictions_per_seq", type=int, default=10)
  parser.add_argument("--learning_rate", type=float, default=1e-4)
  parser.add_argument("--work_dir", default=None)
  args = parser.parse_args()
  work = args.work_dir or tempfile.mkdtemp(prefix="roberta_recipe_")
  os.makedirs(work, exist_ok=True)
  vocab = os.path.join(args.model_dir, "vocab.txt")
  config = os.path.join(args.model_dir, "bert_config.json")
  init = os.path.join(args.model_dir, "bert_model.ckpt")
  print(f"CPU: {common.cpu_description()}")
  train_text, heldout_text = (os.path.join(work, n) for n in ("train.txt", "heldout.txt"))
  split_corpus(args.corpus, train_text, heldout_text, args.train_documents,
               args.heldout_documents)
  sizes = [f"--max_seq_length={args.seq_length}",
           f"--max_predictions_per_seq={args.max_predictions_per_seq}"]
  data = {name: os.path.join(work, f"{name}.tfrecord") for name in ("static", "dynamic",
                                                                    "heldout")}
  for name, text, extra in (("static", train_text, ["--dupe_factor=5"]),
                            ("dynamic", train_text, ["--masking=dynamic",
                                                     "--packing=full_sentences"]),
                            ("heldout", heldout_text, ["--dupe_factor=1"])):
    run("create_pretraining_data.py", f"--input_file={text}", f"--output_file={data[name]}",
        f"--vocab_file={vocab}", *sizes, *extra)
  count = {name: sum(1 for _ in _records(path)) for name, path in data.items()}
  print(f"records: {json.dumps(count)} (train documents {args.train_documents}, held-out "
        f"{args.heldout_documents}); {args.steps} steps of {args.batch_size}: "
        f"{args.steps * args.batch_size / count['static']:.1f} passes over the static "
        f"records, {args.steps * args.batch_size / count['dynamic']:.1f} over the dynamic ones")

  common_flags = [f"--bert_config_file={config}", f"--init_checkpoint={init}", *sizes,
                  f"--train_batch_size={args.batch_size}", f"--eval_batch_size={args.batch_size}",
                  f"--learning_rate={args.learning_rate}", f"--num_train_steps={args.steps}",
                  f"--num_warmup_steps={args.steps // 10}", "--log_steps=20",
                  f"--save_checkpoints_steps={args.steps}"]
  recipes = {"original": [f"--input_file={data['static']}"],
             # The control for the cost of dynamic masking: the same model (masked LM
             # only) on the static records.
             "static_mlm": [f"--input_file={data['static']}", "--next_sentence=false"],
             "roberta": [f"--input_file={data['dynamic']}", "--dynamic_masking",
                         f"--vocab_file={vocab}", "--next_sentence=false"]}
  rates, results = {}, {}
  for name, flags in recipes.items():
    output_dir = os.path.join(work, name)
    rates[name] = examples_per_second(run("run_pretraining.py", "--do_train",
                                          f"--output_dir={output_dir}", *common_flags, *flags))
    run("run_pretraining.py", "--do_eval", f"--output_dir={output_dir}", *common_flags,
        f"--input_file={data['heldout']}", "--next_sentence=false",
        f"--max_eval_steps={count['heldout'] // args.batch_size}")
    results[name] = eval_results(os.path.join(output_dir, "eval_results.txt"))

  print(f"\nheld-out masked LM ({count['heldout'] // args.batch_size * args.batch_size} "
        "records, the same for all):")
  for name in ("original", "static_mlm", "roberta"):
    rate = f"  training {rates[name]:.1f} examples/s"
    print(f"  {name:9s} accuracy {results[name]['masked_lm_accuracy']:.4f}  loss "
          f"{results[name]['masked_lm_loss']:.4f}{rate}")
  pipeline = {"static": time_pipeline(data["static"], True, args, vocab),
              "dynamic": time_pipeline(data["dynamic"], False, args, vocab)}
  print(f"input pipeline alone: static {pipeline['static']:.0f} records/s, dynamic masking "
        f"{pipeline['dynamic']:.0f} records/s; training consumes "
        f"{max(rates.values()):.0f} examples/s")
  print(f"training examples/s of the masked-LM-only model, dynamic / static masks: "
        f"{rates['roberta'] / rates['static_mlm']:.3f}")


def _records(path):
  from modeling.data import tfrecord  # pylint: disable=import-outside-toplevel
  return tfrecord.read_records(path)


if __name__ == "__main__":
  sys.path.insert(0, common.REPO_DIR)
  main()
