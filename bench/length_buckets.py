"""Length buckets on real text: prediction and fine-tuning throughput, side by side.

On the topics dev sentences (../shared/data/topics) with MiniLM-L6-H384
(../shared/models/minilm-l6-h384-uncased), max_seq_length 128, batch 32, fp32, in
one run:
  prediction: the original (every example padded to 128; its cost per batch does
    not depend on the text, so it is timed on a batch of that shape), ours padded
    to 128 (--length_buckets=none), ours bucketed (auto), and Hugging Face
    `BertForSequenceClassification` on PyTorch with dynamic padding (each batch
    padded to its longest, as DataCollatorWithPadding) when transformers is installed;
  fine-tuning: training steps of ours unbucketed and bucketed, and Hugging Face
    with dynamic padding, on the topics train sentences.
Each figure is the best of `--repeats` timed passes, taken in turn.

  .venv/bin/python bench/length_buckets.py
"""

import argparse
import os
import sys
import time

import numpy as np

import common

SHARED = os.path.join(os.path.dirname(common.REPO_DIR), "shared")


def read_topics(split, tokenizer, labels, max_seq_length):
  from modeling import classifier_data  # pylint: disable=import-outside-toplevel
  processor = classifier_data.get_processor("tsv", os.path.join(SHARED, "data", "topics"))
  examples = processor.get_examples(os.path.join(SHARED, "data", "topics"), split)
  features = [classifier_data.convert_example(e, labels, max_seq_length, tokenizer)
              for e in examples]
  arrays = {name: np.array([getattr(f, name) for f in features], np.int32)
            for name in ("input_ids", "input_mask", "segment_ids")}
  arrays["label_ids"] = np.array([f.label_id for f in features], np.int32)
  return arrays


def best_of(repeats, runs):
  """{name: best seconds} of `runs` {name: fn}, each timed `repeats` times, in turn."""
  best = {name: float("inf") for name in runs}
  for _ in range(repeats):
    for name, run in runs.items():
      start = time.perf_counter()
      run()
      best[name] = min(best[name], time.perf_counter() - start)
  return best


def ours(args, arrays, train_arrays, num_labels):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  # pylint: disable=import-outside-toplevel
  from modeling import checkpoint, classifier, length_buckets, optimization, training
  from modeling.config import BertConfig  # pylint: disable=import-outside-toplevel
  config = BertConfig.from_json_file(os.path.join(args.model_dir, "bert_config.json"))
  model = classifier.ClassifierModel(config, num_labels)
  checkpoint.load(os.path.join(args.model_dir, "bert_model.ckpt"), model,
                  allow_missing=classifier.FRESH_HEAD)
  strategy = tf.distribute.get_strategy()
  buckets = {"none": length_buckets.parse_buckets("none", args.max_seq_length),
             "auto": length_buckets.parse_buckets("auto", args.max_seq_length)}
  predict = {name: (lambda b=b: classifier.predict(strategy, model.predict_step, arrays,
                                                    args.batch_size, b))
             for name, b in buckets.items()}
  for run in predict.values():
    run()  # Traces.
  seconds = {f"ours predict {n}": s for n, s in best_of(args.repeats, predict).items()}

  optimizer = optimization.create_optimizer("adamw", model.trainable_variables, 2e-5, 1000, 100)
  trainer = training.Trainer(strategy, model.loss, optimizer, args.batch_size,
                             log_steps=args.train_steps, iterations_per_loop=args.train_steps,
                             totals_fn=model.loss_totals)
  num_batches = (args.repeats + 1) * args.train_steps
  datasets = {name: length_buckets.training_batches(train_arrays, b, args.batch_size, 0,
                                                    num_batches) for name, b in buckets.items()}
  iterators = {name: iter(d) for name, d in datasets.items()}

  steps = tf.constant(args.train_steps)

  def train(name):
    """`train_steps` steps on device, without the host loop's checkpoints and logs."""
    trainer._train_loop(iterators[name], steps)  # pylint: disable=protected-access

  for name in datasets:
    train(name)  # Traces.
  train_runs = {f"ours train {n}": (lambda n=n: train(n)) for n in datasets}
  seconds.update(best_of(args.repeats, train_runs))
  return seconds


def hugging_face(args, arrays, train_arrays, num_labels):
  try:
    import torch  # pylint: disable=import-outside-toplevel
    import transformers  # pylint: disable=import-outside-toplevel
  except ImportError:
    print("(Hugging Face not measured: pip install torch==2.13.0 transformers)")
    return {}
  torch.set_num_threads(os.cpu_count())
  from modeling import hf_names  # pylint: disable=import-outside-toplevel
  from modeling.config import BertConfig  # pylint: disable=import-outside-toplevel
  ours_config = BertConfig.from_json_file(os.path.join(args.model_dir, "bert_config.json"))
  config = transformers.BertConfig(**hf_names.config_to_hf(
      ours_config, "BertForSequenceClassification", [str(i) for i in range(num_labels)]))
  model = transformers.BertForSequenceClassification(config)  # Timing: random weights do.

  def batches(data, count):
    """Batches in order, each padded to its longest example (dynamic padding)."""
    out = []
    for start in range(0, count * args.batch_size, args.batch_size):
      rows = np.arange(start, start + args.batch_size) % len(data["input_ids"])
      width = int(data["input_mask"][rows].sum(1).max())
      out.append({k: torch.tensor(v[rows][:, :width] if v.ndim == 2 else v[rows],
                                  dtype=torch.long) for k, v in data.items()})
    return out

  predict_batches = batches(arrays, -(-len(arrays["input_ids"]) // args.batch_size))
  train_batches = batches(train_arrays, args.train_steps)
  optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)

  def predict():
    model.eval()
    with torch.no_grad():
      for b in predict_batches:
        model(input_ids=b["input_ids"], attention_mask=b["input_mask"],
              token_type_ids=b["segment_ids"])

  def train():
    model.train()
    for b in train_batches:
      loss = model(input_ids=b["input_ids"], attention_mask=b["input_mask"],
                   token_type_ids=b["segment_ids"], labels=b["label_ids"]).loss
      loss.backward()
      optimizer.step()
      optimizer.zero_grad()

  predict()
  return {f"hugging face {k}": v for k, v in
          best_of(args.repeats, {"predict dynamic": predict, "train dynamic": train}).items()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model_dir", default=os.path.join(SHARED, "models",
                                                          "minilm-l6-h384-uncased"))
  parser.add_argument("--max_seq_length", type=int, default=128)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--train_steps", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  sys.path.insert(0, common.REPO_DIR)
  from modeling import classifier_data, tokenization  # pylint: disable=import-outside-toplevel
  print(f"CPU: {common.cpu_description()}")
  tokenizer = tokenization.FullTokenizer(os.path.join(args.model_dir, "vocab.txt"))
  labels = classifier_data.get_processor(
      "tsv", os.path.join(SHARED, "data", "topics")).get_labels()
  arrays = read_topics("dev", tokenizer, labels, args.max_seq_length)
  train_arrays = read_topics("train", tokenizer, labels, args.max_seq_length)
  lengths = arrays["input_mask"].sum(1)
  print(f"topics dev: {len(lengths)} examples, pieces per example median {np.median(lengths):.0f}"
        f", mean {lengths.mean():.1f}, max {lengths.max()} (padded to {args.max_seq_length})")

  count = len(arrays["input_ids"])
  seconds = ours(args, arrays, train_arrays, len(labels))
  original = common.run_original("inference", config="minilm", batch_size=args.batch_size,
                                 seq_length=args.max_seq_length, max_predictions=20,
                                 warmup=2, iterations=5)["seconds_per_step"]
  seconds["original predict"] = original * -(-count // args.batch_size)
  seconds.update(hugging_face(args, arrays, train_arrays, len(labels)))

  print(f"\nprediction, {count} dev examples, batch {args.batch_size}:")
  for name in ("original predict", "ours predict none", "ours predict auto",
               "hugging face predict dynamic"):
    if name in seconds:
      print(f"  {name:30s} {count / seconds[name]:7.1f} examples/s  "
            f"{seconds['original predict'] / seconds[name]:.2f}x the original")
  steps = args.train_steps * args.batch_size
  print(f"fine-tuning steps, batch {args.batch_size}:")
  for name in ("ours train none", "ours train auto", "hugging face train dynamic"):
    if name in seconds:
      print(f"  {name:30s} {steps / seconds[name]:7.1f} examples/s  "
            f"{seconds['ours train none'] / seconds[name]:.2f}x ours unbucketed")


if __name__ == "__main__":
  main()
