"""Model Garden TF2 `BertEncoder` object paths and their original names.

Model Garden (`tensorflow/models`, `official.nlp.modeling`) saves object-based
checkpoints: `tf.train.Checkpoint(encoder=BertEncoder(...))` writes each variable
under its path in the object graph plus `/.ATTRIBUTES/VARIABLE_VALUE`. The
encoder's children are numbered Keras layers: 0 word, 1 position, 2 token-type
embeddings, 3 their LayerNorm, 4 .. 4+L-1 the transformer layers, 4+L the pooler.
Attention kernels are einsum-shaped: q/k/v [H, N, D] with biases [N, D], the
attention output [N, D, H] (H hidden, N heads, D = H / N); the original's [H, H]
and [H] hold the same values in the same (row-major) order, so converting is a
reshape.

  encoder_rows(num_layers) -> [(path under the encoder, original name, kind)]
  head_rows()               -> the same for the heads, paths from the root
  to_original(value, kind) / from_original(value, kind, heads) -> reshaped

keras-hub's BertBackbone and TF Hub's Model Garden SavedModels shape their attention
the same way (`keras_hub` and `tfhub_import` use the kinds and the reshapes).
"""

import numpy as np

# Kinds: how a tensor's shape changes from Model Garden to the original layout.
COPY, QKV_KERNEL, QKV_BIAS, OUTPUT_KERNEL, TRANSPOSE = (
    "copy", "qkv_kernel", "qkv_bias", "output_kernel", "transpose")
# The rank of each reshaped kind in the einsum layout (the original's is one less).
EINSUM_RANK = {QKV_KERNEL: 3, QKV_BIAS: 2, OUTPUT_KERNEL: 3}

# Model Garden before v2.4 kept the attention output projection beside the
# attention layer rather than inside it; both names are read, the current one written.
OLD_ATTENTION_OUTPUT = "_attention_output_dense"

SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
ENCODER_ROOT, MLM_ROOT, CLASSIFIER_ROOT = "encoder/", "masked_lm/", "model/"
NSP_ROOT = CLASSIFIER_ROOT + "classification_heads/0/"
# BertPretrainerV2's checkpoint item "next_sentence.pooler_dense" (a "." escaped as "..").
NSP_POOLER = "next_sentence..pooler_dense/"


def layer(index):
  return f"layer_with_weights-{index}/"


def encoder_rows(num_layers):
  """[(path under the encoder root, original name, kind)] of a BertEncoder."""
  rows = [(layer(0) + "embeddings", "bert/embeddings/word_embeddings", COPY),
          (layer(1) + "embeddings", "bert/embeddings/position_embeddings", COPY),
          (layer(2) + "embeddings", "bert/embeddings/token_type_embeddings", COPY),
          (layer(3) + "gamma", "bert/embeddings/LayerNorm/gamma", COPY),
          (layer(3) + "beta", "bert/embeddings/LayerNorm/beta", COPY)]
  for i in range(num_layers):
    mg, ours = layer(4 + i), f"bert/encoder/layer_{i}/"
    for part in ("query", "key", "value"):
      rows += [(f"{mg}_attention_layer/_{part}_dense/kernel",
                f"{ours}attention/self/{part}/kernel", QKV_KERNEL),
               (f"{mg}_attention_layer/_{part}_dense/bias",
                f"{ours}attention/self/{part}/bias", QKV_BIAS)]
    rows += [(f"{mg}_attention_layer/_output_dense/kernel",
              f"{ours}attention/output/dense/kernel", OUTPUT_KERNEL),
             (f"{mg}_attention_layer/_output_dense/bias",
              f"{ours}attention/output/dense/bias", COPY)]
    for mg_name, our_name in (("_attention_layer_norm", "attention/output/LayerNorm"),
                              ("_intermediate_dense", "intermediate/dense"),
                              ("_output_dense", "output/dense"),
                              ("_output_layer_norm", "output/LayerNorm")):
      params = ("gamma", "beta") if mg_name.endswith("norm") else ("kernel", "bias")
      rows += [(f"{mg}{mg_name}/{p}", f"{ours}{our_name}/{p}", COPY) for p in params]
  rows += [(layer(4 + num_layers) + "kernel", "bert/pooler/dense/kernel", COPY),
           (layer(4 + num_layers) + "bias", "bert/pooler/dense/bias", COPY)]
  return rows


def old_name(path):
  """The pre-v2.4 path of an attention output tensor, or None for other paths."""
  if "/_attention_layer/_output_dense/" not in path:
    return None
  return path.replace("/_attention_layer/_output_dense/", f"/{OLD_ATTENTION_OUTPUT}/")


def head_rows():
  """[(path from the root, original name, kind)] of the heads that map to ours.

  The masked-LM head of BertPretrainerV2 (`tf.train.Checkpoint(masked_lm=...)`,
  its embedding table tied to the word embeddings); its next-sentence head, a
  ClassificationHead named "next_sentence" (`model/classification_heads/0/`)
  whose own pooler (`NSP_POOLER`) must be the encoder's, since the original's
  reads that; and the output projection of BertClassifier
  (`tf.train.Checkpoint(model=BertClassifier(...))`, whose encoder is
  `model/layer_with_weights-0/`), which reads the encoder's pooler as the
  original classifier does.
  """
  return [(MLM_ROOT + "dense/kernel", "cls/predictions/transform/dense/kernel", COPY),
          (MLM_ROOT + "dense/bias", "cls/predictions/transform/dense/bias", COPY),
          (MLM_ROOT + "layer_norm/gamma", "cls/predictions/transform/LayerNorm/gamma", COPY),
          (MLM_ROOT + "layer_norm/beta", "cls/predictions/transform/LayerNorm/beta", COPY),
          (MLM_ROOT + "output_bias.Sbias", "cls/predictions/output_bias", COPY),
          (NSP_ROOT + "out_proj/kernel", "cls/seq_relationship/output_weights", TRANSPOSE),
          (NSP_ROOT + "out_proj/bias", "cls/seq_relationship/output_bias", COPY),
          (CLASSIFIER_ROOT + layer(1) + "out_proj/kernel", "output_weights", TRANSPOSE),
          (CLASSIFIER_ROOT + layer(1) + "out_proj/bias", "output_bias", COPY)]


# The word embeddings' second place: BertPretrainerV2's MaskedLM holds them as its table.
MLM_TABLE = MLM_ROOT + "embedding_table"
CLASSIFIER_ENCODER = CLASSIFIER_ROOT + layer(0)


def to_original(value, kind):
  """A tensor of `kind` in the original layout's shape: its head axes N, D merged
  (from its own shape, so a tensor whose N * D is not H keeps it, for the callers'
  shape checks to name)."""
  if kind == QKV_KERNEL:
    return value.reshape(value.shape[0], -1)  # [H, N, D] -> [H, H]
  if kind == OUTPUT_KERNEL:
    return value.reshape(-1, value.shape[-1])  # [N, D, H] -> [H, H]
  if kind == QKV_BIAS:
    return value.reshape(-1)  # [N, D] -> [H]
  if kind == TRANSPOSE:
    return np.ascontiguousarray(value.T)  # [H, C] -> [C, H]
  return value


def from_original(value, kind, heads):
  """An original tensor of `kind` in the einsum layout's shape (heads: N)."""
  hidden = value.shape[-1]
  if kind == QKV_KERNEL:
    return value.reshape(hidden, heads, hidden // heads)  # [H, H] -> [H, N, D]
  if kind == OUTPUT_KERNEL:
    return value.reshape(heads, hidden // heads, hidden)  # [H, H] -> [N, D, H]
  if kind == QKV_BIAS:
    return value.reshape(heads, hidden // heads)  # [H] -> [N, D]
  if kind == TRANSPOSE:
    return np.ascontiguousarray(value.T)  # [C, H] -> [H, C]
  return value
