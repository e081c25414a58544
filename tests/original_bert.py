"""Imports Google's original BERT (PyPI `bert-tensorflow==1.0.4`) as a test oracle.

Import this module only in a subprocess (see `oracle.run`): the original code
needs TF1 behaviour (`tf.compat.v1`, graph mode) and Keras 2, which would leak
into the code under test. DESIGN.md section 5 lists the adjustments made here:

- `TF_USE_LEGACY_KERAS=1` before TensorFlow is imported (its `tf.layers.dense`);
- a stand-in `tensorflow.contrib.layers.layer_norm` (scope `LayerNorm`, variables
  `beta`/`gamma`, epsilon 1e-12), as `tf.contrib` is gone from TF 2;
- absl flags parsed (`known_only`), as `bert.tokenization` reads one;
- `hidden_act: "gelu_exact"` (erf GELU, used by ../shared/models) mapped to the
  erf formula, which the 2018 release of the original used.
"""

import math
import os
import sys
import types

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow.compat.v1 as tf  # noqa: E402


def _layer_norm(inputs, begin_norm_axis=-1, begin_params_axis=-1, scope=None):
  del begin_norm_axis, begin_params_axis  # The original passes -1 for both.
  with tf.variable_scope(scope, default_name="LayerNorm"):
    width = inputs.shape[-1]
    beta = tf.get_variable("beta", [width], initializer=tf.zeros_initializer())
    gamma = tf.get_variable("gamma", [width], initializer=tf.ones_initializer())
    mean, variance = tf.nn.moments(inputs, [-1], keep_dims=True)
    return tf.nn.batch_normalization(inputs, mean, variance, offset=beta, scale=gamma,
                                     variance_epsilon=1e-12)


_contrib = types.ModuleType("tensorflow.contrib")
_contrib.layers = types.ModuleType("tensorflow.contrib.layers")
_contrib.layers.layer_norm = _layer_norm
sys.modules["tensorflow.contrib"] = _contrib
sys.modules["tensorflow.contrib.layers"] = _contrib.layers

tf.disable_v2_behavior()

from absl import flags  # noqa: E402

from bert import modeling, optimization, tokenization  # noqa: E402,F401

flags.FLAGS(sys.argv[:1], known_only=True)

_get_activation = modeling.get_activation


def _get_activation_with_exact_gelu(name):
  if isinstance(name, str) and name.lower() == "gelu_exact":
    return lambda x: 0.5 * x * (1.0 + tf.math.erf(x / math.sqrt(2.0)))
  return _get_activation(name)


modeling.get_activation = _get_activation_with_exact_gelu
