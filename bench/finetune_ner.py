"""Fine-tuning MiniLM for NER on ../shared/data/wnut17: run_ner.py vs Hugging Face.

  .venv/bin/pip install torch==2.13.0 transformers   # the peer only; not a dependency
  .venv/bin/python bench/finetune_ner.py [--epochs 3] [--max_seq_length 64]

Both start from the same weights (../shared/models/minilm-l6-h384-uncased, read by name
from the TF1 checkpoint into transformers' BertForTokenClassification), train on the
same windows of word pieces with the same first-piece labels (`modeling.data.ner_data`),
with the same hyper-parameters (batch 32, lr 5e-5, 10% linear warmup then linear
decay, weight decay 0.01 except LayerNorm and biases, Adam eps 1e-6, clip 1.0,
dropout 0.1, fp32), one after the other in this run, and are scored on the dev file
with the same conlleval metric (`modeling.tasks.ner_metrics`). Each side pads its batches
its usual way: ours to the length bucket (run_ner's default --length_buckets=auto),
Hugging Face to the longest window of the batch (as its
DataCollatorForTokenClassification). Prints the CPU and the load average around
each side (other processes on a shared machine skew the speeds), then each side's
dev entity F1 and training examples (windows)/s.
"""

import argparse
import os
import sys

import numpy as np

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_DIR)
SHARED_DIR = os.path.join(os.path.dirname(REPO_DIR), "shared")
BERT_DIR = os.path.join(SHARED_DIR, "models", "minilm-l6-h384-uncased")
DATA_DIR = os.path.join(SHARED_DIR, "data", "wnut17")

import common  # noqa: E402
import hf_peer  # noqa: E402
from modeling.data import ner_data  # noqa: E402
from modeling.data.tokenization import FullTokenizer  # noqa: E402
from modeling.tasks import ner_metrics  # noqa: E402


def load():
  return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def run_ours(args):
  """Runs run_ner.py; returns (dev entity F1, training examples/s)."""
  print(f"ours: start, {load()}", flush=True)
  results, examples_per_second, seconds = common.run_fine_tuning(
      "run_ner.py", os.path.join(args.output_dir, "ours"),
      f"--train_file={DATA_DIR}/train.conll", f"--eval_file={DATA_DIR}/dev.conll",
      f"--vocab_file={BERT_DIR}/vocab.txt", f"--bert_config_file={BERT_DIR}/bert_config.json",
      f"--init_checkpoint={BERT_DIR}/bert_model.ckpt", "--do_train", "--do_eval",
      f"--max_seq_length={args.max_seq_length}", "--train_batch_size=32",
      "--learning_rate=5e-5", f"--num_train_epochs={args.epochs}", "--log_steps=20",
      "--save_checkpoints_steps=100000", "--eval_batch_size=32")
  print(f"ours: wall {seconds:.0f}s, {load()}", flush=True)
  return results["eval_f1"], examples_per_second


def run_hugging_face(args):
  """Fine-tunes BertForTokenClassification on the same windows; (dev F1, examples/s)."""
  train = ner_data.read_files(f"{DATA_DIR}/train.conll")
  dev = ner_data.read_files(f"{DATA_DIR}/dev.conll")
  labels = ner_data.labels_of(train)
  label_ids = {label: i for i, label in enumerate(labels)}
  tokenizer = FullTokenizer(os.path.join(BERT_DIR, "vocab.txt"), do_lower_case=True)
  stride = (args.max_seq_length - 2) // 2
  arrays = ner_data.training_arrays(
      ner_data.features(train, tokenizer, label_ids, args.max_seq_length, stride))
  arrays["label_ids"] = np.where(arrays["label_weights"] > 0, arrays["label_ids"], -100)
  dev_features = ner_data.features(dev, tokenizer, label_ids, args.max_seq_length, stride)

  model = hf_peer.load_model("BertForTokenClassification", BERT_DIR, len(labels))
  print(f"hugging face: start, {load()}", flush=True)
  times = hf_peer.fine_tune(model, arrays, args.epochs, log=lambda m: print(m, flush=True))
  predicted = hf_peer.predict(model, dev_features.arrays).argmax(-1)  # [N, S]
  print(f"hugging face: done, {load()}", flush=True)
  word_labels = predicted[dev_features.word_window, dev_features.word_column]
  tags = ner_data.split_by_sentence([labels[i] for i in word_labels], dev)
  f1 = ner_metrics.evaluate([s.tags for s in dev], tags)["f1"]
  return f1, 32 / float(np.median(times[5:]))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--epochs", type=float, default=3.0)
  parser.add_argument("--max_seq_length", type=int, default=64)
  parser.add_argument("--output_dir", default="/tmp/finetune_ner")
  args = parser.parse_args()
  print(common.cpu_description(), flush=True)
  ours = run_ours(args)
  peer = run_hugging_face(args)
  print(f"WNUT17 dev entity F1 (conlleval), MiniLM-L6-H384, {args.epochs:g} epochs, "
        f"seq {args.max_seq_length}, batch 32, lr 5e-5, fp32")
  print(f"hugging face (PyTorch): F1 {peer[0]:.4f}  training {peer[1]:.1f} examples/s")
  print(f"ours:                   F1 {ours[0]:.4f}  training {ours[1]:.1f} examples/s")
  print(f"ratio ours / hugging face: F1 {ours[0] / max(peer[0], 1e-9):.2f}x, "
        f"speed {ours[1] / peer[1]:.2f}x")


if __name__ == "__main__":
  main()
