"""The scripts' flags: each defined in exactly one module, and every script exposing at
least the flags (and defaults) it exposed before they moved into modules by concern."""

import ast
import glob
import json
import os
import subprocess
import sys

import pytest

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Each script's flags (name: default) before the flags moved into modules by concern.
SURFACE = {
    "create_pretraining_data": {
        "do_lower_case": True, "do_whole_word_mask": False, "dupe_factor": 10, "input_file": None,
        "masked_lm_prob": 0.15, "masking": "static", "max_predictions_per_seq": 20,
        "max_seq_length": 128, "next_sentence": None, "ngram": 1, "output_file": None,
        "packing": "pairs", "preserve_unused_tokens": False, "random_seed": 12345,
        "short_seq_prob": 0.1, "sop": False, "spm_model_file": None, "vocab_file": None},
    "run_pretraining": {
        "bert_config_file": None, "do_eval": False, "do_train": False,
        "do_whole_word_mask": False, "dynamic_masking": False, "eval_batch_size": 8,
        "gcp_project": None, "init_checkpoint": None, "input_file": None,
        "iterations_per_loop": 1000, "keep_checkpoint_max": 5, "learning_rate": 5e-05,
        "length_buckets": "auto", "log_steps": 100, "masked_lm_prob": 0.15, "master": None,
        "max_eval_steps": 100, "max_predictions_per_seq": 20, "max_seq_length": 128,
        "mixed_precision": "none", "next_sentence": True, "num_accumulation_steps": 1,
        "num_tpu_cores": 8, "num_train_steps": 100000, "num_warmup_steps": 10000,
        "optimizer": "adamw", "output_dir": None, "preserve_unused_tokens": False,
        "save_checkpoints_steps": 1000, "seed": 12345, "spm_model_file": None, "tpu_name": None,
        "tpu_zone": None, "train_batch_size": 32, "use_tpu": False, "use_xla": False,
        "vocab_file": None},
    "run_classifier": {
        "bert_config_file": None, "data_dir": None, "do_eval": False, "do_lower_case": True,
        "do_predict": False, "do_train": False, "eval_batch_size": 8, "export_dir": None,
        "gcp_project": None, "init_checkpoint": None, "iterations_per_loop": 1000,
        "keep_checkpoint_max": 5, "learning_rate": 5e-05, "length_buckets": "auto",
        "log_steps": 100, "master": None, "max_seq_length": 128, "mixed_precision": "none",
        "num_accumulation_steps": 1, "num_tpu_cores": 8, "num_train_epochs": 3.0,
        "optimizer": "adamw", "output_dir": None, "predict_batch_size": 8,
        "preserve_unused_tokens": False, "save_checkpoints_steps": 1000, "seed": 12345,
        "spm_model_file": None, "task_name": None, "tpu_name": None, "tpu_zone": None,
        "train_batch_size": 32, "use_tpu": False, "use_xla": False, "vocab_file": None,
        "warmup_proportion": 0.1},
    "run_squad": {
        "bert_config_file": None, "do_eval": False, "do_lower_case": True, "do_predict": False,
        "do_train": False, "doc_stride": 128, "eval_batch_size": 8, "gcp_project": None,
        "init_checkpoint": None, "iterations_per_loop": 1000, "keep_checkpoint_max": 5,
        "learning_rate": 5e-05, "length_buckets": "auto", "log_steps": 100, "master": None,
        "max_answer_length": 30, "max_query_length": 64, "max_seq_length": 384,
        "mixed_precision": "none", "n_best_size": 20, "null_score_diff_threshold": 0.0,
        "num_accumulation_steps": 1, "num_tpu_cores": 8, "num_train_epochs": 3.0,
        "optimizer": "adamw", "output_dir": None, "predict_batch_size": 8, "predict_file": None,
        "preserve_unused_tokens": False, "save_checkpoints_steps": 1000, "seed": 12345,
        "spm_model_file": None, "tpu_name": None, "tpu_zone": None, "train_batch_size": 32,
        "train_file": None, "use_tpu": False, "use_xla": False, "verbose_logging": False,
        "version_2_with_negative": False, "vocab_file": None, "warmup_proportion": 0.1},
    "run_ner": {
        "bert_config_file": None, "do_eval": False, "do_lower_case": True, "do_predict": False,
        "do_train": False, "doc_stride": None, "eval_batch_size": 8, "eval_file": None,
        "export_dir": None, "gcp_project": None, "init_checkpoint": None,
        "iterations_per_loop": 1000, "keep_checkpoint_max": 5, "labels_file": None,
        "learning_rate": 5e-05, "length_buckets": "auto", "log_steps": 100, "master": None,
        "max_seq_length": 128, "mixed_precision": "none", "num_accumulation_steps": 1,
        "num_tpu_cores": 8, "num_train_epochs": 3.0, "optimizer": "adamw", "output_dir": None,
        "predict_batch_size": 8, "predict_file": None, "preserve_unused_tokens": False,
        "save_checkpoints_steps": 1000, "seed": 12345, "spm_model_file": None,
        "tag_scheme": "auto", "tpu_name": None, "tpu_zone": None, "train_batch_size": 32,
        "train_file": None, "use_tpu": False, "use_xla": False, "vocab_file": None,
        "warmup_proportion": 0.1},
    "run_distillation": {
        "alpha_ce": 5.0, "alpha_cos": 1.0, "alpha_label": 2.0, "alpha_mlm": 2.0,
        "bert_config_file": None, "data_dir": None, "do_eval": False, "do_lower_case": True,
        "do_train": False, "do_whole_word_mask": False, "dynamic_masking": False,
        "eval_batch_size": 8, "gcp_project": None, "init_checkpoint": None, "input_file": None,
        "iterations_per_loop": 1000, "keep_checkpoint_max": 5, "learning_rate": 5e-05,
        "length_buckets": "auto", "log_steps": 100, "masked_lm_prob": 0.15, "master": None,
        "max_eval_steps": 100, "max_predictions_per_seq": 20, "max_seq_length": 128,
        "mixed_precision": "none", "num_accumulation_steps": 1, "num_tpu_cores": 8,
        "num_train_epochs": 3.0, "num_train_steps": 100000, "num_warmup_steps": 10000,
        "optimizer": "adamw", "output_dir": None, "preserve_unused_tokens": False,
        "save_checkpoints_steps": 1000, "seed": 12345, "spm_model_file": None,
        "student_config_file": None, "student_init": "teacher_layers", "student_layers": None,
        "task_name": None, "teacher_checkpoint": None, "teacher_config_file": None,
        "temperature": 2.0, "tpu_name": None, "tpu_zone": None, "train_batch_size": 32,
        "use_tpu": False, "use_xla": False, "vocab_file": None, "warmup_proportion": 0.1},
    "extract_features": {
        "batch_size": 32, "bert_config_file": None, "do_lower_case": True,
        "init_checkpoint": None, "input_file": None, "layers": "-1,-2,-3,-4",
        "length_buckets": "auto", "master": None, "max_seq_length": 128, "num_tpu_cores": 8,
        "output_file": None, "preserve_unused_tokens": False, "spm_model_file": None,
        "use_one_hot_embeddings": False, "use_tpu": False, "vocab_file": None},
}

PRINT_FLAGS = """
import importlib, json, sys
from absl import flags
importlib.import_module(sys.argv[1])
refused = {}
for name in flags.FLAGS:
  if isinstance(flags.FLAGS[name].parser, flags.FloatParser):
    for value in ("inf", "-inf", "nan"):
      try:
        flags.FLAGS([sys.argv[1], f"--{name}={value}"])
      except flags.IllegalFlagValueError as error:
        refused.setdefault(name, []).append(str(error))
      flags.FLAGS.unparse_flags()
print(json.dumps({"flags": {name: flags.FLAGS[name].default for name in flags.FLAGS},
                  "floats": [name for name in flags.FLAGS
                             if isinstance(flags.FLAGS[name].parser, flags.FloatParser)],
                  "refused": refused, "tensorflow": "tensorflow" in sys.modules}))
"""


def flag_definitions():
  """[(flag name, module file)] of every DEFINE_* call in the top-level modules."""
  definitions = []
  for path in sorted(glob.glob(os.path.join(REPO_DIR, "*.py"))):
    with open(path, encoding="utf-8") as f:
      tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
      if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
          and node.func.attr.startswith("DEFINE_")):
        definitions.append((node.args[0].value, os.path.basename(path)))
  return definitions


def test_every_flag_is_defined_in_exactly_one_module():
  modules = {}
  for name, module in flag_definitions():
    modules.setdefault(name, []).append(module)
  assert {name: found for name, found in modules.items() if len(found) > 1} == {}
  assert set().union(*SURFACE.values()) <= set(modules)


def exposed_flags(script):
  result = subprocess.run([sys.executable, "-c", PRINT_FLAGS, script], capture_output=True,
                          text=True, cwd=REPO_DIR, env=dict(os.environ, PYTHONPATH=REPO_DIR),
                          timeout=300)
  assert result.returncode == 0, result.stderr[-4000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("script", sorted(SURFACE))
def test_each_script_keeps_its_flags_and_defaults(script):
  exposed = exposed_flags(script)
  assert {name: exposed["flags"].get(name, "absent") for name in SURFACE[script]} == (
      SURFACE[script])
  # Every float flag refuses inf, -inf and nan while the command line is parsed.
  assert exposed["floats"]
  assert {name: len(exposed["refused"].get(name, [])) for name in exposed["floats"]} == (
      dict.fromkeys(exposed["floats"], 3))
  for name, errors in exposed["refused"].items():
    assert errors[0] == f"flag --{name}=inf: --{name} must be a finite number"
  # create_pretraining_data.py runs without TensorFlow; its flag modules must too.
  assert exposed["tensorflow"] == (script != "create_pretraining_data")
