"""Multi-label classification on WNUT 2017 entity types: run_classifier.py vs Hugging Face.

  .venv/bin/pip install torch==2.13.0 transformers   # the peer only; not a dependency
  .venv/bin/python bench/multi_label.py [--epochs 5] [--learning_rate 2e-4]

The task, made from ../shared/data/wnut17: each sentence (its words joined by spaces)
is labelled with the set of entity types it mentions, of the six (person, location,
corporation, product, creative-work, group); most sentences mention none (the empty
set). Train on train.conll's sentences, score dev.conll's.

Both sides start from the same weights (../shared/models/minilm-l6-h384-uncased; for
Hugging Face read by name into BertForSequenceClassification with problem_type
multi_label_classification) and train on the same word pieces (run_classifier's
features) with the same seed and hyper-parameters (batch 32, max_seq_length 128, the
given lr and epochs, 10% linear warmup then linear decay (ours the original's, over all
steps; Hugging Face's over the steps after the warmup), weight decay 0.01 except
LayerNorm and biases, Adam eps 1e-6, clip 1.0, dropout 0.1; fp32, or with --bf16 both
in bfloat16 on float32 weights); each head's bias starts as its recipe has it (ours at
each label's log prior odds, --multi_label_prior_bias; Hugging Face's at 0, or at ours
with --hugging_face_prior_bias). One after the other in this run, each in its own
process; each pads its batches its usual way (ours, ungrouped, to the multiple of 8
above the batch's longest, and with --remove_padding its per-token layers skip the
padding; Hugging Face to the batch's longest). Scored with the same
micro F1 (`classifier.multi_label_metrics`): at threshold 0.5 for both, and with
thresholds chosen on dev (`choose_thresholds`: ours by --multi_label_threshold=auto
and auto_per_label, applied to Hugging Face's probabilities too, for reference). The
wall-clock is the whole training process (start-up, tokenizing, training, dev
evaluation). Prints the CPU and the load average around each side.
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_DIR)
SHARED_DIR = os.path.join(os.path.dirname(REPO_DIR), "shared")
BERT_DIR = os.path.join(SHARED_DIR, "models", "minilm-l6-h384-uncased")
WNUT_DIR = os.path.join(SHARED_DIR, "data", "wnut17")
BATCH_SIZE, MAX_SEQ_LENGTH = 32, 128
# Ours' speed flags the benchmark passes on: {flag: what it does}.
SPEED_FLAGS = {"remove_padding": "the encoder's per-token layers on the real tokens only",
               "jit_optimizer": "each variable's update one XLA computation"}

import common  # noqa: E402
from modeling.data import classifier_data, ner_data  # noqa: E402


def load():
  return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def make_task(data_dir):
  """Writes train.tsv and dev.tsv (`label<TAB>text`, the label a comma set) to data_dir;
  returns {split: (sentences, sentences with the empty set)}."""
  os.makedirs(data_dir, exist_ok=True)
  counts = {}
  for split in ("train", "dev"):
    sentences = ner_data.read_files(os.path.join(WNUT_DIR, f"{split}.conll"))
    rows = []
    for sentence in sentences:
      types = sorted({tag[2:] for tag in sentence.tags if tag != "O"})
      rows.append(f"{','.join(types)}\t{' '.join(sentence.words)}\n")
    with open(os.path.join(data_dir, f"{split}.tsv"), "w", encoding="utf-8") as writer:
      writer.write("label\ttext\n" + "".join(rows))
    counts[split] = (len(rows), sum(row.startswith("\t") for row in rows))
  return counts


def classifier_flags(args, data_dir):
  return ["--task_name=tsv", "--multi_label", f"--data_dir={data_dir}",
          f"--vocab_file={BERT_DIR}/vocab.txt", f"--bert_config_file={BERT_DIR}/bert_config.json",
          f"--max_seq_length={MAX_SEQ_LENGTH}", f"--eval_batch_size={BATCH_SIZE}",
          *(["--mixed_precision=bf16"] if args.bf16 else []),
          *[f"--{name}" for name in SPEED_FLAGS if getattr(args, name)]]


def training_flags(args):
  return [f"--train_batch_size={BATCH_SIZE}", f"--learning_rate={args.learning_rate}",
          f"--num_train_epochs={args.epochs}", f"--seed={args.seed}",
          *(["--nomulti_label_prior_bias"] if args.nomulti_label_prior_bias else []),
          *([f"--optimizer={args.optimizer}"] if args.optimizer else [])]


def run_ours(args, data_dir):
  """run_classifier.py --multi_label: trains and scores at 0.5, then rescores the same
  checkpoint with thresholds chosen on dev. Returns {name: value}."""
  output_dir = os.path.join(args.output_dir, "ours")
  print(f"ours: start, {load()}", flush=True)
  results, examples_per_second, seconds = common.run_fine_tuning(
      "run_classifier.py", output_dir, *classifier_flags(args, data_dir),
      f"--init_checkpoint={BERT_DIR}/bert_model.ckpt", "--do_train", "--do_eval",
      *training_flags(args), "--log_steps=20", "--save_checkpoints_steps=100000")
  print(f"ours: wall {seconds:.0f}s, {load()}", flush=True)
  side = {"micro_f1": results["eval_micro_f1"], "macro_f1": results["eval_macro_f1"],
          "wall": seconds, "examples_per_second": examples_per_second}
  for auto in ("auto", "auto_per_label"):  # Eval only: the checkpoint of the run above.
    common.run_timed([sys.executable, os.path.join(REPO_DIR, "run_classifier.py"),
                      f"--output_dir={output_dir}", *classifier_flags(args, data_dir),
                      "--do_eval", f"--multi_label_threshold={auto}"])
    with open(os.path.join(output_dir, "eval_results.txt"), encoding="utf-8") as reader:
      values = dict(line.split(" = ") for line in reader.read().splitlines())
    side[f"micro_f1_{auto}"] = float(values["eval_micro_f1"])
  return side


def run_hugging_face(args, data_dir):
  stdout, _, seconds = common.run_timed([sys.executable, os.path.abspath(__file__),
                                         "--hugging_face_side", f"--data_dir={data_dir}",
                                         f"--epochs={args.epochs}", f"--seed={args.seed}",
                                         f"--learning_rate={args.learning_rate}",
                                         *(["--bf16"] if args.bf16 else []),
                                         *(["--hugging_face_prior_bias"]
                                           if args.hugging_face_prior_bias else [])])
  print(f"hugging face: wall {seconds:.0f}s, {load()}", flush=True)
  return dict(common.last_json_line(stdout), wall=seconds)


def hugging_face_side(args):
  """In its own process: fine-tunes and scores BertForSequenceClassification with
  problem_type multi_label_classification; prints one JSON line."""
  import hf_peer  # pylint: disable=import-outside-toplevel
  # pylint: disable=import-outside-toplevel
  from modeling.data.tokenization import FullTokenizer
  from modeling.tasks import classifier
  processor = classifier_data.get_processor("tsv", args.data_dir, label_separator=",")
  labels = processor.get_labels()
  tokenizer = FullTokenizer(os.path.join(BERT_DIR, "vocab.txt"))

  def arrays(split):
    return classifier_data.to_arrays(processor.get_examples(args.data_dir, split), labels,
                                     MAX_SEQ_LENGTH, tokenizer, multi_label=True)

  train, dev = arrays("train"), arrays("dev")
  model = hf_peer.load_model("BertForSequenceClassification", BERT_DIR, len(labels),
                             seed=args.seed, problem_type="multi_label_classification")
  if args.hugging_face_prior_bias:
    import torch  # pylint: disable=import-outside-toplevel
    with torch.no_grad():
      model.classifier.bias.copy_(torch.from_numpy(classifier.prior_log_odds(train["label_ids"])))
  times = hf_peer.fine_tune(model, train, args.epochs, BATCH_SIZE, args.learning_rate,
                            seed=args.seed, log=lambda m: print(m, file=sys.stderr),
                            bf16=args.bf16)
  probabilities = 1 / (1 + np.exp(-hf_peer.predict(model, dev, BATCH_SIZE, args.bf16)))
  outputs = {"predictions": probabilities, "per_example_loss": np.zeros(len(probabilities))}
  side = {"examples_per_second": len(times) * BATCH_SIZE / sum(times)}
  for name, thresholds in (
      ("", 0.5), ("_auto", classifier.choose_thresholds(probabilities, dev["label_ids"])),
      ("_auto_per_label", classifier.choose_thresholds(probabilities, dev["label_ids"], True))):
    results = classifier.multi_label_metrics(outputs, dev["label_ids"], thresholds, labels)
    side[f"micro_f1{name}"] = results["eval_micro_f1"]
    if not name:
      side["macro_f1"] = results["eval_macro_f1"]
  print(json.dumps(side))


SIDES = {"ours": run_ours, "hugging face": run_hugging_face}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--epochs", type=float, default=5.0)
  parser.add_argument("--learning_rate", type=float, default=2e-4)
  parser.add_argument("--seed", type=int, default=12345)
  parser.add_argument("--optimizer", default="",
                      help="ours: run_classifier's --optimizer (default: --multi_label's, "
                           "adamw_corrected, as PyTorch's AdamW on Hugging Face's side)")
  parser.add_argument("--bf16", action="store_true",
                      help="both sides in bfloat16: ours --mixed_precision=bf16, Hugging Face "
                           "torch.autocast (float32 weights on both)")
  parser.add_argument("--nomulti_label_prior_bias", action="store_true",
                      help="ours: output_bias starts at 0, as Hugging Face's (default: "
                           "--multi_label's, each label's log prior odds)")
  parser.add_argument("--hugging_face_prior_bias", action="store_true",
                      help="Hugging Face: the classifier's bias starts at ours' prior too "
                           "(for reference: not its recipe)")
  for name, what in SPEED_FLAGS.items():
    parser.add_argument(f"--{name}", action="store_true",
                        help=f"ours: run_classifier's --{name} ({what})")
  parser.add_argument("--output_dir", default="/tmp/multi_label_bench")
  parser.add_argument("--sides", default=",".join(SIDES),
                      help=f"comma-separated, of: {', '.join(SIDES)}")
  parser.add_argument("--hugging_face_side", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--data_dir", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.hugging_face_side:
    hugging_face_side(args)
    return
  sides = common.chosen_sides(parser, args.sides, SIDES)
  print(f"CPU: {common.cpu_description()}", flush=True)
  shutil.rmtree(args.output_dir, ignore_errors=True)
  data_dir = os.path.join(args.output_dir, "data")
  counts = make_task(data_dir)
  print("task: " + ", ".join(f"{split} {count} sentences ({empty / count:.0%} the empty set)"
                             for split, (count, empty) in counts.items()), flush=True)
  results = {}
  for side in sides:
    results[side] = SIDES[side](args, data_dir)
    print(f"{side}: {results[side]}", flush=True)

  print(f"\nWNUT-17 entity types (multi-label, 6 labels), MiniLM-L6-H384, {args.epochs:g} "
        f"epochs, lr {args.learning_rate:g}, seq {MAX_SEQ_LENGTH}, batch {BATCH_SIZE}, "
        f"{'bf16' if args.bf16 else 'fp32'}"
        + "".join(f", ours --{name}" for name in SPEED_FLAGS if getattr(args, name))
        + (", ours --nomulti_label_prior_bias" if args.nomulti_label_prior_bias else "")
        + (", hugging face's bias at the prior" if args.hugging_face_prior_bias else ""))
  print(f"  {'':13s} {'micro F1 @0.5':>13s} {'auto':>6s} {'per label':>9s} {'macro F1':>8s} "
        f"{'wall-clock':>10s} {'training':>16s}")
  for side, r in results.items():
    print(f"  {side:13s} {r['micro_f1']:13.4f} {r['micro_f1_auto']:6.4f} "
          f"{r['micro_f1_auto_per_label']:9.4f} {r['macro_f1']:8.4f} {r['wall']:9.0f}s "
          f"{r['examples_per_second']:6.1f} examples/s")
  if len(results) == 2:
    print(f"  wall-clock, hugging face / ours: "
          f"{results['hugging face']['wall'] / results['ours']['wall']:.2f}x")


if __name__ == "__main__":
  main()
