"""Masked LM and next sentence pretraining of BERT, as the original run_pretraining.py.

Same flags and defaults as the original (each defined once, in the *_flags.py
module of its concern), plus --seed, --keep_checkpoint_max, --log_steps, --optimizer,
--mixed_precision, --use_xla and --num_accumulation_steps. Runs on one device, several GPUs
(MirroredStrategy), several workers (TF_CONFIG) or a TPU (--use_tpu); an
existing checkpoint in --output_dir resumes the run.

  python run_pretraining.py --input_file=tf_examples.tfrecord \
    --output_dir=pretraining_output --do_train --do_eval \
    --bert_config_file=bert_config.json --init_checkpoint=bert_model.ckpt \
    --train_batch_size=32 --max_seq_length=128 --max_predictions_per_seq=20 \
    --num_train_steps=20 --num_warmup_steps=10 --learning_rate=2e-5
"""

import os

from absl import app, flags, logging

import bucket_flags  # noqa: F401  (defines the flags)
import finite_flags
import io_flags  # noqa: F401  (defines the flags)
import model_flags  # noqa: F401  (defines the flags)
import pretraining_data_flags  # noqa: F401  (defines the flags)
import pretraining_flags
import shared_flags
import tokenizer_flags  # noqa: F401  (defines the flags)
import tpu_flags
from modeling.data import files
from modeling.model.config import BertConfig
from modeling.tasks import pretraining
from modeling.training import distribution

FLAGS = flags.FLAGS
finite_flags.require_finite_floats()

# The original's default; create_pretraining_data.py's None follows --packing.
FLAGS.set_default("next_sentence", True)

# Flags of the other scripts' modules that cannot take effect here, and why.
UNUSED_FLAGS = (
    (["output_file"], "run_pretraining.py writes into --output_dir"),
    (["length_buckets"], "the records have one length, --max_seq_length"),
    (["do_lower_case", "preserve_unused_tokens", "spm_model_file"],
     "run_pretraining.py reads records, not text: give it to create_pretraining_data.py"),
)


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  if not FLAGS.do_train and not FLAGS.do_eval:
    raise ValueError("At least one of `do_train` or `do_eval` must be True.")
  for names, reason in UNUSED_FLAGS:
    shared_flags.refuse_flags(names, reason)
  config = BertConfig.from_json_file(FLAGS.bert_config_file)
  config.check_sequence_length(FLAGS.max_seq_length, name="--max_seq_length")
  compute_dtype = shared_flags.compute_dtype_from_flags(FLAGS.use_tpu)
  remove_padding = shared_flags.remove_padding_from_flags(FLAGS.use_tpu)
  # First TensorFlow call: a multi-worker strategy must be set up before any op runs.
  strategy = tpu_flags.strategy_from_flags()
  records = pretraining_flags.records_from_flags(config, FLAGS.next_sentence)
  logging.info("*** Input Files ***\n  %s", "\n  ".join(records.input_files))
  shared_flags.check_outputs(["eval_results.txt"],
                             [("--input_file", path) for path in records.input_files]
                             + [("--bert_config_file", FLAGS.bert_config_file)])

  is_chief = distribution.is_chief(strategy)
  model, _, trainer, checkpoints, start = shared_flags.training_from_flags(
      strategy, lambda: pretraining.PretrainingModel(
          config, FLAGS.use_tpu, compute_dtype, FLAGS.next_sentence, remove_padding),
      FLAGS.num_train_steps, FLAGS.num_warmup_steps, is_chief, pretraining.FRESH_HEADS,
      FLAGS.init_checkpoint)
  if not FLAGS.do_train and start == "fresh":
    raise ValueError(f"--do_eval without --do_train needs a checkpoint in --output_dir="
                     f"{FLAGS.output_dir} or an --init_checkpoint")

  if FLAGS.do_train:
    status = shared_flags.pretrain_from_flags(trainer, records, checkpoints,
                                              FLAGS.num_train_steps)
    if status is not None:
      return status

  if FLAGS.do_eval:
    results = shared_flags.evaluate_records_from_flags(strategy, trainer, records,
                                                       model.eval_metrics, FLAGS.max_eval_steps)
    logging.info("***** Eval results *****\n%s",
                 "\n".join(f"  {k} = {results[k]}" for k in sorted(results)))
    if is_chief:
      files.write_eval_results(os.path.join(FLAGS.output_dir, "eval_results.txt"), results)
  return 0


if __name__ == "__main__":
  flags.mark_flag_as_required("input_file")
  flags.mark_flag_as_required("bert_config_file")
  flags.mark_flag_as_required("output_dir")
  app.run(main)
