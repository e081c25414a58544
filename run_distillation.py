"""DistilBERT-style knowledge distillation of a BERT teacher into a smaller BERT student.

General distillation (the default) trains the student on run_pretraining.py's
masked-LM records (static, or unmasked with --dynamic_masking) with DistilBERT's
loss: alpha_ce * T^2 * KL of the teacher's and student's softened vocabulary
distributions at the masked positions, alpha_mlm * the masked-LM loss, alpha_cos *
the cosine loss of the last hidden states (no next-sentence task). Task-specific
distillation (--task_name, --data_dir as run_classifier.py) trains a student
classifier on the fine-tuned teacher's soft class probabilities at temperature T
and the labels. See modeling/tasks/distillation.py for the exact loss.

The teacher (--teacher_config_file, --teacher_checkpoint) runs without dropout and
is never updated nor saved; it is read again at each start. The student
(--student_config_file) starts from the teacher's layers (--student_init=
teacher_layers, the default: embeddings, pooler and heads copied, student layer i
from teacher layer --student_layers[i], by default every other layer), from a
checkpoint (--student_init=PATH) or at random (--student_init=random).
--output_dir gets the student's checkpoints model.ckpt-N in the original layout
with bert_config.json beside them; a rerun resumes.

  python run_distillation.py --input_file=tf_examples.tfrecord --output_dir=student \
    --teacher_config_file=$BERT_DIR/bert_config.json \
    --teacher_checkpoint=$BERT_DIR/bert_model.ckpt --student_config_file=student.json \
    --do_train --train_batch_size=32 --max_seq_length=128 --max_predictions_per_seq=20 \
    --num_train_steps=10000 --num_warmup_steps=1000 --learning_rate=1e-4
"""

import os

from absl import app, flags, logging

import bucket_flags
import classifier_task_flags  # noqa: F401  (defines the flags)
import fine_tuning_flags
import finite_flags
import io_flags  # noqa: F401  (defines the flags)
import model_flags  # noqa: F401  (defines the flags)
import pretraining_data_flags  # noqa: F401  (defines the flags)
import pretraining_flags
import shared_flags
import tokenizer_flags
import tpu_flags
from modeling import checkpoint
from modeling.data import classifier_data, files
from modeling.data.tokenization import validate_case_matches_checkpoint
from modeling.model.config import BertConfig
from modeling.tasks import classifier, distillation, pretraining
from modeling.training import array_predictor, distribution

FLAGS = flags.FLAGS

# The teacher, the student and the objective.
flags.DEFINE_string("teacher_config_file", None, "The teacher's bert_config.json.")
flags.DEFINE_string("teacher_checkpoint", None,
                    "The teacher's checkpoint (prefix or directory): with the masked-LM head "
                    "cls/predictions for general distillation (unless --alpha_ce=0), a "
                    "fine-tuned classifier (run_classifier.py) with --task_name.")
flags.DEFINE_string("student_config_file", None, "The student's bert_config.json (copied to "
                    "--output_dir/bert_config.json).")
flags.DEFINE_string("student_init", "teacher_layers",
                    "How the student starts: teacher_layers (the teacher's embeddings, "
                    "pooler, heads and the layers of --student_layers), random, or the path "
                    "of a checkpoint.")
flags.DEFINE_string("student_layers", None,
                    "With --student_init=teacher_layers: the teacher layer of each student "
                    "layer, comma-separated (default: every other layer, 0,2,4,... for half "
                    "as many; evenly spaced in general).")
flags.DEFINE_float("alpha_ce", 5.0, "Weight of the soft-target loss (KL at --temperature).")
flags.DEFINE_float("alpha_mlm", 2.0, "General distillation: weight of the masked-LM loss.")
flags.DEFINE_float("alpha_cos", 1.0, "General distillation: weight of the cosine loss of the "
                   "last hidden states.")
flags.DEFINE_float("alpha_label", 2.0, "With --task_name: weight of the cross-entropy with "
                   "the labels.")
flags.DEFINE_float("temperature", 2.0, "Temperature T of the soft targets.")
finite_flags.require_finite_floats()

# General distillation: run_pretraining.py's flags; task-specific: run_classifier.py's.
GENERAL_FLAGS = ("input_file", "max_predictions_per_seq", "num_train_steps", "num_warmup_steps",
                 "max_eval_steps", "dynamic_masking", "masked_lm_prob", "do_whole_word_mask",
                 "alpha_mlm", "alpha_cos")
TASK_FLAGS = ("data_dir", "do_lower_case", "num_train_epochs", "warmup_proportion",
              "alpha_label")
UNUSED_FLAGS = {"bert_config_file": "give --student_config_file and --teacher_config_file",
                "init_checkpoint": "give the student's starting checkpoint as "
                                   "--student_init=PATH",
                "output_file": "run_distillation.py writes into --output_dir",
                "next_sentence": "distillation trains no next-sentence head"}


def check_flags(task_specific):
  """The flags of the other mode, and those with no use here, are refused by name."""
  if not FLAGS.do_train and not FLAGS.do_eval:
    raise ValueError("At least one of `do_train` or `do_eval` must be True.")
  for name, reason in UNUSED_FLAGS.items():
    shared_flags.refuse_flags([name], reason)
  if task_specific:
    shared_flags.refuse_flags(GENERAL_FLAGS,
                              "general distillation only; --task_name distils a classifier")
    for name in ("data_dir", "vocab_file"):
      if not getattr(FLAGS, name) and not (name == "vocab_file" and FLAGS.spm_model_file):
        raise ValueError(f"--task_name needs --{name}")
  else:
    shared_flags.refuse_flags(TASK_FLAGS, "task-specific distillation only; pass --task_name")
    if not FLAGS.input_file:
      raise ValueError("general distillation needs --input_file (masked-LM records of "
                       "create_pretraining_data.py), or --task_name and --data_dir")
  if FLAGS.student_init != "teacher_layers":
    shared_flags.refuse_flags(["student_layers"], "applies to --student_init=teacher_layers only")


def objective_from_flags(task_specific):
  objective = distillation.Objective(FLAGS.alpha_ce, FLAGS.alpha_mlm, FLAGS.alpha_cos,
                                     FLAGS.alpha_label, FLAGS.temperature)
  objective.check(task_specific)
  return objective


def check_teacher_checkpoint():
  """Refuses a teacher checkpoint that does not exist or lies in --output_dir (where the
  student's checkpoints go)."""
  prefix, _, _ = checkpoint.open_checkpoint(FLAGS.teacher_checkpoint)
  if os.path.realpath(os.path.dirname(prefix)) == os.path.realpath(FLAGS.output_dir):
    raise ValueError(f"--teacher_checkpoint={FLAGS.teacher_checkpoint} is in --output_dir="
                     f"{FLAGS.output_dir}, where the student's checkpoints go: put the "
                     "student elsewhere")


def init_student(model, teacher_report, layers, fresh_heads):
  """Initialises the student of a fresh run as --student_init says."""
  if FLAGS.student_init == "teacher_layers":
    copied = distillation.init_from_teacher_layers(model.student, model.teacher, layers,
                                                   set(teacher_report.loaded))
    logging.info("Student initialised from the teacher: layers %s, %d variables copied",
                 ",".join(map(str, layers)), len(copied))
  elif FLAGS.student_init == "random":
    logging.info("Student initialised at random (--seed=%d)", FLAGS.seed)
  else:
    report = checkpoint.load(FLAGS.student_init, model.student, allow_missing=fresh_heads)
    logging.info("Student initialised from --student_init: %s", report)


def start(strategy, make_model, num_train_steps, num_warmup_steps, student_config, layers,
          fresh_heads):
  """The model (student resumed or initialised, teacher loaded), optimizer, trainer and
  checkpoints of the run; bert_config.json written beside the checkpoints."""
  is_chief = distribution.is_chief(strategy)
  model, optimizer, trainer, checkpoints, begun = shared_flags.training_from_flags(
      strategy, make_model, num_train_steps, num_warmup_steps, is_chief, (), None)
  if begun == "fresh" and not FLAGS.do_train:
    raise ValueError(f"--do_eval without --do_train needs a student checkpoint in "
                     f"--output_dir={FLAGS.output_dir}")
  teacher_report = model.load_teacher(FLAGS.teacher_checkpoint)
  logging.info("Teacher: %s", teacher_report)
  if begun == "fresh":
    init_student(model, teacher_report, layers, fresh_heads)
  if is_chief:
    files.write_atomically(os.path.join(FLAGS.output_dir, "bert_config.json"),
                          student_config.to_json_string())
  return model, optimizer, trainer, checkpoints


def write_results(strategy, results):
  logging.info("***** Eval results *****\n%s",
               "\n".join(f"  {k} = {results[k]}" for k in sorted(results)))
  if distribution.is_chief(strategy):
    files.write_eval_results(os.path.join(FLAGS.output_dir, "eval_results.txt"), results)


def general_distillation(strategy, configs, objective, layers, numerics, inputs):
  """Distils on the masked-LM records of --input_file; returns the exit status."""
  student_config, teacher_config = configs
  records = pretraining_flags.records_from_flags(student_config, next_sentence=False)
  logging.info("*** Input Files ***\n  %s", "\n  ".join(records.input_files))
  check_outputs(inputs + [("--input_file", path) for path in records.input_files])
  model, _, trainer, checkpoints = start(
      strategy, lambda: distillation.MaskedLMDistillation(
          student_config, teacher_config, objective, FLAGS.use_tpu, *numerics),
      FLAGS.num_train_steps, FLAGS.num_warmup_steps, student_config, layers,
      pretraining.FRESH_HEADS + (r"^bert/pooler/",))
  if FLAGS.do_train:
    status = shared_flags.pretrain_from_flags(trainer, records, checkpoints,
                                              FLAGS.num_train_steps)
    if status is not None:
      return status
  if FLAGS.do_eval:
    write_results(strategy, shared_flags.evaluate_records_from_flags(
        strategy, trainer, records, model.eval_metrics, FLAGS.max_eval_steps))
  return 0


def task_distillation(strategy, configs, objective, layers, numerics, inputs):
  """Distils the fine-tuned classifier on the task's training set; returns the exit status."""
  student_config, teacher_config = configs
  validate_case_matches_checkpoint(FLAGS.do_lower_case, FLAGS.teacher_checkpoint)
  processor = classifier_data.get_processor(FLAGS.task_name, FLAGS.data_dir)
  if processor.is_regression:
    raise ValueError(f"--task_name={FLAGS.task_name} is a regression task: there are no "
                     "class probabilities to distil")
  label_list = processor.get_labels()
  tokenizer, tokenizer_files = tokenizer_flags.tokenizer_from_flags(student_config)
  check_outputs(inputs + tokenizer_files + [
      ("--data_dir", os.path.join(FLAGS.data_dir, name)) for name in processor.files.values()])
  examples = {split: processor.get_examples(FLAGS.data_dir, split)
              for split, wanted in (("train", FLAGS.do_train), ("dev", FLAGS.do_eval))
              if wanted}
  num_train_steps, num_warmup_steps = fine_tuning_flags.schedule_from_flags(
      len(examples.get("train", ())))
  model, optimizer, trainer, checkpoints = start(
      strategy, lambda: distillation.ClassifierDistillation(
          student_config, teacher_config, len(label_list), objective, FLAGS.use_tpu,
          *numerics),
      num_train_steps, num_warmup_steps, student_config, layers,
      classifier.FRESH_HEAD)

  buckets = bucket_flags.buckets_from_flags(FLAGS.max_seq_length)

  def arrays(split):
    return classifier_data.to_arrays(examples[split], label_list, FLAGS.max_seq_length,
                                     tokenizer)

  if FLAGS.do_train:
    logging.info("***** Distilling: %d examples, batch size %d, %d steps *****",
                 len(examples["train"]), FLAGS.train_batch_size, num_train_steps)
    status = shared_flags.train_on_bucketed_arrays(trainer, arrays("train"), buckets,
                                                   num_train_steps, checkpoints)
    if status is not None:
      return status
  if FLAGS.do_eval:
    dev = arrays("dev")
    results = classifier.eval_metrics(
        array_predictor.predict(strategy, model.predict_step, dev, FLAGS.eval_batch_size, buckets,
                                jit_compile=tpu_flags.jit_whole_step_from_flags()),
        dev["label_ids"], False)
    teacher = classifier.eval_metrics(
        array_predictor.predict(strategy, model.teacher_predict_step, dev, FLAGS.eval_batch_size,
                           buckets, jit_compile=tpu_flags.jit_whole_step_from_flags()),
        dev["label_ids"], False)
    results["teacher_eval_accuracy"] = teacher["eval_accuracy"]
    results["global_step"] = int(optimizer.global_step.numpy())
    write_results(strategy, results)
  return 0


def check_outputs(inputs):
  """Refuses, before any work, an output in --output_dir that is one of the inputs."""
  files.check_outputs([("--output_dir", os.path.join(FLAGS.output_dir, name))
                       for name in ("eval_results.txt", "bert_config.json")], inputs)


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  task_specific = FLAGS.task_name is not None
  check_flags(task_specific)
  student_config = BertConfig.from_json_file(FLAGS.student_config_file)
  teacher_config = BertConfig.from_json_file(FLAGS.teacher_config_file)
  for config in (student_config, teacher_config):
    config.check_sequence_length(FLAGS.max_seq_length, name="--max_seq_length")
  objective = objective_from_flags(task_specific)
  distillation.check_distillable(student_config, teacher_config, objective, task_specific)
  layers = None
  if FLAGS.student_init == "teacher_layers":
    distillation.check_same_widths(student_config, teacher_config)
    layers = distillation.parse_student_layers(FLAGS.student_layers,
                                               teacher_config.num_hidden_layers,
                                               student_config.num_hidden_layers)
  # (compute_dtype, remove_padding), as the models take them.
  numerics = (shared_flags.compute_dtype_from_flags(FLAGS.use_tpu),
              shared_flags.remove_padding_from_flags(FLAGS.use_tpu))
  # First TensorFlow call: a multi-worker strategy must be set up before any op runs.
  strategy = tpu_flags.strategy_from_flags()
  check_teacher_checkpoint()
  if FLAGS.student_init not in ("teacher_layers", "random"):
    checkpoint.open_checkpoint(FLAGS.student_init)  # Exists and is readable.
  inputs = [("--teacher_config_file", FLAGS.teacher_config_file),
            ("--student_config_file", FLAGS.student_config_file)]
  run = task_distillation if task_specific else general_distillation
  return run(strategy, (student_config, teacher_config), objective, layers, numerics,
             inputs)


if __name__ == "__main__":
  for name in ("teacher_config_file", "teacher_checkpoint", "student_config_file",
               "output_dir"):
    flags.mark_flag_as_required(name)
  app.run(main)
