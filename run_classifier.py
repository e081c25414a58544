"""Fine-tunes BERT for sentence (pair) classification, as the original run_classifier.py.

Same flags and defaults as the original, plus --export_dir (a SavedModel taking raw
text) and ours of shared_flags.py; each flag is defined once, in the *_flags.py module
of its concern. Tasks: cola, mnli, mrpc, xnli (the original's), sst-2, qqp, qnli,
rte, wnli, sts-b (regression), and tsv (your own labelled TSV files).

  python run_classifier.py --task_name=tsv --do_train --do_eval --do_predict \
    --data_dir=../shared/data/topics --vocab_file=$BERT_DIR/vocab.txt \
    --bert_config_file=$BERT_DIR/bert_config.json \
    --init_checkpoint=$BERT_DIR/bert_model.ckpt --max_seq_length=128 \
    --train_batch_size=32 --learning_rate=5e-5 --num_train_epochs=3.0 \
    --output_dir=/tmp/topics_output --export_dir=/tmp/topics_model
"""

import os

import numpy as np
from absl import app, flags, logging

import bucket_flags
import classifier_task_flags  # noqa: F401  (defines the flags)
import export_flags
import fine_tuning_flags
import model_flags  # noqa: F401  (defines the flags)
import predict_flags  # noqa: F401  (defines the flags)
import shared_flags
import tokenizer_flags
import tpu_flags
from modeling.data import classifier_data, files
from modeling.data.tokenization import validate_case_matches_checkpoint
from modeling.model.config import BertConfig
from modeling.tasks import classifier, serving
from modeling.training import array_predictor

FLAGS = flags.FLAGS


def check_flags(config):
  """The original's flag checks, with the value at fault named."""
  if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict or export_flags.requested()):
    raise ValueError("At least one of `do_train`, `do_eval`, `do_predict` or `export_dir` "
                     "(or `export_tflite`, `export_onnx`) must be set.")
  config.check_sequence_length(FLAGS.max_seq_length, name="--max_seq_length")
  if FLAGS.max_seq_length < 3:
    raise ValueError(f"--max_seq_length={FLAGS.max_seq_length} leaves no room for text")
  validate_case_matches_checkpoint(FLAGS.do_lower_case, FLAGS.init_checkpoint)
  if FLAGS.preserve_unused_tokens and FLAGS.export_dir:
    raise ValueError("--preserve_unused_tokens is not supported with --export_dir: the "
                     "exported in-graph tokenizer would split [unusedN] words")


def write_test_results(path, predictions):
  """One row per test example: tab-separated class probabilities (or the value)."""
  files.write_atomically(path, "".join(
      "\t".join(str(p) for p in np.atleast_1d(row)) + "\n" for row in predictions))


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  config = BertConfig.from_json_file(FLAGS.bert_config_file)
  check_flags(config)
  buckets = bucket_flags.buckets_from_flags(FLAGS.max_seq_length)
  processor = classifier_data.get_processor(FLAGS.task_name, FLAGS.data_dir)
  label_list = None if processor.is_regression else processor.get_labels()
  tokenizer, tokenizer_files = tokenizer_flags.tokenizer_from_flags(config)
  shared_flags.check_outputs(
      ["eval_results.txt", "test_results.tsv", "labels.txt"],
      [("--data_dir", os.path.join(FLAGS.data_dir, name)) for name in processor.files.values()]
      + tokenizer_files + [("--bert_config_file", FLAGS.bert_config_file)])
  if FLAGS.export_dir:
    files.check_replaceable_directory(FLAGS.export_dir, serving.SAVED_MODEL_FILE,
                                      "--export_dir")
  examples = {split: processor.get_examples(FLAGS.data_dir, split)
              for split, wanted in (("train", FLAGS.do_train), ("dev", FLAGS.do_eval),
                                    ("test", FLAGS.do_predict)) if wanted}

  compute_dtype = shared_flags.compute_dtype_from_flags(FLAGS.use_tpu)
  export_flags.check_file_exports(processor.is_regression, FLAGS.spm_model_file,
                                  FLAGS.preserve_unused_tokens, compute_dtype)
  strategy = tpu_flags.strategy_from_flags()
  is_chief, model, optimizer, trainer, checkpoints, num_train_steps = (
      fine_tuning_flags.set_up_fine_tuning(
          strategy, len(examples.get("train", ())), lambda: classifier.ClassifierModel(
              config, len(label_list or [None]), processor.is_regression, FLAGS.use_tpu,
              compute_dtype),
          classifier.FRESH_HEAD, FLAGS.init_checkpoint, "evaluate, predict or export"))
  if is_chief and label_list is not None:
    files.write_atomically(os.path.join(FLAGS.output_dir, "labels.txt"),
                          "".join(f"{label}\n" for label in label_list))

  if FLAGS.do_train:
    logging.info("***** Running training: %d examples, batch size %d, %d steps *****",
                 len(examples["train"]), FLAGS.train_batch_size, num_train_steps)
    arrays = classifier_data.to_arrays(examples["train"], label_list,
                                       FLAGS.max_seq_length, tokenizer)
    status = shared_flags.train_on_bucketed_arrays(trainer, arrays, buckets, num_train_steps,
                                                   checkpoints)
    if status is not None:
      return status

  if FLAGS.do_eval:
    arrays = classifier_data.to_arrays(examples["dev"], label_list, FLAGS.max_seq_length,
                                       tokenizer)
    outputs = array_predictor.predict(strategy, model.predict_step, arrays, FLAGS.eval_batch_size,
                                 buckets)
    results = classifier.eval_metrics(outputs, arrays["label_ids"], processor.is_regression)
    results["global_step"] = int(optimizer.global_step.numpy())
    logging.info("***** Eval results (%d examples) *****\n%s", len(examples["dev"]),
                 "\n".join(f"  {k} = {results[k]}" for k in sorted(results)))
    if is_chief:
      files.write_eval_results(os.path.join(FLAGS.output_dir, "eval_results.txt"), results)

  if FLAGS.do_predict:
    arrays = classifier_data.to_arrays(examples["test"], label_list, FLAGS.max_seq_length,
                                       tokenizer)
    outputs = array_predictor.predict(strategy, model.predict_step, arrays,
                                 FLAGS.predict_batch_size, buckets)
    if is_chief:
      path = os.path.join(FLAGS.output_dir, "test_results.tsv")
      write_test_results(path, outputs["predictions"])
      logging.info("Wrote %d rows of predictions to %s", len(examples["test"]), path)

  if FLAGS.export_dir and is_chief:
    split = next(iter(examples), "train")
    sample = examples.get(split) or processor.get_examples(FLAGS.data_dir, split)
    pair = any(e.text_b for e in sample)
    server = serving.ClassifierServer(model, FLAGS.vocab_file, FLAGS.do_lower_case,
                                      FLAGS.max_seq_length, label_list, FLAGS.spm_model_file,
                                      buckets)
    logging.info("Exported the serving model (%s) to %s", "text_a, text_b" if pair else "text_a",
                 serving.export(server, FLAGS.export_dir, pair))
  if is_chief:
    for path in export_flags.export_classifier(model, FLAGS.vocab_file, FLAGS.do_lower_case,
                                               FLAGS.max_seq_length, label_list, buckets):
      logging.info("Exported %s", path)
  return 0


if __name__ == "__main__":
  # And --vocab_file or --spm_model_file.
  for name in ("data_dir", "task_name", "bert_config_file", "output_dir"):
    flags.mark_flag_as_required(name)
  app.run(main)
