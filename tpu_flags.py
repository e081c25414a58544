"""Flags of the device: the original's TPU flags, and the tf.distribute strategy they make."""

from absl import flags

from modeling.training import distribution

flags.DEFINE_bool("use_tpu", False, "Whether to use TPU or GPU/CPU.")
flags.DEFINE_string("tpu_name", None, "The Cloud TPU to use (a name or grpc:// URL).")
flags.DEFINE_string("tpu_zone", None, "[Optional] GCE zone of the Cloud TPU.")
flags.DEFINE_string("gcp_project", None, "[Optional] Project of the Cloud TPU.")
flags.DEFINE_string("master", None, "[Optional] TensorFlow master URL. If using a TPU, the "
                    "address of the master.")
flags.DEFINE_integer("num_tpu_cores", 8,
                     "Only used if `use_tpu` is True. Total number of TPU cores to use.")

FLAGS = flags.FLAGS


def strategy_from_flags():
  """The tf.distribute strategy the TPU flags and the machine call for."""
  return distribution.get_strategy(FLAGS.use_tpu, FLAGS.tpu_name, FLAGS.tpu_zone,
                                   FLAGS.gcp_project, FLAGS.master, FLAGS.num_tpu_cores)
