"""ONNX export of a fine-tuned classifier or NER tagger from token ids, for ONNX Runtime.

The graph is our model's tf.function (not a Keras model) converted by tf2onnx:
inputs int32 [B, S] `input_ids`, `input_mask`, `segment_ids` with B and S both
dynamic (length buckets carry over: pad each batch to its bucket); output float32
[B, C] `probabilities` of a classifier (float32 [B] `predictions` for regression),
float32 [B, S, C] `log_probs` of every piece for a tagger (`ner.NerModel`).
Tokenization stays in Python (`tokenization.FullTokenizer` and
`classifier_data.convert_example`, or `ner_data`'s windows). "dynamic"
quantization is ONNX Runtime's `quantize_dynamic` (int8 weights, activations
quantized on the fly).
"""

import os

import tensorflow as tf

from modeling.data import files
from modeling.tasks.ner import NerModel

QUANTIZATIONS = ("none", "dynamic")
INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
# The ONNX opset written (tf2onnx 1.17 supports up to 18).
OPSET = 17


def serving_function(model):
  """The tf.function exported: int32 [B, S] ids, mask, segments -> its outputs.

  Args:
    model: a `classifier.ClassifierModel` or `ner.NerModel`.
  """
  spec = [tf.TensorSpec([None, None], tf.int32, name=name) for name in INPUT_NAMES]

  @tf.function(input_signature=spec)
  def predict(input_ids, input_mask, segment_ids):
    if isinstance(model, NerModel):
      return {"log_probs": model.log_probs({"input_ids": input_ids, "input_mask": input_mask,
                                            "segment_ids": segment_ids})}  # [B, S, C]
    predictions = model.predictions(input_ids, input_mask, segment_ids)
    return {"predictions" if model.is_regression else "probabilities": predictions}

  return predict, spec


def convert(model):
  """The ONNX ModelProto of a `classifier.ClassifierModel` or `ner.NerModel`."""
  import tf2onnx  # pylint: disable=import-outside-toplevel  (seconds to load; only here)
  predict, spec = serving_function(model)
  proto, _ = tf2onnx.convert.from_function(predict, input_signature=spec, opset=OPSET)
  return proto


def export(model, path, quantization="none"):
  """Writes `model` as ONNX to `path`, whole or not at all.

  Args:
    model: a trained `classifier.ClassifierModel` or `ner.NerModel`.
    path: the .onnx file to write.
    quantization: "none" (fp32) or "dynamic" (ONNX Runtime's dynamic int8).
  """
  if quantization not in QUANTIZATIONS:
    raise ValueError(f"--onnx_quantization={quantization!r}: expected one of "
                     f"{', '.join(QUANTIZATIONS)}")
  proto = convert(model)
  with files.atomic_open(path, "wb") as writer:
    if quantization == "none":
      writer.write(proto.SerializeToString())
    else:
      writer.write(quantize_dynamic(proto, writer.name))
  return path


def quantize_dynamic(proto, temp_name):
  """ONNX Runtime's dynamic int8 quantization of `proto`, as bytes.

  `quantize_dynamic` reads and writes files: they go next to `temp_name` (the
  atomic writer's temporary file) and are removed.
  """
  # pylint: disable-next=import-outside-toplevel
  from onnxruntime.quantization import QuantType, quantize_dynamic as ort_quantize
  fp32_path, int8_path = temp_name + ".fp32", temp_name + ".int8"
  try:
    with open(fp32_path, "wb") as writer:
      writer.write(proto.SerializeToString())
    ort_quantize(fp32_path, int8_path, weight_type=QuantType.QInt8)
    with open(int8_path, "rb") as reader:
      return reader.read()
  finally:
    for name in (fp32_path, int8_path):
      if os.path.exists(name):
        os.remove(name)
