"""AdamWeightDecay and the schedule against the original optimization.py."""

import numpy as np
import pytest
import tensorflow as tf

from modeling import optimization
from tests import oracle

# Variables of a toy model: names chosen to exercise the weight decay exclusions.
SHAPES = {
    "dense/kernel": (4, 3),
    "dense/bias": (3,),
    "out/LayerNorm/gamma": (3,),
    "emb/layer_norm_scale": (3,),
    "emb/word_embeddings": (5, 4),
}


def _toy_loss(values, inputs, ids, scale):
  """A non-linear loss of the toy variables; `values` maps names to tensors."""
  x = tf.gather(values["emb/word_embeddings"], ids) + inputs  # [8, 4]
  h = tf.tanh(tf.matmul(x, values["dense/kernel"]) + values["dense/bias"])  # [8, 3]
  y = h * values["out/LayerNorm/gamma"] + values["emb/layer_norm_scale"]
  return scale * tf.reduce_sum(tf.square(y - 0.3))


ORACLE_SCRIPT = """
import sys
import numpy as np
import original_bert
tf = original_bert.tf
data = dict(np.load(sys.argv[1]))
lr, total, warmup, steps, scale = (float(a) for a in sys.argv[3:8])
shapes = {name[5:]: data[name].shape for name in data if name.startswith("init/")}
values = {name: tf.get_variable(name, initializer=tf.constant(data["init/" + name]))
          for name in shapes}
x = tf.gather(values["emb/word_embeddings"], data["ids"]) + data["inputs"]
h = tf.tanh(tf.matmul(x, values["dense/kernel"]) + values["dense/bias"])
y = h * values["out/LayerNorm/gamma"] + values["emb/layer_norm_scale"]
loss = scale * tf.reduce_sum(tf.square(y - 0.3))
train_op = original_bert.optimization.create_optimizer(loss, lr, int(total), int(warmup), False)
# The original groups the update with `global_step += 1` unordered, a race
# (google-research/bert#1050); run them in the order its comments intend.
increment = [op for op in train_op.control_inputs if op.type == "Assign"]
update = [op for op in train_op.control_inputs if op.type != "Assign"]
assert len(increment) == 1 and len(update) == 1, train_op.control_inputs
with tf.Session() as sess:
  sess.run(tf.global_variables_initializer())
  for _ in range(int(steps)):
    sess.run(update)
    sess.run(increment)
  out = {v.op.name: sess.run(v) for v in tf.global_variables()}
np.savez(sys.argv[2], **out)
"""


@pytest.mark.parametrize("scale,warmup", [(0.05, 0), (5.0, 2)], ids=["unclipped", "clipped"])
def test_matches_original_create_optimizer(tmp_path, scale, warmup):
  rng = np.random.default_rng(0)
  init = {name: rng.normal(size=shape).astype(np.float32) for name, shape in SHAPES.items()}
  inputs = rng.normal(size=(8, 4)).astype(np.float32)
  ids = rng.integers(0, 5, size=8).astype(np.int32)
  np.savez(tmp_path / "in.npz", inputs=inputs, ids=ids,
           **{f"init/{k}": v for k, v in init.items()})
  lr, total, steps = 0.1, 10, 6
  oracle.run(ORACLE_SCRIPT, tmp_path / "in.npz", tmp_path / "out.npz", lr, total, warmup,
             steps, scale)
  expected = dict(np.load(tmp_path / "out.npz"))

  variables = {name: tf.Variable(value, name=name) for name, value in init.items()}
  trained = list(variables.values())
  opt = optimization.create_optimizer("adamw", trained, lr, total, warmup)
  norms = []
  for _ in range(steps):
    with tf.GradientTape() as tape:
      loss = _toy_loss(variables, inputs, ids, scale)
    _, norm = opt.apply_gradients(tape.gradient(loss, trained))
    norms.append(float(norm))
  if scale > 1:
    assert max(norms) > 1.0, "the clipped case must actually clip"
  else:
    assert max(norms) < 1.0

  ours = {optimization.variable_name(v): v.numpy() for v in trained + list(opt.variables)}
  assert set(ours) == set(expected)
  assert int(ours["global_step"]) == int(expected["global_step"]) == steps
  for name, value in expected.items():
    np.testing.assert_allclose(ours[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


SCHEDULE_SCRIPT = """
import sys
import numpy as np
import original_bert
tf = original_bert.tf
optimization = original_bert.optimization
lr, total, warmup = float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
captured = {}


original_init = optimization.AdamWeightDecayOptimizer.__init__


def capturing_init(self, learning_rate, **kwargs):
  captured["lr"] = learning_rate
  original_init(self, learning_rate, **kwargs)


optimization.AdamWeightDecayOptimizer.__init__ = capturing_init
w = tf.get_variable("w", initializer=tf.constant(1.0))
optimization.create_optimizer(w * 2.0, lr, total, warmup, False)
step = tf.train.get_global_step()
values = []
with tf.Session() as sess:
  sess.run(tf.global_variables_initializer())
  for s in range(total + 3):
    sess.run(step.assign(s))
    values.append(sess.run(captured["lr"]))
np.save(sys.argv[1], np.array(values, np.float32))
"""


@pytest.mark.parametrize("warmup", [0, 4])
def test_schedule_matches_original(tmp_path, warmup):
  total = 10
  oracle.run(SCHEDULE_SCRIPT, tmp_path / "lr.npy", 1e-3, total, warmup)
  expected = np.load(tmp_path / "lr.npy")
  schedule = optimization.WarmupLinearDecay(1e-3, total, warmup)
  got = [float(schedule(tf.constant(s, tf.int64))) for s in range(total + 3)]
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)


def test_schedule_warmup_then_linear_decay():
  schedule = optimization.WarmupLinearDecay(1e-3, num_train_steps=10, num_warmup_steps=4)
  got = [float(schedule(tf.constant(s, tf.int64))) for s in range(13)]
  want = [1e-3 * s / 4 for s in range(4)] + [1e-3 * (1 - min(s, 10) / 10) for s in range(4, 13)]
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)
  no_warmup = optimization.WarmupLinearDecay(1e-3, num_train_steps=10, num_warmup_steps=0)
  assert float(no_warmup(tf.constant(0, tf.int64))) == pytest.approx(1e-3)


def test_first_step_has_no_bias_correction():
  variable = tf.Variable([1.0, -2.0], name="w")
  opt = optimization.AdamWeightDecay([variable], lambda step: tf.constant(0.01),
                                     weight_decay_rate=0.0)
  opt.apply_gradients([tf.constant([0.3, -0.4])])  # norm 0.5: not clipped
  # m = 0.1 g, v = 0.001 g^2: update = 0.1 / sqrt(0.001) = 3.162 per unit sign (Adam with
  # bias correction would give 1.0).
  step = 0.1 / (np.sqrt(0.001) + 1e-6 / np.array([0.3, 0.4]))
  np.testing.assert_allclose(variable.numpy(), [1.0 - 0.01 * step[0], -2.0 + 0.01 * step[1]],
                             rtol=1e-5)


def test_weight_decay_exclusions_and_slot_names():
  names = ["a/dense/kernel", "a/dense/bias", "a/LayerNorm/gamma", "b/layer_norm/beta",
           "cls/predictions/output_bias", "cls/seq_relationship/output_weights"]
  variables = [tf.Variable(tf.ones([2]), name=n) for n in names]
  opt = optimization.AdamWeightDecay(variables, lambda step: tf.constant(0.1))
  opt.apply_gradients([tf.zeros([2])] * len(variables))
  decayed = {n for n, v in zip(names, variables) if v.numpy()[0] != 1.0}
  assert decayed == {"a/dense/kernel", "cls/seq_relationship/output_weights"}
  np.testing.assert_allclose(variables[0].numpy(), 1.0 - 0.1 * 0.01)
  assert sorted(optimization.variable_name(v) for v in opt.variables) == sorted(
      ["global_step"] + [f"{n}/adam_{s}" for n in names for s in "mv"])
  assert opt.global_step.dtype == tf.int64 and int(opt.global_step) == 1


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match="optimizer='sgd'"):
    optimization.create_optimizer("sgd", [], 1e-4, 10, 1)
  with pytest.raises(ValueError, match="num_train_steps=0"):
    optimization.create_optimizer("adamw", [], 1e-4, 0, 1)
  with pytest.raises(ValueError, match="num_warmup_steps=-1"):
    optimization.WarmupLinearDecay(1e-4, 10, -1)
