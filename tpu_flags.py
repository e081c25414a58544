"""Flags of the device: the original's TPU flags, the tf.distribute strategy they make, and
whether the whole step is compiled as a TPU compiles it."""

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
# Ours.
flags.DEFINE_bool("jit_whole_step", False,
                  "Compile (XLA, jit_compile=True) the whole replica step: forward, backward, "
                  "gradient accumulation, all-reduce, loss scaling, optimizer update; and the "
                  "evaluation and prediction steps. Exactly what a TPU compiles, so on by "
                  "default with --use_tpu; elsewhere on one device only (see docs/tpu.md).")

FLAGS = flags.FLAGS


def strategy_from_flags():
  """The tf.distribute strategy the TPU flags and the machine call for."""
  return distribution.get_strategy(FLAGS.use_tpu, FLAGS.tpu_name, FLAGS.tpu_zone,
                                   FLAGS.gcp_project, FLAGS.master, FLAGS.num_tpu_cores)


def jit_whole_step_from_flags():
  """Whether the train, eval and predict steps are compiled whole: --jit_whole_step, or
  --use_tpu (where the TPU compiles them whole anyway)."""
  if FLAGS.use_tpu and FLAGS["jit_whole_step"].present and not FLAGS.jit_whole_step:
    raise ValueError("--nojit_whole_step cannot take effect with --use_tpu: a TPU compiles "
                     "the whole step anyway")
  return FLAGS.jit_whole_step or FLAGS.use_tpu
