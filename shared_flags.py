"""Flags shared by run_pretraining.py and run_classifier.py, defined once.

Names and defaults are the original scripts'; the last group is ours. Library
code never reads flags: the scripts pass values on.
"""

from absl import flags

from modeling import distribution, optimization

flags.DEFINE_string("bert_config_file", None,
                    "The config json file corresponding to the pre-trained BERT model.")
flags.DEFINE_string("output_dir", None,
                    "Where checkpoints, summaries and results are written.")
flags.DEFINE_string("init_checkpoint", None,
                    "Initial checkpoint (usually from a pre-trained BERT model).")
flags.DEFINE_integer("max_seq_length", 128,
                     "The maximum total input sequence length after WordPiece tokenization.")
flags.DEFINE_bool("do_train", False, "Whether to run training.")
flags.DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.")
flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.")
flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for eval.")
flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate for Adam.")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "How often to save the model checkpoint.")
flags.DEFINE_integer("iterations_per_loop", 1000,
                     "Most steps run on the device per host call.")
flags.DEFINE_bool("use_tpu", False, "Whether to use TPU or GPU/CPU.")
flags.DEFINE_string("tpu_name", None, "The Cloud TPU to use (a name or grpc:// URL).")
flags.DEFINE_string("tpu_zone", None, "[Optional] GCE zone of the Cloud TPU.")
flags.DEFINE_string("gcp_project", None, "[Optional] Project of the Cloud TPU.")
flags.DEFINE_string("master", None, "[Optional] TensorFlow master URL.")
flags.DEFINE_integer("num_tpu_cores", 8, "Only used if `use_tpu` is True: TPU cores to use.")
# Ours.
flags.DEFINE_integer("seed", 12345, "Seed of the initialisation, dropout and data order.")
flags.DEFINE_integer("keep_checkpoint_max", 5, "Most recent checkpoints kept (0: all).")
flags.DEFINE_integer("log_steps", 100, "Log and write summaries every this many steps.")
flags.DEFINE_enum("optimizer", "adamw", optimization.OPTIMIZERS,
                  "adamw: the original AdamWeightDecay.")

FLAGS = flags.FLAGS


def strategy_from_flags():
  """The tf.distribute strategy the TPU flags and the machine call for."""
  return distribution.get_strategy(FLAGS.use_tpu, FLAGS.tpu_name, FLAGS.tpu_zone,
                                   FLAGS.gcp_project, FLAGS.master, FLAGS.num_tpu_cores)
