"""TF Hub's side of tests/test_tfhub.py, run in its own process (tf-keras, Model Garden,
tensorflow_hub; Keras 3 and tf-keras cannot share one).

  TF_USE_LEGACY_KERAS=1 python tests/tfhub_oracle.py WORK_DIR

WORK_DIR holds `inputs.npz` (input_word_ids, input_mask, input_type_ids,
masked_lm_positions: int32, ids valid in both vocabularies), `sentences.txt`
(pairs `a<TAB>b`, one a line), `model_garden_vocab.txt` and `ours/` (our
`to_tfhub` output). The script writes:

  model_garden/            a TF Hub encoder with `.mlm`, exported by Model Garden's own
                           `export_tfhub_lib.export_model` (as Google's TF Hub BERTs
                           are) from a random-weight BertPretrainerV2 (hidden 72, 2 layers,
                           4 heads, intermediate 150);
  model_garden.npz         its outputs on the inputs, through `hub.KerasLayer`;
  ours.npz                 `hub.KerasLayer` of ours/encoder and .mlm on the inputs, of
                           ours/preprocess then ours/encoder on the sentences (the root
                           call, and tokenize + bert_pack_inputs on pairs), and a
                           fine-tuning gradient.
"""

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_hub as hub  # noqa: E402
import tensorflow_text  # noqa: E402,F401  (registers the preprocessing's ops)
import tf_keras  # noqa: E402

SIZES = dict(hidden_size=72, num_hidden_layers=2, num_attention_heads=4, intermediate_size=150,
             hidden_act="gelu", max_position_embeddings=40, type_vocab_size=3)


def export_model_garden(path, vocab_file, seed=1):
  """A TF Hub BERT encoder, exported as Google exported theirs, with random weights."""
  from official.legacy.bert import configs  # pylint: disable=import-outside-toplevel
  from official.nlp.tools import export_tfhub_lib  # pylint: disable=import-outside-toplevel
  with open(vocab_file, encoding="utf-8") as reader:
    vocab_size = len(reader.read().splitlines())
  config = configs.BertConfig(vocab_size=vocab_size, **SIZES)
  _, pretrainer = export_tfhub_lib._create_model(  # pylint: disable=protected-access
      bert_config=config, with_mlm=True)
  rng = np.random.RandomState(seed)
  for variable in pretrainer.variables:  # Every weight random, LayerNorms and biases too.
    variable.assign(rng.normal(0.0, 0.5, variable.shape).astype(np.float32))
  checkpoint = tf.train.Checkpoint(**pretrainer.checkpoint_items).save(path + "_ckpt/ckpt")
  export_tfhub_lib.export_model(path, bert_config=config, model_checkpoint_path=checkpoint,
                                with_mlm=True, vocab_file=vocab_file, do_lower_case=True)


def encoder_outputs(handle, inputs):
  """hub.KerasLayer outputs of an encoder SavedModel (and of its .mlm), flattened."""
  ids = {k: inputs[k] for k in ("input_word_ids", "input_mask", "input_type_ids")}
  outputs = hub.KerasLayer(handle)(ids, training=False)
  mlm = hub.KerasLayer(hub.load(handle).mlm)(
      {**ids, "masked_lm_positions": inputs["masked_lm_positions"]}, training=False)
  flat = {key: outputs[key].numpy() for key in ("sequence_output", "pooled_output", "default")}
  flat.update({f"encoder_outputs_{i}": x.numpy() for i, x in enumerate(outputs["encoder_outputs"])})
  flat["mlm_logits"] = mlm["mlm_logits"].numpy()
  flat["mlm_sequence_output"] = mlm["sequence_output"].numpy()
  return flat


def text_outputs(ours, pairs):
  """The TF Hub tutorial's code on our preprocess and encoder SavedModels."""
  text_a, text_b = ([pair[i] for pair in pairs] for i in range(2))
  sentences = tf_keras.layers.Input(shape=(), dtype=tf.string)
  encoder = hub.KerasLayer(os.path.join(ours, "encoder"), trainable=True)
  packed = hub.KerasLayer(os.path.join(ours, "preprocess"))(sentences)
  single = tf_keras.Model(sentences, {**encoder(packed), **packed})(tf.constant(text_a))

  preprocessor = hub.load(os.path.join(ours, "preprocess"))
  tokenize = hub.KerasLayer(preprocessor.tokenize)
  pack = hub.KerasLayer(preprocessor.bert_pack_inputs, arguments=dict(seq_length=24))
  segments = [tf_keras.layers.Input(shape=(), dtype=tf.string) for _ in range(2)]
  pair_model = tf_keras.Model(segments, pack([tokenize(s) for s in segments]))
  pair = pair_model([tf.constant(text_a), tf.constant(text_b)])

  # Fine-tuning through hub.KerasLayer(trainable=True): dropout on, every weight trained.
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(encoder(pair, training=True)["pooled_output"] ** 2)
  gradients = tape.gradient(loss, encoder.trainable_weights)
  flat = {f"single_{k}": v.numpy() for k, v in single.items() if k != "encoder_outputs"}
  flat.update({f"pair_{k}": v.numpy() for k, v in pair.items()})
  flat["trainable_weights"] = np.array(len(encoder.trainable_weights))
  flat["gradients_nonzero"] = np.array(sum(
      int(g is not None and np.any(tf.convert_to_tensor(g).numpy() != 0)) for g in gradients))
  special = preprocessor.tokenize.get_special_tokens_dict()
  flat.update({f"special_{k}": v.numpy() for k, v in special.items()})
  return flat


def main(work_dir):
  inputs = dict(np.load(os.path.join(work_dir, "inputs.npz")))
  small_vocab = os.path.join(work_dir, "model_garden_vocab.txt")
  model_garden = os.path.join(work_dir, "model_garden")
  export_model_garden(model_garden, small_vocab)
  np.savez(os.path.join(work_dir, "model_garden.npz"), **encoder_outputs(model_garden, inputs))
  ours = os.path.join(work_dir, "ours")
  with open(os.path.join(work_dir, "sentences.txt"), encoding="utf-8") as reader:
    pairs = [line.split("\t") for line in reader.read().splitlines()]
  np.savez(os.path.join(work_dir, "ours.npz"),
           **encoder_outputs(os.path.join(ours, "encoder"), inputs),
           **text_outputs(ours, pairs))


if __name__ == "__main__":
  main(sys.argv[1])
