"""Length buckets on real text: prediction and fine-tuning throughput, side by side.

  .venv/bin/python bench/length_buckets.py [--batch_size 32] [--repeats 3]

MiniLM-L6-H384 (../shared/models/minilm-l6-h384-uncased), max_seq_length 128, fp32,
one run, each side in a process of its own, one after the other:
  prediction on two sets of real sentences: the topics dev sentences through the
    sentence classifier, and the WNUT 2017 dev sentences (tweets) through the
    per-token tagger of run_ner.py:
    - the original: every example padded to 128. Its cost per batch does not
      depend on the text, so it is timed on batches of that shape (its encoder;
      the heads are a few hundred multiply-adds per token) and counted once per
      batch of the set;
    - ours, padded to 128 (`--length_buckets=none`) and bucketed (`auto`), through
      `array_predictor.predict` as run_classifier.py and run_ner.py call it; and bucketed
      in bfloat16 (`--mixed_precision=bf16`: outputs within bf16 rounding, not 1e-5);
    - Hugging Face `BertForSequenceClassification` / `BertForTokenClassification`
      on PyTorch, each batch padded to its longest example (bench/hf_peer.py);
  fine-tuning steps on the topics train sentences: ours unbucketed and bucketed,
    Hugging Face with dynamic padding (bench/finetune_topics.py times whole jobs).
Each figure is the best of `--repeats` timed passes after one untimed pass.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

import common

SHARED = os.path.join(os.path.dirname(common.REPO_DIR), "shared")
BERT_DIR = os.path.join(SHARED, "models", "minilm-l6-h384-uncased")
TOPICS_DIR = os.path.join(SHARED, "data", "topics")
WNUT_DIR = os.path.join(SHARED, "data", "wnut17")


def read_sets(max_seq_length):
  """{"topics": arrays, "wnut": arrays, "train": arrays}, and {set: number of labels}.

  Arrays are {name: np.ndarray}: int32 [N, S] `input_ids`, `input_mask`,
  `segment_ids`, and `label_ids` ([N] for a sentence, [N, S] per token).
  """
  # pylint: disable=import-outside-toplevel
  from modeling.data import classifier_data, ner_data, tokenization
  tokenizer = tokenization.FullTokenizer(os.path.join(BERT_DIR, "vocab.txt"))
  processor = classifier_data.get_processor("tsv", TOPICS_DIR)
  labels = processor.get_labels()

  def topics(split):
    return classifier_data.to_arrays(processor.get_examples(TOPICS_DIR, split), labels,
                                     max_seq_length, tokenizer)

  sentences = ner_data.read_files(os.path.join(WNUT_DIR, "dev.conll"))
  tags = ner_data.labels_of(ner_data.read_files(os.path.join(WNUT_DIR, "train.conll")))
  wnut = ner_data.features(sentences, tokenizer, {t: i for i, t in enumerate(tags)},
                           max_seq_length, (max_seq_length - 2) // 2).arrays
  wnut = {k: v for k, v in wnut.items() if k != "label_weights"}
  return ({"topics": topics("dev"), "wnut": wnut, "train": topics("train")},
          {"topics": len(labels), "wnut": len(tags), "train": len(labels)})


def best_of(repeats, runs):
  """{name: best seconds} of `runs` {name: fn}, each run once untimed, then timed
  `repeats` times, in turn."""
  for run in runs.values():
    run()
  best = {name: float("inf") for name in runs}
  for _ in range(repeats):
    for name, run in runs.items():
      start = time.perf_counter()
      run()
      best[name] = min(best[name], time.perf_counter() - start)
  return best


def ours_side(args, sets, num_labels):
  """{name: best seconds}: prediction on each set and `train_steps` steps, ours."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  # pylint: disable=import-outside-toplevel
  from modeling import checkpoint
  from modeling.data import length_buckets
  from modeling.model.config import BertConfig
  from modeling.tasks import classifier, ner
  from modeling.training import array_predictor, optimization, steps
  config = BertConfig.from_json_file(os.path.join(BERT_DIR, "bert_config.json"))
  classes = {"topics": classifier.ClassifierModel, "wnut": ner.NerModel}
  models = {(data, dtype): cls(config, num_labels[data], compute_dtype=dtype)
            for data, cls in classes.items() for dtype in (tf.float32, tf.bfloat16)}
  for model in models.values():
    checkpoint.load(os.path.join(BERT_DIR, "bert_model.ckpt"), model,
                    allow_missing=classifier.FRESH_HEAD)
  strategy = tf.distribute.get_strategy()
  buckets = {name: length_buckets.parse_buckets(name, args.max_seq_length)
             for name in ("none", "auto")}
  runs = {}
  for (data, dtype), model in models.items():
    per_token = ("predicted", "label_log_prob") if data == "wnut" else ()
    for name, lengths in buckets.items():
      if dtype == tf.bfloat16 and name == "none":
        continue
      runs[f"{data} ours {name}{' bf16' if dtype == tf.bfloat16 else ''}"] = (
          lambda m=model, d=data, b=lengths, s=per_token: array_predictor.predict(
              strategy, m.predict_step, sets[d], args.batch_size, b, sequence_outputs=s))
  seconds = best_of(args.repeats, runs)

  model = models["topics", tf.float32]
  optimizer = optimization.create_optimizer("adamw", model.trainable_variables, 2e-5, 1000, 100)
  train_step = steps.TrainStep(strategy, model.loss, optimizer, args.batch_size,
                               totals_fn=model.loss_totals)
  num_steps = tf.constant(args.train_steps)
  train = {}
  for name, lengths in buckets.items():
    iterator = iter(length_buckets.training_batches(
        sets["train"], lengths, args.batch_size, 0, (args.repeats + 1) * args.train_steps))
    # `train_steps` steps on device, without the host loop's checkpoints and logs.
    train[f"train ours {name}"] = lambda i=iterator: train_step.run(i, num_steps)
  seconds.update(best_of(args.repeats, train))
  return seconds


def hugging_face_side(args, sets, num_labels):
  """{name: best seconds}: prediction on each set and `train_steps` steps, Hugging Face."""
  import hf_peer  # pylint: disable=import-outside-toplevel
  if not hf_peer.available():
    return {}
  classes = {"topics": "BertForSequenceClassification", "wnut": "BertForTokenClassification"}
  models = {d: hf_peer.load_model(c, BERT_DIR, num_labels[d]) for d, c in classes.items()}
  runs = {f"{d} hugging face": (lambda d=d: hf_peer.predict(models[d], sets[d], args.batch_size))
          for d in classes}
  seconds = best_of(args.repeats, runs)
  # int(N / batch * epochs) = train_steps.
  epochs = (args.train_steps + 0.5) * args.batch_size / len(sets["train"]["input_ids"])
  seconds.update(best_of(args.repeats, {"train hugging face": lambda: hf_peer.fine_tune(
      models["topics"], sets["train"], epochs, args.batch_size, log=lambda _: None)}))
  return seconds


def side_in_subprocess(args, side):
  """Runs this script with --side=`side`; the {name: seconds} it prints last."""
  command = [sys.executable, os.path.abspath(__file__), f"--side={side}",
             f"--batch_size={args.batch_size}", f"--max_seq_length={args.max_seq_length}",
             f"--train_steps={args.train_steps}", f"--repeats={args.repeats}"]
  stdout, _, _ = common.run_timed(command, dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  return common.last_json_line(stdout)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--max_seq_length", type=int, default=128)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--train_steps", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--side", choices=("ours", "hugging_face"), help=argparse.SUPPRESS)
  args = parser.parse_args()
  sys.path.insert(0, common.REPO_DIR)
  sets, num_labels = read_sets(args.max_seq_length)
  if args.side:
    side = ours_side if args.side == "ours" else hugging_face_side
    print(json.dumps(side(args, sets, num_labels)))
    return

  print(f"CPU: {common.cpu_description()}")
  for data in ("topics", "wnut"):
    lengths = sets[data]["input_mask"].sum(1)
    print(f"{data} dev: {len(lengths)} examples, pieces per example median "
          f"{np.median(lengths):.0f}, mean {lengths.mean():.1f}, max {lengths.max()} "
          f"(padded to {args.max_seq_length})")
  seconds = side_in_subprocess(args, "ours")
  original = common.run_original("inference", config="minilm", batch_size=args.batch_size,
                                 seq_length=args.max_seq_length, max_predictions=20,
                                 warmup=2, iterations=5)["seconds_per_step"]
  seconds.update(side_in_subprocess(args, "hugging_face"))
  for data in ("topics", "wnut"):
    count = len(sets[data]["input_ids"])
    seconds[f"{data} original"] = original * -(-count // args.batch_size)
    print(f"\nprediction, {data} dev, {count} examples, batch {args.batch_size}:")
    for side in ("original", "ours none", "ours auto", "ours auto bf16", "hugging face"):
      name = f"{data} {side}"
      if name in seconds:
        print(f"  {side:14s} {count / seconds[name]:7.1f} examples/s  "
              f"{seconds[f'{data} original'] / seconds[name]:.2f}x the original")
  examples = args.train_steps * args.batch_size
  print(f"\nfine-tuning steps on topics train, batch {args.batch_size}:")
  for side in ("ours none", "ours auto", "hugging face"):
    name = f"train {side}"
    if name in seconds:
      print(f"  {side:14s} {examples / seconds[name]:7.1f} examples/s  "
            f"{seconds['train ours none'] / seconds[name]:.2f}x ours unbucketed")


if __name__ == "__main__":
  main()
