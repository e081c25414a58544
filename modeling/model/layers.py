"""Building blocks whose variables carry the original TF1 names.

Every block takes the full variable scope of the original (for example
`bert/encoder/layer_0/attention/output/dense`) and creates its variables in the
constructor, so `[v.name for v in module.variables]` are the checkpoint names
plus ":0" and checkpoints load by name in both directions.
"""

import contextlib
import math

import tensorflow as tf


def truncated_normal(stddev):
  """The original's initializer: truncated normal (at 2 stddev), mean 0."""
  def initializer(shape, dtype=tf.float32):
    return tf.random.truncated_normal(shape, stddev=stddev, dtype=dtype)
  return initializer


def create_initializer(initializer_range=0.02):
  """The original's name and default for `truncated_normal(initializer_range)`."""
  return truncated_normal(initializer_range)


def gelu(x):
  """GELU, tanh approximation, as the original `modeling.gelu` at HEAD."""
  cdf = 0.5 * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * tf.pow(x, 3))))
  return x * cdf


def gelu_exact(x):
  """GELU with the exact normal CDF (erf), as the 2018 release and Hugging Face."""
  return 0.5 * x * (1.0 + tf.math.erf(x / math.sqrt(2.0)))


_ACTIVATIONS = {
    "gelu": gelu,
    "gelu_exact": gelu_exact,
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
    "linear": None,
}


def get_activation(name):
  """Maps a config `hidden_act` string (any case) to a function.

  As the original: None, "" and "linear" give None, and a non-string (already a
  function) is returned as it is.

  Raises:
    ValueError: an unknown name.
  """
  if not isinstance(name, str):
    return name
  if not name:
    return None
  if name.lower() not in _ACTIVATIONS:
    raise ValueError(f"hidden_act={name!r} is not one of {', '.join(_ACTIVATIONS)}")
  return _ACTIVATIONS[name.lower()]


def assert_rank(tensor, expected_rank, name=None):
  """Raises ValueError unless `tensor` has rank `expected_rank` (an int or ints)."""
  expected = {expected_rank} if isinstance(expected_rank, int) else set(expected_rank)
  if tensor.shape.rank not in expected:
    raise ValueError(f"For the tensor `{name or 'tensor'}`, the actual rank "
                     f"`{tensor.shape.rank}` (shape = {tensor.shape}) is not equal to the "
                     f"expected rank `{expected_rank}`")


def get_shape_list(tensor, expected_rank=None, name=None):
  """Returns the shape of `tensor` as a list: Python ints where static, scalars otherwise.

  Raises:
    ValueError: `expected_rank` is given and the rank differs (see `assert_rank`).
  """
  if expected_rank is not None:
    assert_rank(tensor, expected_rank, name)
  static = tensor.shape.as_list()
  if None not in static:
    return static
  dynamic = tf.shape(tensor)
  return [dim if dim is not None else dynamic[i] for i, dim in enumerate(static)]


def reshape_to_matrix(input_tensor):
  """Reshapes float [..., W] (rank >= 2) to [M, W], as the original keeps activations."""
  if input_tensor.shape.rank < 2:
    raise ValueError(f"Input tensor must have at least rank 2. Shape = {input_tensor.shape}")
  if input_tensor.shape.rank == 2:
    return input_tensor
  return tf.reshape(input_tensor, [-1, input_tensor.shape[-1]])  # [M, W]


def reshape_from_matrix(output_tensor, orig_shape_list):
  """Reshapes [M, W'] back to `orig_shape_list[:-1] + [W']`, undoing `reshape_to_matrix`."""
  if len(orig_shape_list) == 2:
    return output_tensor
  width = get_shape_list(output_tensor)[-1]
  return tf.reshape(output_tensor, list(orig_shape_list[:-1]) + [width])  # [..., W']


def new_variable(name, shape, initializer):
  """A float32 tf.Variable named exactly `name` (a TF1 checkpoint name)."""
  return tf.Variable(initializer(shape), name=name, dtype=tf.float32)


class Dense(tf.Module):
  """`tf.layers.dense` of the original: `scope/kernel` [in, out], `scope/bias` [out]."""

  def __init__(self, scope, input_width, output_width, initializer_range, activation=None):
    super().__init__()
    self.kernel = new_variable(f"{scope}/kernel", [input_width, output_width],
                               truncated_normal(initializer_range))
    self.bias = new_variable(f"{scope}/bias", [output_width], tf.zeros)
    self.activation = activation

  def __call__(self, inputs):
    """Maps float [M, in] to [M, out]; inputs must be 2-D, as the original keeps them.

    Computes in the dtype of `inputs` (bf16/fp16 under mixed precision; the fp32
    variables are cast, a no-op in fp32).
    """
    kernel, bias = (tf.cast(v, inputs.dtype) for v in (self.kernel, self.bias))
    outputs = tf.nn.bias_add(tf.matmul(inputs, kernel), bias)
    return self.activation(outputs) if self.activation is not None else outputs


class LayerNorm(tf.Module):
  """`tf.contrib.layers.layer_norm` over the last axis: `scope/LayerNorm/{beta,gamma}`.

  Epsilon 1e-12 on the biased variance, as the original. `name` is the scope's
  last part: TF1 names a second unnamed layer norm in one scope "LayerNorm_1"
  (ALBERT's layers have both).
  """

  EPSILON = 1e-12

  def __init__(self, scope, width, name="LayerNorm"):
    super().__init__()
    self.beta = new_variable(f"{scope}/{name}/beta", [width], tf.zeros)
    self.gamma = new_variable(f"{scope}/{name}/gamma", [width], tf.ones)

  def __call__(self, inputs):
    """Normalises float [..., width] over its last axis, in fp32 whatever its dtype."""
    x = tf.cast(inputs, tf.float32)
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    x = tf.nn.batch_normalization(x, mean, variance, offset=self.beta, scale=self.gamma,
                                  variance_epsilon=self.EPSILON)
    return tf.cast(x, inputs.dtype)


# The tf.random.Generator of the innermost `dropout_generator` context (a list used
# as a stack). Module-wide rather than thread-local: MirroredStrategy traces its
# replicas in threads of its own.
_GENERATORS = []


@contextlib.contextmanager
def dropout_generator(generator):
  """Within this context, `dropout` draws its masks from `generator`.

  The training loop traces its step inside this context, so the dropout masks
  are a function of the generator's state, a variable it checkpoints: a resumed
  run draws the masks an uninterrupted one would have.

  Args:
    generator: a tf.random.Generator (created under the strategy's scope, where
      each replica draws a stream of its own).
  """
  _GENERATORS.append(generator)
  try:
    yield generator
  finally:
    _GENERATORS.pop()


def dropout_seed():
  """A fresh int64 [2] seed for a stateless random op, such as a dropout mask.

  From the `dropout_generator` in effect; outside one, from the op-level random
  state of `tf.random.set_seed` (reproducible from a fresh start, not
  checkpointable).
  """
  if _GENERATORS:
    return _GENERATORS[-1].make_seeds(1)[:, 0]
  return tf.random.uniform([2], maxval=tf.int64.max, dtype=tf.int64)


def dropout(inputs, rate, training):
  """Dropout with `rate`, only when training and rate > 0 (else `inputs` unchanged).

  Args:
    inputs: float tensor of any shape.
    rate: Python float, the fraction of entries zeroed (the rest scaled by
      1 / (1 - rate)).
    training: Python bool.
  """
  if not training or rate == 0.0:
    return inputs
  return stateless_dropout(inputs, rate, dropout_seed())


def stateless_dropout(inputs, rate, seed):
  """Zeroes entries of `inputs` with probability `rate`, scales the rest by 1 / (1 - rate).

  As `tf.nn.experimental.stateless_dropout`, a function of `seed`, but each entry
  is kept or dropped by 16 random bits, two entries per 32-bit draw: half the
  random numbers, which cost about a tenth of a training step on CPUs. The rate is
  rounded to a multiple of 1/65536 (0.1 becomes 0.1000061).

  Args:
    inputs: float tensor of any shape.
    rate: Python float in [0, 1).
    seed: int64 [2], the seed of the mask.
  """
  count = tf.size(inputs)
  # Philox named, not "auto_select" (XLA's pick differs): the same mask compiled or not.
  bits = tf.random.stateless_uniform([(count + 1) // 2], seed, minval=None, maxval=None,
                                     dtype=tf.int32, alg="philox")  # [ceil(n / 2)]
  halves = tf.reshape(tf.bitcast(bits, tf.int16), [-1])[:count]  # [n], uniform int16
  # P(halves >= threshold) = (32768 - threshold) / 65536 = 1 - dropped / 65536.
  dropped = min(round(rate * 65536), 65535)
  keep = tf.reshape(halves >= tf.constant(dropped - 32768, tf.int16), tf.shape(inputs))
  scale = tf.constant(1.0 / (1.0 - rate), inputs.dtype)
  return tf.where(keep, inputs * scale, tf.zeros_like(inputs))
