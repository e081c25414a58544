"""Model Garden's own BertEncoder as the oracle, run in a separate process.

  python model_garden_oracle.py WORK_DIR

tf-models-official needs Keras 2 (TF_USE_LEGACY_KERAS=1), which cannot share a
process with the tests' TensorFlow. In WORK_DIR it reads `dims.json` (sizes) and
`inputs.npz`; it writes
- `theirs_pretrainer/ckpt-1` (a BertPretrainerV2 with its masked-LM head and a
  "next_sentence" ClassificationHead whose pooler is the encoder's, random
  weights, saved as `tf.train.Checkpoint(model=..., **checkpoint_items)`) and `theirs_classifier/ckpt-1` (a BertClassifier
  after one Adam step, saved with its optimizer as Model Garden's trainer does),
  with their outputs in `theirs.npz`;
- `on_ours.npz`: the outputs of the same classes restored from our conversions
  `ours/bert_model.ckpt` (encoder, masked-LM and classifier heads) and
  `ours_pretraining/bert_model.ckpt` (encoder, masked-LM and next-sentence heads).
"""

import json
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
from official.modeling import tf_utils  # noqa: E402
from official.nlp.modeling import layers, models, networks  # noqa: E402


def build(dims):
  encoder = networks.BertEncoder(
      vocab_size=dims["vocab_size"], hidden_size=dims["hidden_size"],
      num_layers=dims["num_hidden_layers"], num_attention_heads=dims["num_attention_heads"],
      inner_dim=dims["intermediate_size"], max_sequence_length=dims["max_position_embeddings"],
      type_vocab_size=dims["type_vocab_size"], inner_activation=tf_utils.get_activation("gelu"),
      dict_outputs=True)
  pretrainer = models.BertPretrainerV2(
      encoder, mlm_activation=tf_utils.get_activation("gelu"),
      classification_heads=[layers.ClassificationHead(
          inner_dim=dims["hidden_size"], num_classes=2, name="next_sentence")])
  classifier = models.BertClassifier(encoder, num_classes=dims["num_labels"])
  return encoder, pretrainer, classifier


def outputs(encoder, pretrainer, classifier, inputs):
  features = {"input_word_ids": inputs["input_ids"], "input_mask": inputs["input_mask"],
              "input_type_ids": inputs["segment_ids"]}
  result = encoder(features, training=False)
  heads = pretrainer(dict(features, masked_lm_positions=inputs["masked_lm_positions"]),
                     training=False)
  return {"sequence_output": result["sequence_output"].numpy(),
          "pooled_output": result["pooled_output"].numpy(),
          **{f"layer_{i}": x.numpy() for i, x in enumerate(result["encoder_outputs"])},
          "mlm_logits": heads["mlm_logits"].numpy(),
          "nsp_logits": heads["next_sentence"].numpy(),
          "classifier_logits": classifier(features, training=False).numpy()}


def main(work_dir):
  with open(os.path.join(work_dir, "dims.json"), encoding="utf-8") as reader:
    dims = json.load(reader)
  inputs = dict(np.load(os.path.join(work_dir, "inputs.npz")))
  encoder, pretrainer, classifier = build(dims)
  outputs(encoder, pretrainer, classifier, inputs)  # Builds every variable.
  rng = np.random.RandomState(7)
  for variable in pretrainer.trainable_variables + classifier.trainable_variables:
    variable.assign(rng.normal(0, 0.3, variable.shape).astype(np.float32))
  pooler = pretrainer.checkpoint_items["next_sentence.pooler_dense"]
  pooler.set_weights(encoder.pooler_layer.get_weights())  # The original has one pooler.
  tf.train.Checkpoint(model=pretrainer, **pretrainer.checkpoint_items).save(
      os.path.join(work_dir, "theirs_pretrainer", "ckpt"))
  theirs = outputs(encoder, pretrainer, classifier, inputs)
  optimizer = tf_keras.optimizers.Adam(1e-3)
  features = {"input_word_ids": inputs["input_ids"], "input_mask": inputs["input_mask"],
              "input_type_ids": inputs["segment_ids"]}
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(classifier(features, training=True) ** 2)
  variables = classifier.trainable_variables
  optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
  tf.train.Checkpoint(model=classifier, optimizer=optimizer).save(
      os.path.join(work_dir, "theirs_classifier", "ckpt"))
  # The step moved the shared encoder too: the classifier's logits are after it.
  theirs["classifier_logits"] = outputs(encoder, pretrainer, classifier, inputs)[
      "classifier_logits"]
  np.savez(os.path.join(work_dir, "theirs.npz"), **theirs)

  encoder, pretrainer, classifier = build(dims)
  outputs(encoder, pretrainer, classifier, inputs)
  ours = os.path.join(work_dir, "ours", "bert_model.ckpt")
  tf.train.Checkpoint(model=classifier).read(ours).assert_existing_objects_matched()
  on_ours = outputs(encoder, pretrainer, classifier, inputs)
  tf.train.Checkpoint(model=pretrainer, **pretrainer.checkpoint_items).read(os.path.join(
      work_dir, "ours_pretraining", "bert_model.ckpt")).assert_existing_objects_matched()
  pretraining = outputs(encoder, pretrainer, classifier, inputs)
  on_ours.update(mlm_logits=pretraining["mlm_logits"], nsp_logits=pretraining["nsp_logits"])
  np.savez(os.path.join(work_dir, "on_ours.npz"), **on_ours)


if __name__ == "__main__":
  main(sys.argv[1])
