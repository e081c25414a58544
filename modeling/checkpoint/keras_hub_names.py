"""keras-hub BertBackbone's weights in model.weights.h5 and their original names.

Keras 3 saves a layer's variables as datasets `<path>/vars/<i>` in creation order
(a Dense's kernel then bias, a LayerNormalization's gamma then beta), the path
from the layer's class name with a counter for repeats (`transformer_encoder`,
`transformer_encoder_1`, ...). Attention kernels are einsum-shaped as Model
Garden's (`model_garden_names` kinds).

  backbone_rows(num_layers) -> [(h5 group, var index, original name, kind)]
  CLASSIFIER_ROWS           -> the same for BertTextClassifier's task.weights.h5
  empty_layers(num_layers)  -> [(h5 group, layer name)] of the weightless layers
  layer_name(group)         -> the layer name keras-hub gives a backbone group
"""

from modeling.checkpoint.model_garden_names import (COPY, OUTPUT_KERNEL, QKV_BIAS, QKV_KERNEL,
                                                    TRANSPOSE)


def _transformer(i):
  """Keras' path of BertBackbone's transformer layer i in model.weights.h5."""
  return "layers/transformer_encoder" + (f"_{i}" if i else "") + "/"


def backbone_rows(num_layers):
  """[(h5 group, var index, original name, kind)] of a BertBackbone."""
  rows = [("layers/reversible_embedding/", 0, "bert/embeddings/word_embeddings", COPY),
          ("layers/position_embedding/", 0, "bert/embeddings/position_embeddings", COPY),
          ("layers/embedding/", 0, "bert/embeddings/token_type_embeddings", COPY),
          ("layers/layer_normalization/", 0, "bert/embeddings/LayerNorm/gamma", COPY),
          ("layers/layer_normalization/", 1, "bert/embeddings/LayerNorm/beta", COPY)]
  for i in range(num_layers):
    group, ours = _transformer(i), f"bert/encoder/layer_{i}/"
    for part in ("query", "key", "value"):
      rows += [(f"{group}_self_attention_layer/{part}_dense/", 0,
                f"{ours}attention/self/{part}/kernel", QKV_KERNEL),
               (f"{group}_self_attention_layer/{part}_dense/", 1,
                f"{ours}attention/self/{part}/bias", QKV_BIAS)]
    rows += [(f"{group}_self_attention_layer/output_dense/", 0,
              f"{ours}attention/output/dense/kernel", OUTPUT_KERNEL),
             (f"{group}_self_attention_layer/output_dense/", 1,
              f"{ours}attention/output/dense/bias", COPY)]
    for theirs, our_name, params in (
        ("_self_attention_layer_norm", "attention/output/LayerNorm", ("gamma", "beta")),
        ("_feedforward_intermediate_dense", "intermediate/dense", ("kernel", "bias")),
        ("_feedforward_output_dense", "output/dense", ("kernel", "bias")),
        ("_feedforward_layer_norm", "output/LayerNorm", ("gamma", "beta"))):
      rows += [(f"{group}{theirs}/", index, f"{ours}{our_name}/{p}", COPY)
               for index, p in enumerate(params)]
  rows += [("layers/dense/", 0, "bert/pooler/dense/kernel", COPY),
           ("layers/dense/", 1, "bert/pooler/dense/bias", COPY)]
  return rows


# BertTextClassifier's own layer in task.weights.h5: logits = dense(dropout(pooled)).
CLASSIFIER_ROWS = [("layers/dense/", 0, "output_weights", TRANSPOSE),
                   ("layers/dense/", 1, "output_bias", COPY)]

def empty_layers(num_layers):
  """[(h5 group, layer name)] of the layers without weights, which Keras' loader visits."""
  groups = [("layers/add/", "embeddings_add"), ("layers/dropout/", "embeddings_dropout"),
            ("layers/input_layer/", "token_ids"), ("layers/input_layer_1/", "segment_ids"),
            ("layers/input_layer_2/", "padding_mask")]
  for i in range(num_layers):
    group = _transformer(i)
    suffix = f"_{i}" if i else ""
    groups += [(group, f"transformer_layer_{i}"),
               (f"{group}_feedforward_dropout/", "feedforward_dropout"),
               (f"{group}_self_attention_dropout/", "self_attention_dropout"),
               (f"{group}_self_attention_layer/", "self_attention_layer"),
               (f"{group}_self_attention_layer/_dropout_layer/", f"dropout{suffix}"),
               (f"{group}_self_attention_layer/_softmax/", f"softmax{suffix}")]
  return groups


_NAMES = {"layers/reversible_embedding/": "token_embedding",
                "layers/position_embedding/": "position_embedding",
                "layers/embedding/": "segment_embedding",
                "layers/layer_normalization/": "embeddings_layer_norm",
                "layers/dense/": "pooled_dense"}


def layer_name(group):
  """The Keras layer name of a backbone h5 group (its `vars` attribute `name`)."""
  if group in _NAMES:
    return _NAMES[group]
  part = group.rstrip("/").rsplit("/", 1)[-1]  # A transformer sublayer.
  return {"query_dense": "query", "key_dense": "key", "value_dense": "value",
          "output_dense": "attention_output"}.get(part, part.lstrip("_"))
