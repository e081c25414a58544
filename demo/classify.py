"""Classifies raw sentences with the SavedModel that run_classifier.py exported.

  python demo/classify.py EXPORT_DIR "sentence one" "sentence two" ...

Runs in a fresh process with nothing of this project imported: only TensorFlow
and tensorflow-text (whose ops the in-graph tokenizer uses).
"""

import sys

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops)


def main(export_dir, sentences):
  model = tf.saved_model.load(export_dir)
  outputs = model.signatures["serving_default"](text_a=tf.constant(sentences))
  for sentence, label, probabilities in zip(sentences, outputs["label"].numpy(),
                                            outputs["probabilities"].numpy()):
    print(f"{label.decode():>10s} ({probabilities.max():.2f})  {sentence}")


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2:])
