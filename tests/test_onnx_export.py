"""The ONNX classifier export: our tf.function through tf2onnx, run in ONNX Runtime."""

import os

import numpy as np
import pytest
import tensorflow as tf

from modeling.tasks import onnx_export
from modeling.tasks.classifier import ClassifierModel
from tiny import tiny_config, tiny_inputs

NUM_LABELS = 3


@pytest.fixture(scope="module")
def model():
  tf.random.set_seed(2)
  # A wide initializer, so that the probabilities differ between inputs.
  return ClassifierModel(tiny_config(initializer_range=0.5), NUM_LABELS)


def expected(model, inputs):
  batch = {name: inputs[name] for name in onnx_export.INPUT_NAMES}
  batch["label_ids"] = np.zeros(len(inputs["input_ids"]), np.int32)
  return model.outputs(batch, training=False)[1].numpy()


def run_onnx(path, inputs):
  import onnxruntime  # pylint: disable=import-outside-toplevel
  session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
  assert [i.name for i in session.get_inputs()] == list(onnx_export.INPUT_NAMES)
  return session.run(["probabilities"], {n: inputs[n] for n in onnx_export.INPUT_NAMES})[0]


def test_onnx_runtime_matches_ours_at_any_batch_and_length(model, tmp_path):
  path = onnx_export.export(model, str(tmp_path / "model.onnx"))
  for batch_size, seq_length in ((3, 16), (1, 7), (5, 40)):
    inputs = tiny_inputs(batch_size, seq_length, seed=seq_length)
    ours = expected(model, inputs)
    assert np.ptp(ours[:, 0]) > 0.01 or batch_size == 1  # The check can fail.
    np.testing.assert_allclose(run_onnx(path, inputs), ours, atol=1e-5)
  assert not [name for name in os.listdir(tmp_path) if name != "model.onnx"]


def test_dynamic_int8_is_close(model, tmp_path):
  path = onnx_export.export(model, str(tmp_path / "int8.onnx"), "dynamic")
  inputs = tiny_inputs(4, 16)
  int8, fp32 = run_onnx(path, inputs), expected(model, inputs)
  # This model's wide weights make int8 coarse; its classes still agree.
  np.testing.assert_array_equal(int8.argmax(1), fp32.argmax(1))
  assert np.abs(int8 - fp32).mean() < 0.05
  # Only the file is left: the fp32 and int8 scratch files next to it are removed.
  assert os.listdir(tmp_path) == ["int8.onnx"]


def test_refusals(model, tmp_path):
  with pytest.raises(ValueError, match="onnx_quantization='int4'"):
    onnx_export.export(model, str(tmp_path / "model.onnx"), "int4")
  with pytest.raises(IsADirectoryError, match="is a directory"):
    onnx_export.export(model, str(tmp_path))


def test_ner_tagger_log_probs_at_any_batch_and_length(tmp_path):
  import onnxruntime  # pylint: disable=import-outside-toplevel
  from modeling.tasks.ner import NerModel  # pylint: disable=import-outside-toplevel
  tf.random.set_seed(3)
  tagger = NerModel(tiny_config(initializer_range=0.5), 5)
  path = onnx_export.export(tagger, str(tmp_path / "ner.onnx"))
  session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
  for batch_size, seq_length in ((2, 12), (4, 30)):
    inputs = {name: tiny_inputs(batch_size, seq_length, seed=batch_size)[name]
              for name in onnx_export.INPUT_NAMES}
    served = session.run(["log_probs"], inputs)[0]
    ours = tagger.log_probs(inputs).numpy()  # [B, S, C]
    assert served.shape == (batch_size, seq_length, 5)
    np.testing.assert_allclose(served, ours, atol=1e-4)  # log-probs down to -11: 1e-6 relative
