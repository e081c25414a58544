"""Fine-tuning wall-clock to the same dev accuracy on ../shared/data/topics, side by side.

  .venv/bin/python bench/finetune_topics.py [--epochs 3] [--output_dir /tmp/finetune_topics]

Every side fine-tunes the real MiniLM-L6-H384 checkpoint
(../shared/models/minilm-l6-h384-uncased) on the 2,540 train sentences and scores
the 317 dev sentences, in a fresh process of its own, one after the other in this
run, with the same hyper-parameters (3 epochs, max_seq_length 128, batch 32, lr
5e-5, 10% linear warmup then linear decay, weight decay 0.01 except LayerNorm and
biases, Adam epsilon 1e-6, clipping 1.0, dropout 0.1):
  original    the original run_classifier.py's graph (bench/original_peer.py):
              its TFRecords, input_fn, create_model and create_optimizer, every
              example padded to 128;
  ours none   run_classifier.py --length_buckets=none (padded to 128, as the original);
  ours auto   run_classifier.py (its default --length_buckets=auto);
  ours bf16   run_classifier.py --mixed_precision=bf16 (auto buckets);
  hugging face  BertForSequenceClassification on PyTorch, each batch padded to its
              longest example, as DataCollatorWithPadding (bench/hf_peer.py).
The wall-clock is the whole process: start-up, reading and tokenizing, training,
the final checkpoint (the original's and ours) and the dev evaluation. Prints
each side's dev accuracy, wall-clock, training examples/s and its speed-up over
the original; a side whose accuracy is more than 0.01 from the original's is
marked.
"""

import argparse
import json
import os
import shutil
import sys


import common

SHARED_DIR = os.path.join(os.path.dirname(common.REPO_DIR), "shared")
BERT_DIR = os.path.join(SHARED_DIR, "models", "minilm-l6-h384-uncased")
DATA_DIR = os.path.join(SHARED_DIR, "data", "topics")
BATCH_SIZE, MAX_SEQ_LENGTH, LEARNING_RATE = 32, 128, 5e-5


def run_original(args, output_dir):
  result = common.run_original(
      "classifier", bert_dir=BERT_DIR, data_dir=DATA_DIR, output_dir=output_dir,
      batch_size=BATCH_SIZE, max_seq_length=MAX_SEQ_LENGTH, epochs=args.epochs,
      learning_rate=LEARNING_RATE)
  steps = int(2540 / BATCH_SIZE * args.epochs)
  return {"accuracy": result["accuracy"], "wall": result["wall"],
          "examples_per_second": steps * BATCH_SIZE / result["train_seconds"]}


def run_ours(args, output_dir, *flags):
  results, examples_per_second, seconds = common.run_fine_tuning(
      "run_classifier.py", output_dir, "--task_name=tsv", f"--data_dir={DATA_DIR}",
      f"--vocab_file={BERT_DIR}/vocab.txt", f"--bert_config_file={BERT_DIR}/bert_config.json",
      f"--init_checkpoint={BERT_DIR}/bert_model.ckpt", "--do_train", "--do_eval",
      f"--max_seq_length={MAX_SEQ_LENGTH}", f"--train_batch_size={BATCH_SIZE}",
      f"--learning_rate={LEARNING_RATE}", f"--num_train_epochs={args.epochs}",
      "--log_steps=20", "--save_checkpoints_steps=100000", f"--eval_batch_size={BATCH_SIZE}",
      *flags)
  return {"accuracy": results["eval_accuracy"], "wall": seconds,
          "examples_per_second": examples_per_second}


def run_hugging_face(args, output_dir):
  del output_dir  # Nothing written.
  stdout, _, seconds = common.run_timed([sys.executable, os.path.abspath(__file__),
                                         "--hugging_face_side", f"--epochs={args.epochs}"])
  return dict(common.last_json_line(stdout), wall=seconds)


def hugging_face_side(args):
  """In its own process: fine-tunes and evaluates; prints one JSON line."""
  sys.path.insert(0, common.REPO_DIR)
  import hf_peer  # pylint: disable=import-outside-toplevel
  # pylint: disable=import-outside-toplevel
  from modeling.data import classifier_data, tokenization
  processor = classifier_data.get_processor("tsv", DATA_DIR)
  labels = processor.get_labels()
  tokenizer = tokenization.FullTokenizer(os.path.join(BERT_DIR, "vocab.txt"))

  def arrays(split):
    return classifier_data.to_arrays(processor.get_examples(DATA_DIR, split), labels,
                                     MAX_SEQ_LENGTH, tokenizer)

  train, dev = arrays("train"), arrays("dev")
  model = hf_peer.load_model("BertForSequenceClassification", BERT_DIR, len(labels))
  times = hf_peer.fine_tune(model, train, args.epochs, BATCH_SIZE, LEARNING_RATE,
                            log=lambda m: print(m, file=sys.stderr))
  accuracy = float((hf_peer.predict(model, dev, BATCH_SIZE).argmax(-1)
                    == dev["label_ids"]).mean())
  print(json.dumps({"accuracy": accuracy,
                    "examples_per_second": len(times) * BATCH_SIZE / sum(times)}))


SIDES = {
    "original": run_original,
    "ours none": lambda args, d: run_ours(args, d, "--length_buckets=none"),
    "ours auto": run_ours,
    "ours bf16": lambda args, d: run_ours(args, d, "--mixed_precision=bf16"),
    "hugging face": run_hugging_face,
}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--epochs", type=float, default=3.0)
  parser.add_argument("--output_dir", default="/tmp/finetune_topics")
  parser.add_argument("--sides", default=",".join(SIDES),
                      help=f"comma-separated, of: {', '.join(SIDES)}")
  parser.add_argument("--hugging_face_side", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.hugging_face_side:
    hugging_face_side(args)
    return
  sides = common.chosen_sides(parser, args.sides, SIDES)
  if "original" not in sides:
    parser.error("--sides: original missing (every ratio is to it)")
  print(f"CPU: {common.cpu_description()}", flush=True)
  results = {}
  for side in sides:
    output_dir = os.path.join(args.output_dir, side.replace(" ", "_"))
    shutil.rmtree(output_dir, ignore_errors=True)
    os.makedirs(output_dir)
    results[side] = SIDES[side](args, output_dir)
    print(f"{side}: {results[side]}, load average {os.getloadavg()[0]:.1f}", flush=True)

  original = results["original"]
  print(f"\ntopics, MiniLM-L6-H384, {args.epochs:g} epochs, seq {MAX_SEQ_LENGTH}, "
        f"batch {BATCH_SIZE}, lr {LEARNING_RATE:g}; wall-clock of the whole job")
  print(f"  {'':14s} {'dev accuracy':>12s} {'wall-clock':>10s} {'training':>16s} "
        f"{'vs original':>11s}")
  for side, result in results.items():
    mark = "" if abs(result["accuracy"] - original["accuracy"]) <= 0.01 else "  (accuracy off)"
    print(f"  {side:14s} {result['accuracy']:12.4f} {result['wall']:9.0f}s "
          f"{result['examples_per_second']:6.1f} examples/s "
          f"{original['wall'] / result['wall']:10.2f}x{mark}")


if __name__ == "__main__":
  main()
