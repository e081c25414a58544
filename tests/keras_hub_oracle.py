"""keras-hub's own BertBackbone and BertTextClassifier as the oracle, in a separate process.

  python keras_hub_oracle.py WORK_DIR

keras-hub needs Keras 3, which cannot share a process with tf-keras. In WORK_DIR
it reads `dims.json`, `inputs.npz` and `vocab.txt`; it writes
- `theirs/`: a BertTextClassifier preset (random weights) saved by keras-hub,
  with its outputs in `theirs.npz`;
- `on_ours.npz` and `warnings.json`: the outputs of `BertBackbone.from_preset`
  and `BertTextClassifier.from_preset` of our conversion `ours/`, and every
  warning they raised or logged.
"""

import json
import logging
import os
import sys
import warnings

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402


def outputs(classifier, inputs):
  backbone = classifier.backbone
  features = {"token_ids": inputs["input_ids"], "segment_ids": inputs["segment_ids"],
              "padding_mask": inputs["input_mask"]}
  result = backbone(features, training=False)
  layers = keras.Model(backbone.inputs, [backbone.get_layer(f"transformer_layer_{i}").output
                                         for i in range(backbone.num_layers)])(features)
  return {"sequence_output": np.asarray(result["sequence_output"]),
          "pooled_output": np.asarray(result["pooled_output"]),
          **{f"layer_{i}": np.asarray(x) for i, x in enumerate(layers)},
          "classifier_logits": np.asarray(classifier(features, training=False))}


class _Records(logging.Handler):
  def __init__(self, records):
    super().__init__(logging.WARNING)
    self.records = records

  def emit(self, record):
    self.records.append(record.getMessage())


def main(work_dir):
  with open(os.path.join(work_dir, "dims.json"), encoding="utf-8") as reader:
    dims = json.load(reader)
  inputs = dict(np.load(os.path.join(work_dir, "inputs.npz")))
  tokenizer = keras_hub.models.BertTokenizer(vocabulary=os.path.join(work_dir, "vocab.txt"),
                                             lowercase=True)
  backbone = keras_hub.models.BertBackbone(
      vocabulary_size=dims["vocab_size"], num_layers=dims["num_hidden_layers"],
      num_heads=dims["num_attention_heads"], hidden_dim=dims["hidden_size"],
      intermediate_dim=dims["intermediate_size"],
      max_sequence_length=dims["max_position_embeddings"],
      num_segments=dims["type_vocab_size"])
  classifier = keras_hub.models.BertTextClassifier(
      backbone, num_classes=dims["num_labels"],
      preprocessor=keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=16))
  rng = np.random.RandomState(11)
  for variable in classifier.weights:
    variable.assign(rng.normal(0, 0.3, variable.shape).astype(np.float32))
  classifier.save_to_preset(os.path.join(work_dir, "theirs"))
  np.savez(os.path.join(work_dir, "theirs.npz"), **outputs(classifier, inputs))

  records = []
  handler = _Records(records)
  for name in ("", "absl", "keras", "keras_hub", "tensorflow"):
    logging.getLogger(name).addHandler(handler)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ours = os.path.join(work_dir, "ours")
    backbone = keras_hub.models.BertBackbone.from_preset(ours)
    classifier = keras_hub.models.BertTextClassifier.from_preset(ours)
  records += [str(w.message) for w in caught]
  result = outputs(classifier, inputs)
  result["backbone_sequence_output"] = np.asarray(backbone(
      {"token_ids": inputs["input_ids"], "segment_ids": inputs["segment_ids"],
       "padding_mask": inputs["input_mask"]})["sequence_output"])
  result["tokens"] = np.asarray(classifier.preprocessor.tokenizer(["Hello w1 w2"]))
  np.savez(os.path.join(work_dir, "on_ours.npz"), **result)
  with open(os.path.join(work_dir, "warnings.json"), "w", encoding="utf-8") as writer:
    json.dump(records, writer)


if __name__ == "__main__":
  main(sys.argv[1])
