"""The raw-text SavedModel: requests of 1 and of 32 short sentences, bucketed and not.

  .venv/bin/python bench/serving.py [--repeats 20]

Exports MiniLM-L6-H384 (../shared/models/minilm-l6-h384-uncased) with a fresh
5-class head as run_classifier.py --export_dir does, twice: each request padded to
max_seq_length 128 (`--length_buckets=none`) and to its bucket (`auto`); loads both
SavedModels back (as a server would) and times their `serving_default` signature,
tokenization included, on requests of the topics dev sentences: one sentence (the
median one, 25 pieces) and 32 sentences (the 32 of the median length band). Prints
the median latency of `--repeats` requests after 3 untimed ones, in one run, and
checks that both models give the same probabilities within 1e-5.
"""

import argparse
import os
import sys
import tempfile

import numpy as np

import common

SHARED = os.path.join(os.path.dirname(common.REPO_DIR), "shared")
BERT_DIR = os.path.join(SHARED, "models", "minilm-l6-h384-uncased")
TOPICS_DIR = os.path.join(SHARED, "data", "topics")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=20)
  args = parser.parse_args()
  sys.path.insert(0, common.REPO_DIR)
  # pylint: disable=import-outside-toplevel
  import tensorflow as tf
  import tensorflow_text  # noqa: F401  pylint: disable=unused-import  (the tokenizer's ops)
  from modeling import checkpoint
  from modeling.data import classifier_data, length_buckets, tokenization
  from modeling.model.config import BertConfig
  from modeling.tasks import classifier, serving

  print(f"CPU: {common.cpu_description()}")
  processor = classifier_data.get_processor("tsv", TOPICS_DIR)
  labels = processor.get_labels()
  texts = [e.text_a for e in processor.get_examples(TOPICS_DIR, "dev")]
  tokenizer = tokenization.FullTokenizer(os.path.join(BERT_DIR, "vocab.txt"))
  pieces = np.array([len(tokenizer.tokenize(t)) + 2 for t in texts])
  by_length = np.argsort(pieces, kind="stable")
  middle = len(texts) // 2
  rows = {"1 sentence": by_length[middle:middle + 1],
          "32 sentences": by_length[middle - 16:middle + 16]}
  requests = {name: [texts[i] for i in indexes] for name, indexes in rows.items()}
  for name, indexes in rows.items():
    print(f"request of {name}: {pieces[indexes].min()}-{pieces[indexes].max()} pieces "
          "([CLS], [SEP] included)")

  config = BertConfig.from_json_file(os.path.join(BERT_DIR, "bert_config.json"))
  model = classifier.ClassifierModel(config, len(labels))
  checkpoint.load(os.path.join(BERT_DIR, "bert_model.ckpt"), model,
                  allow_missing=classifier.FRESH_HEAD)
  with tempfile.TemporaryDirectory() as root:
    signatures = {}
    for mode in ("none", "auto"):
      server = serving.ClassifierServer(model, os.path.join(BERT_DIR, "vocab.txt"), True, 128,
                                        labels, buckets=length_buckets.parse_buckets(mode, 128))
      serving.export(server, os.path.join(root, mode), pair=False)
      signatures[mode] = tf.saved_model.load(os.path.join(root, mode)).signatures[
          "serving_default"]

    print(f"\nserving_default latency, median of {args.repeats} requests:")
    for name, request in requests.items():
      text_a = tf.constant(request)
      outputs = {mode: signature(text_a=text_a)["probabilities"].numpy()
                 for mode, signature in signatures.items()}
      np.testing.assert_allclose(outputs["auto"], outputs["none"], atol=1e-5, rtol=0)
      seconds = {mode: common.time_calls(lambda s=signature: s(text_a=text_a)["label"].numpy(),
                                         3, args.repeats)
                 for mode, signature in signatures.items()}
      for mode in ("none", "auto"):
        print(f"  {name:13s} --length_buckets={mode:5s} {seconds[mode] * 1000:7.1f} ms  "
              f"{len(request) / seconds[mode]:7.1f} sentences/s  "
              f"{seconds['none'] / seconds[mode]:.2f}x padded to 128")
    print("(the bucketed and padded models' probabilities agree within 1e-5)")


if __name__ == "__main__":
  main()
