"""Runs Google's original extract_features.py unchanged; the test and benchmark oracle.

  python tests/original_extract_features.py SPEC.json

SPEC.json: {"flags": {the original's flags}, "raw": "raw.npz" or null}. The original's
`main` reads the input, converts it, builds its model_fn and writes its JSON lines;
TF 2 has no `tf.estimator`, so a stand-in TPUEstimator runs the model_fn in a TF1
session batch by batch (its init_from_checkpoint sets the initial values) and
records each raw layer output, `layer_output_{j}_{unique_id}` [S, H], in raw.npz
(when "raw" is given).
Needs tests/ on sys.path (for original_bert); run it in its own process.
"""

import json
import sys
import types

import numpy as np

import original_bert

tf = original_bert.tf


class TPUEstimatorSpec:
  """Keeps the predictions of the original model_fn."""

  def __init__(self, mode, predictions, scaffold_fn=None):
    del mode, scaffold_fn
    self.predictions = predictions


class TPUEstimator:
  """`predict` as the real one on CPU; `raw` collects every example's outputs."""

  raw = None  # {name: array} to record into, or None

  def __init__(self, use_tpu, model_fn, config, predict_batch_size):
    del use_tpu, config
    self.model_fn, self.batch_size = model_fn, predict_batch_size

  def predict(self, input_fn, yield_single_examples=True):
    assert yield_single_examples
    with tf.Graph().as_default():
      params = {"batch_size": self.batch_size}
      features = tf.data.make_one_shot_iterator(input_fn(params)).get_next()
      predictions = self.model_fn(features, None, "infer", params).predictions
      with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())  # init_from_checkpoint's values
        while True:
          try:
            batch = sess.run(predictions)
          except tf.errors.OutOfRangeError:
            return
          for i in range(len(batch["unique_id"])):
            row = {key: value[i] for key, value in batch.items()}
            if TPUEstimator.raw is not None:
              TPUEstimator.raw.update({f"{key}_{row['unique_id']}": value
                                       for key, value in row.items()})
            yield row


def main(spec_file):
  with open(spec_file, encoding="utf-8") as reader:
    spec = json.load(reader)
  tf.estimator = types.SimpleNamespace(
      ModeKeys=types.SimpleNamespace(PREDICT="infer"),
      tpu=types.SimpleNamespace(
          RunConfig=lambda **kwargs: None, TPUConfig=lambda **kwargs: None,
          InputPipelineConfig=types.SimpleNamespace(PER_HOST_V2=2),
          TPUEstimator=TPUEstimator, TPUEstimatorSpec=TPUEstimatorSpec))
  if spec.get("raw"):
    TPUEstimator.raw = {}
  from bert import extract_features  # pylint: disable=import-outside-toplevel
  for name, value in spec["flags"].items():
    setattr(extract_features.FLAGS, name, value)
  extract_features.main(None)
  if spec.get("raw"):
    np.savez(spec["raw"], **TPUEstimator.raw)


if __name__ == "__main__":
  main(sys.argv[1])
