"""Flags of the classification task and its data, of run_classifier.py and of
run_distillation.py's task-specific distillation."""

from absl import flags

flags.DEFINE_string("task_name", None,
                    "The name of the task to train (run_distillation.py: task-specific "
                    "distillation on this task of run_classifier.py; default: general "
                    "distillation on --input_file).")
flags.DEFINE_string("data_dir", None, "The input data dir with the task's .tsv files "
                    "(run_distillation.py: with --task_name).")
