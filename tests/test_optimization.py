"""AdamWeightDecay and the schedule against the original optimization.py; adamw_corrected
against PyTorch's AdamW; LAMB against NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from modeling.checkpoint import checkpoint_name
from modeling.training import optimization
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

  ours = {checkpoint_name(v): v.numpy() for v in trained + list(opt.variables)}
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


def test_decay_after_warmup_is_hugging_faces_schedule():
  torch = pytest.importorskip("torch", reason="PyTorch (the hf test extra) is the oracle")
  transformers = pytest.importorskip("transformers", reason="transformers is the oracle")
  total, warmup = 10, 4
  parameter = torch.nn.Parameter(torch.zeros(1))
  peer = transformers.get_linear_schedule_with_warmup(
      torch.optim.SGD([parameter], lr=1e-3), warmup, total)
  want = []
  for _ in range(total + 3):
    want.append(peer.get_last_lr()[0])
    peer.step()
  schedule = optimization.WarmupLinearDecay(1e-3, total, warmup, decay_after_warmup=True)
  got = [float(schedule(tf.constant(s, tf.int64))) for s in range(total + 3)]
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)
  assert got[warmup] == pytest.approx(1e-3)  # The original's is 1e-3 * (1 - 4 / 10) there.
  with pytest.raises(ValueError, match="num_warmup_steps=10 leaves no step"):
    optimization.WarmupLinearDecay(1e-3, 10, 10, decay_after_warmup=True)


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
  assert sorted(checkpoint_name(v) for v in opt.variables) == sorted(
      ["global_step"] + [f"{n}/adam_{s}" for n in names for s in "mv"])
  assert opt.global_step.dtype == tf.int64 and int(opt.global_step) == 1


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match="optimizer='sgd' is not one of adamw, adamw_corrected, lamb"):
    optimization.create_optimizer("sgd", [], 1e-4, 10, 1)
  with pytest.raises(ValueError, match="num_train_steps=0"):
    optimization.create_optimizer("adamw", [], 1e-4, 0, 1)
  with pytest.raises(ValueError, match="num_warmup_steps=-1"):
    optimization.WarmupLinearDecay(1e-4, 10, -1)


# ----------------------------------------------------------------------------
# LAMB against a NumPy reference of the paper's Algorithm 2.

def _lamb_reference(values, gradients, rates, decayed, beta_1=0.9, beta_2=0.999,
                    epsilon=1e-6, weight_decay=0.01, clip_norm=1.0):
  """LAMB in NumPy float64: step t uses `gradients[t][name]` and `rates[t]`.

  Args:
    values: {name: initial np.ndarray}.
    decayed: {name: bool}, False for the weight-decay exclusions (no decay, trust 1).

  Returns:
    {name: np.ndarray} the values after len(rates) steps.
  """
  values = {n: w.astype(np.float64) for n, w in values.items()}
  m = {n: np.zeros_like(w) for n, w in values.items()}
  v = {n: np.zeros_like(w) for n, w in values.items()}
  for t, (grads, rate) in enumerate(zip(gradients, rates), start=1):
    norm = np.sqrt(sum(np.sum(np.square(g.astype(np.float64))) for g in grads.values()))
    factor = clip_norm / max(norm, clip_norm)
    for name, w in values.items():
      g = grads[name] * factor
      m[name] = beta_1 * m[name] + (1 - beta_1) * g
      v[name] = beta_2 * v[name] + (1 - beta_2) * g * g
      m_hat, v_hat = m[name] / (1 - beta_1 ** t), v[name] / (1 - beta_2 ** t)
      r = m_hat / (np.sqrt(v_hat) + epsilon)
      trust = 1.0
      if decayed[name]:
        r = r + weight_decay * w
        w_norm, r_norm = np.linalg.norm(w), np.linalg.norm(r)
        trust = w_norm / r_norm if w_norm > 0 and r_norm > 0 else 1.0
      values[name] = w - rate * trust * r
  return values


@pytest.mark.parametrize("jit_compile", [False, True], ids=["ops", "xla"])
@pytest.mark.parametrize("gradient_scale", [0.01, 3.0], ids=["unclipped", "clipped"])
def test_lamb_matches_numpy_reference(gradient_scale, jit_compile):
  rng = np.random.default_rng(1)
  shapes = dict(SHAPES, **{"zero/dense/kernel": (2, 2)})  # ||w|| = 0: trust ratio 1
  init = {n: (np.zeros(s) if n.startswith("zero") else rng.normal(size=s)).astype(np.float32)
          for n, s in shapes.items()}
  gradients = [{n: (gradient_scale * rng.normal(size=s)).astype(np.float32)
                for n, s in shapes.items()} for _ in range(3)]
  variables = [tf.Variable(init[n], name=n) for n in shapes]
  opt = optimization.create_optimizer("lamb", variables, 0.1, 100, 0, jit_compile)
  assert isinstance(opt, optimization.Lamb)
  for grads in gradients:
    opt.apply_gradients([tf.constant(grads[n]) for n in shapes])
  decayed = {n: not any(p in n for p in ("LayerNorm", "layer_norm", "bias")) for n in shapes}
  rates = [0.1 * (1 - t / 100) for t in range(3)]  # The schedule, no warmup.
  expected = _lamb_reference(init, gradients, rates, decayed)
  for name, variable in zip(shapes, variables):
    np.testing.assert_allclose(variable.numpy(), expected[name], rtol=1e-5, atol=1e-6,
                               err_msg=name)
  # The trust ratio matters: plain Adam with bias correction would move differently.
  adam = _lamb_reference(init, gradients, rates, dict.fromkeys(shapes, False),
                         weight_decay=0.0)
  assert not np.allclose(adam["dense/kernel"], expected["dense/kernel"], atol=1e-4)
  assert int(opt.global_step) == 3
  assert sorted(checkpoint_name(v) for v in opt.variables) == sorted(
      ["global_step"] + [f"{n}/adam_{s}" for n in shapes for s in "mv"])


@pytest.mark.parametrize("jit_compile", [False, True], ids=["ops", "xla"])
@pytest.mark.parametrize("gradient_scale", [0.01, 3.0], ids=["unclipped", "clipped"])
def test_adamw_corrected_matches_pytorch_adamw(gradient_scale, jit_compile):
  torch = pytest.importorskip("torch", reason="PyTorch (the hf test extra) is the oracle")
  rng = np.random.default_rng(2)
  init = {n: rng.normal(size=s).astype(np.float32) for n, s in SHAPES.items()}
  gradients = [{n: (gradient_scale * rng.normal(size=s)).astype(np.float32)
                for n, s in SHAPES.items()} for _ in range(4)]
  variables = [tf.Variable(init[n], name=n) for n in SHAPES]
  opt = optimization.create_optimizer("adamw_corrected", variables, 0.1, 10, 2, jit_compile)
  for grads in gradients:
    opt.apply_gradients([tf.constant(grads[n]) for n in SHAPES])

  params = {n: torch.nn.Parameter(torch.tensor(w, dtype=torch.float64)) for n, w in init.items()}
  decayed = {n: not any(p in n for p in ("LayerNorm", "layer_norm", "bias")) for n in SHAPES}
  torch_opt = torch.optim.AdamW(
      [{"params": [params[n] for n in SHAPES if decayed[n]], "weight_decay": 0.01},
       {"params": [params[n] for n in SHAPES if not decayed[n]], "weight_decay": 0.0}],
      lr=0.1, eps=1e-6)
  rates = [0.0, 0.05, 0.1 * (1 - 2 / 10), 0.1 * (1 - 3 / 10)]  # warmup 2, then decay
  for grads, rate in zip(gradients, rates):
    for name, param in params.items():
      param.grad = torch.tensor(grads[name], dtype=torch.float64)
    torch.nn.utils.clip_grad_norm_(params.values(), 1.0)
    for group in torch_opt.param_groups:
      group["lr"] = rate
    torch_opt.step()
  for name, variable in zip(SHAPES, variables):
    np.testing.assert_allclose(variable.numpy(), params[name].detach().numpy(), rtol=1e-5,
                               atol=1e-6, err_msg=name)
  # The correction matters: the original rule moves differently.
  original = [tf.Variable(init[n], name=n) for n in SHAPES]
  original_opt = optimization.create_optimizer("adamw", original, 0.1, 10, 2)
  for grads in gradients:
    original_opt.apply_gradients([tf.constant(grads[n]) for n in SHAPES])
  assert not np.allclose(original[0].numpy(), variables[0].numpy(), atol=1e-3)
  assert sorted(checkpoint_name(v) for v in opt.variables) == sorted(
      checkpoint_name(v) for v in original_opt.variables)


@pytest.mark.parametrize("name", ["adamw", "adamw_corrected", "lamb"])
def test_a_step_not_applied_changes_nothing(name):
  variable = tf.Variable([1.0, -2.0], name="w")
  opt = optimization.create_optimizer(name, [variable], 0.1, 10, 0)
  opt.apply_gradients([tf.constant([0.3, -0.4])], apply=tf.constant(False))
  np.testing.assert_array_equal(variable.numpy(), [1.0, -2.0])
  assert int(opt.global_step) == 0
  assert not np.any(opt.slots["w"][0].numpy())
  opt.apply_gradients([tf.constant([0.3, -0.4])], apply=tf.constant(True))
  assert int(opt.global_step) == 1 and variable.numpy()[0] != 1.0


@pytest.mark.parametrize("name", ["adamw", "adamw_corrected", "lamb"])
def test_compiled_updates_are_the_rule_within_rounding(name):
  """jit_compile=True (--jit_optimizer): each variable's update one XLA computation, the
  decayed and the excluded variables alike; 20 steps within float32 rounding."""
  rng = np.random.default_rng(3)
  init = {n: rng.normal(size=s).astype(np.float32) for n, s in SHAPES.items()}
  gradients = [[tf.constant(rng.normal(size=s).astype(np.float32)) for s in SHAPES.values()]
               for _ in range(20)]
  runs = []
  for jit_compile in (False, True):
    variables = [tf.Variable(init[n], name=n) for n in SHAPES]
    opt = optimization.create_optimizer(name, variables, 0.1, 20, 2, jit_compile)
    step = tf.function(opt.apply_gradients)
    for grads in gradients:
      step(grads)
    runs.append([v.numpy() for v in variables + list(opt.variables)])
  assert sorted(opt._compiled_updates) == [False, True]  # pylint: disable=protected-access
  for ops, xla in zip(*runs):
    np.testing.assert_allclose(xla, ops, rtol=1e-6, atol=1e-7)
