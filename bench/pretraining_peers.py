"""The pretraining step against every peer that installs here, fp32 and bf16, in one run.

  .venv/bin/python bench/pretraining_peers.py [--peers_python PYTHON] [--config minilm]

One training step of masked LM + next sentence prediction with AdamW, weight decay
0.01, clipping at 1.0, dropout 0.1 (MiniLM-L6-H384 dimensions by default, batch 32,
seq 128, 20 masked positions, random weights and a fixed random batch: the cost does
not depend on the values), each peer in a process of its own, one after the other:
  original       the original code (TF1 graph, fp32 only: it has no bf16 path);
  ours           run_pretraining.py's model and train step (bench/pretraining_step.py);
  hugging face   transformers' BertForPreTraining on PyTorch (bf16: torch.autocast);
  keras-hub      BertBackbone + MaskedLMHead + a next-sentence Dense on Keras 3 with
                 the TensorFlow backend (bf16: the mixed_bfloat16 policy), AdamW;
  model garden   tf-models-official's BertEncoder + BertPretrainerV2 (MaskedLM and a
                 next_sentence ClassificationHead) on tf_keras (bf16: mixed_bfloat16),
                 its own AdamWeightDecay (official.nlp.optimization).
keras-hub and Model Garden pin other TensorFlow versions than ours, so they run under
`--peers_python`, a separate environment:
  python3 -m venv /work/peers-venv
  /work/peers-venv/bin/pip install tf-models-official==2.20.0 keras-hub==0.32.0
A peer that does not import is reported as not measured. Prints examples/s of each,
and each one's ratio to ours in the same dtype.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

import common

PEERS = ("original", "ours", "hugging face", "keras-hub", "model garden")


def build_ours(config, batch, dtype):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  import pretraining_step  # pylint: disable=import-outside-toplevel
  settings = {"batch_size": batch["input_ids"].shape[0], "seq_length": batch["input_ids"].shape[1],
              "max_predictions": batch["masked_lm_ids"].shape[1]}
  _, step = pretraining_step.train_step(config, tf.as_dtype(dtype), settings)
  return lambda: step().numpy()


def build_hugging_face(config, batch, dtype):
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel
  torch.manual_seed(0)
  torch.set_num_threads(os.cpu_count())
  model = transformers.BertForPreTraining(transformers.BertConfig(
      vocab_size=config["vocab_size"], hidden_size=config["hidden_size"],
      num_hidden_layers=config["num_hidden_layers"],
      num_attention_heads=config["num_attention_heads"],
      intermediate_size=config["intermediate_size"], hidden_act="gelu",
      max_position_embeddings=config["max_position_embeddings"]))
  model.train()
  labels = np.full(batch["input_ids"].shape, -100)
  np.put_along_axis(labels, batch["masked_lm_positions"], batch["masked_lm_ids"], axis=1)
  inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["input_mask"],
            "token_type_ids": batch["segment_ids"], "labels": labels,
            "next_sentence_label": batch["next_sentence_labels"][:, 0]}
  inputs = {k: torch.from_numpy(np.asarray(v)).long() for k, v in inputs.items()}
  optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01, eps=1e-6)

  def step():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
      loss = model(**inputs).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()

  return step


def build_keras_hub(config, batch, dtype):
  os.environ["KERAS_BACKEND"] = "tensorflow"
  # pylint: disable=import-outside-toplevel
  import keras
  import keras_hub
  import tensorflow as tf
  if dtype == "bfloat16":
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
  backbone = keras_hub.models.BertBackbone(
      vocabulary_size=config["vocab_size"], num_layers=config["num_hidden_layers"],
      num_heads=config["num_attention_heads"], hidden_dim=config["hidden_size"],
      intermediate_dim=config["intermediate_size"], dropout=0.1,
      max_sequence_length=config["max_position_embeddings"], num_segments=2)
  mlm_head = keras_hub.layers.MaskedLMHead(token_embedding=backbone.token_embedding,
                                           intermediate_activation="gelu")
  nsp_head = keras.layers.Dense(2)
  optimizer = keras.optimizers.AdamW(learning_rate=5e-5, weight_decay=0.01, epsilon=1e-6,
                                     global_clipnorm=1.0)
  losses = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  tensors = {k: tf.constant(v) for k, v in batch.items()}
  inputs = {"token_ids": tensors["input_ids"], "segment_ids": tensors["segment_ids"],
            "padding_mask": tensors["input_mask"]}
  variables = []

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      outputs = backbone(inputs, training=True)
      mlm_logits = mlm_head(outputs["sequence_output"],
                            mask_positions=tensors["masked_lm_positions"], training=True)
      nsp_logits = nsp_head(outputs["pooled_output"], training=True)
      loss = (losses(tensors["masked_lm_ids"], tf.cast(mlm_logits, tf.float32),
                     sample_weight=tensors["masked_lm_weights"])
              + losses(tensors["next_sentence_labels"], tf.cast(nsp_logits, tf.float32)))
    gradients = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(gradients, variables))
    return loss

  backbone(inputs)  # Builds the layers, so their variables exist before tracing.
  nsp_head(backbone(inputs)["pooled_output"])
  mlm_head(backbone(inputs)["sequence_output"], mask_positions=tensors["masked_lm_positions"])
  variables += (backbone.trainable_variables + mlm_head.trainable_variables
                + nsp_head.trainable_variables)
  optimizer.build(variables)
  return lambda: step().numpy()


def build_model_garden(config, batch, dtype):
  os.environ["TF_USE_LEGACY_KERAS"] = "1"
  # pylint: disable=import-outside-toplevel
  import tensorflow as tf
  import tf_keras
  from official.nlp import optimization
  from official.nlp.modeling import layers, models, networks
  if dtype == "bfloat16":
    tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  encoder = networks.BertEncoder(
      vocab_size=config["vocab_size"], hidden_size=config["hidden_size"],
      num_layers=config["num_hidden_layers"], num_attention_heads=config["num_attention_heads"],
      max_sequence_length=config["max_position_embeddings"], type_vocab_size=2,
      inner_dim=config["intermediate_size"], dict_outputs=True)
  pretrainer = models.BertPretrainerV2(encoder, classification_heads=[
      layers.ClassificationHead(inner_dim=config["hidden_size"], num_classes=2,
                                name="next_sentence")])
  optimizer = optimization.create_optimizer(5e-5, 100000, 10000, optimizer_type="adamw")
  tensors = {k: tf.constant(v) for k, v in batch.items()}
  inputs = {"input_word_ids": tensors["input_ids"], "input_mask": tensors["input_mask"],
            "input_type_ids": tensors["segment_ids"],
            "masked_lm_positions": tensors["masked_lm_positions"]}
  losses = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      outputs = pretrainer(inputs, training=True)
      loss = (losses(tensors["masked_lm_ids"], tf.cast(outputs["mlm_logits"], tf.float32),
                     sample_weight=tensors["masked_lm_weights"])
              + losses(tensors["next_sentence_labels"],
                       tf.cast(outputs["next_sentence"], tf.float32)))
    variables = pretrainer.trainable_variables
    gradients, _ = tf.clip_by_global_norm(tape.gradient(loss, variables), 1.0)
    optimizer.apply_gradients(zip(gradients, variables))
    return loss

  return lambda: step().numpy()


BUILDERS = {"ours": build_ours, "hugging face": build_hugging_face,
            "keras-hub": build_keras_hub, "model garden": build_model_garden}


def peer_side(args):
  """In its own process: builds one peer, times its step; prints one JSON line."""
  config = common.CONFIGS[args.config]
  batch = common.pretraining_batch(args.batch_size, args.seq_length, args.max_predictions,
                                   config["vocab_size"])
  step = BUILDERS[args.peer](config, batch, args.dtype)
  print(json.dumps({"seconds_per_step": common.time_calls(step, args.warmup, args.iterations)}))


def measure(args, peer, dtype):
  """Seconds per step of `peer` in `dtype`, or the reason it was not measured."""
  if peer == "original":
    return common.run_original("pretraining", config=args.config, batch_size=args.batch_size,
                               seq_length=args.seq_length, max_predictions=args.max_predictions,
                               warmup=args.warmup, iterations=args.iterations)["seconds_per_step"]
  python = args.peers_python if peer in ("keras-hub", "model garden") else sys.executable
  command = [python, os.path.abspath(__file__), f"--peer={peer}", f"--dtype={dtype}",
             f"--config={args.config}", f"--batch_size={args.batch_size}",
             f"--seq_length={args.seq_length}", f"--max_predictions={args.max_predictions}",
             f"--warmup={args.warmup}", f"--iterations={args.iterations}"]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
             PYTHONPATH=os.pathsep.join([common.REPO_DIR, os.path.dirname(__file__)]))
  result = subprocess.run(command, capture_output=True, text=True, env=env)
  if result.returncode != 0:
    last = (result.stderr.strip().splitlines() or ["no output"])[-1]
    return f"not measured: {last[:200]}"
  return json.loads(result.stdout.strip().splitlines()[-1])["seconds_per_step"]


def main():
  parser = common.argument_parser(__doc__)
  parser.add_argument("--max_predictions", type=int, default=20)
  parser.add_argument("--peers_python", default=sys.executable,
                      help="the interpreter of the environment with keras-hub and Model Garden")
  parser.add_argument("--peer", choices=sorted(BUILDERS), help=argparse.SUPPRESS)
  parser.add_argument("--dtype", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.peer:
    peer_side(args)
    return
  print(f"CPU: {common.cpu_description()}", flush=True)
  print(f"pretraining step (MLM + NSP, AdamW), {args.config}, batch {args.batch_size}, "
        f"seq {args.seq_length}, {args.max_predictions} predictions", flush=True)
  dtypes = args.dtypes.split(",")
  seconds = {}
  for dtype in dtypes:
    for peer in PEERS:
      if peer == "original" and dtype != "float32":
        continue
      seconds[peer, dtype] = measure(args, peer, dtype)
      print(f"  measured {peer} {dtype}: {seconds[peer, dtype]}", flush=True)
  print()
  for dtype in dtypes:
    ours = seconds["ours", dtype]
    for peer in PEERS:
      if (peer, dtype) not in seconds:
        continue
      value = seconds[peer, dtype]
      if isinstance(value, str):
        print(f"  {dtype:9s} {peer:13s} {value}")
      else:
        print(f"  {dtype:9s} {peer:13s} {args.batch_size / value:6.1f} examples/s  "
              f"ours is {value / ours:.2f}x faster")


if __name__ == "__main__":
  main()
