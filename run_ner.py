"""Fine-tunes BERT for named-entity recognition (token classification) on CoNLL files.

The BERT paper's recipe: each word's first word piece carries its tag, a dense
layer on every token (run_classifier's `output_weights` / `output_bias`), long
sentences in overlapping windows (no word dropped), and the conlleval entity-level
precision, recall and F1. run_classifier's flags where they apply, plus the
files, --labels_file, --tag_scheme, --doc_stride, --export_dir and --export_tflite.

  python run_ner.py --do_train --do_eval \
    --train_file=$DATA/train.conll --eval_file=$DATA/dev.conll \
    --vocab_file=$BERT_DIR/vocab.txt --bert_config_file=$BERT_DIR/bert_config.json \
    --init_checkpoint=$BERT_DIR/bert_model.ckpt --max_seq_length=128 \
    --train_batch_size=32 --learning_rate=5e-5 --num_train_epochs=3.0 \
    --output_dir=/tmp/ner_output --export_dir=/tmp/ner_model
"""

import os

import numpy as np
from absl import app, flags, logging

import bucket_flags
import example_file_flags  # noqa: F401  (defines the flags)
import export_flags
import fine_tuning_flags
import finite_flags
import labels_flags  # noqa: F401  (defines the flags)
import model_flags  # noqa: F401  (defines the flags)
import predict_flags  # noqa: F401  (defines the flags)
import shared_flags
import tokenizer_flags
import tpu_flags
from modeling.data import files, ner_data
from modeling.data.tokenization import validate_case_matches_checkpoint
from modeling.model.config import BertConfig
from modeling.tasks import ner, ner_metrics, ner_serving, ner_tflite_export, serving
from modeling.training import array_predictor

flags.DEFINE_string("eval_file", None, "CoNLL file(s) to evaluate (comma-separated).")
flags.DEFINE_enum("tag_scheme", "auto", ["auto", *ner_data.SCHEMES],
                  "Tag scheme of the files: iob1 (CoNLL-2003 as published), iob2 (BIO), "
                  "bioes, or auto (detected from the tags).")

FLAGS = flags.FLAGS
finite_flags.require_finite_floats()
# run_squad.py's default is the original's 128; here a window's half by default.
FLAGS.set_default("doc_stride", None)

OUTPUT_FILES = ("labels.txt", "eval_results.txt", "eval_predictions.txt", "test_predictions.txt")


def check_flags(config):
  """Flag checks, the value at fault named; returns the window stride."""
  if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict or export_flags.requested()):
    raise ValueError("At least one of `do_train`, `do_eval`, `do_predict` or `export_dir` "
                     "(or `export_tflite`, `export_onnx`) must be set.")
  for wanted, name in ((FLAGS.do_train, "train_file"), (FLAGS.do_eval, "eval_file"),
                       (FLAGS.do_predict, "predict_file")):
    if wanted and not FLAGS[name].value:
      raise ValueError(f"--{name} is needed with --{'do_' + name.split('_')[0]}")
  config.check_sequence_length(FLAGS.max_seq_length, name="--max_seq_length")
  if FLAGS.max_seq_length < 3:
    raise ValueError(f"--max_seq_length={FLAGS.max_seq_length} leaves no room for text")
  window = FLAGS.max_seq_length - 2
  stride = max(window // 2, 1) if FLAGS.doc_stride is None else FLAGS.doc_stride
  if not 1 <= stride <= window:
    raise ValueError(f"--doc_stride={stride} must be between 1 and the window, "
                     f"--max_seq_length - 2 = {window} pieces (no piece may be skipped)")
  validate_case_matches_checkpoint(FLAGS.do_lower_case, FLAGS.init_checkpoint)
  if FLAGS.preserve_unused_tokens and FLAGS.export_dir:
    raise ValueError("--preserve_unused_tokens is not supported with --export_dir: the "
                     "exported in-graph tokenizer would split [unusedN] words")
  if FLAGS.spm_model_file and FLAGS.export_tflite:
    raise ValueError("--export_tflite is not supported with --spm_model_file in run_ner.py "
                     "(the TFLite tagger has WordPiece only; run_classifier.py's file takes "
                     "ALBERT's SentencePiece)")
  return stride


def read_data():
  """{split: sentences} of the files of the wanted steps (every file read first, so
  a bad one fails before training)."""
  data = {}
  if FLAGS.do_train:
    data["train"] = ner_data.read_files(FLAGS.train_file)
  if FLAGS.do_eval:
    data["eval"] = ner_data.read_files(FLAGS.eval_file)
  if FLAGS.do_predict:
    data["predict"] = ner_data.read_files(FLAGS.predict_file, require_tags=False)
  return data


def label_list(data):
  """The tags in label-id order, checked against labels.txt of an earlier run.

  Raises:
    ValueError: no source of labels, or labels that differ from the run's.
  """
  saved = os.path.join(FLAGS.output_dir, "labels.txt")
  if FLAGS.labels_file:
    labels = ner_data.read_labels(FLAGS.labels_file)
  elif "train" in data:
    labels = ner_data.labels_of(data["train"])
  elif files.exists(saved):
    labels = ner_data.read_labels(saved)
  else:
    raise ValueError(f"no labels: give --labels_file or --train_file (or an --output_dir "
                     f"with the labels.txt of a training run; {saved} does not exist)")
  if files.exists(saved) and ner_data.read_labels(saved) != labels:
    raise ValueError(f"the labels ({', '.join(labels)}) differ from those the model in "
                     f"--output_dir was trained with ({saved}); use another --output_dir")
  return labels


def check_tags(data, labels):
  """Detects or checks the tag scheme; refuses tags outside it or the labels."""
  tagged = [s for split in ("train", "eval", "predict") for s in data.get(split, ())
            if s.tags is not None]
  scheme = FLAGS.tag_scheme
  if scheme == "auto":
    scheme = ner_data.detect_scheme([s.tags for s in tagged] or [labels])
  logging.info("Tag scheme: %s; %d labels: %s", scheme, len(labels), " ".join(labels))
  if FLAGS.labels_file:  # Other labels are tags of the files, checked next.
    for label in labels:
      ner_data.check_tag(label, scheme, f"--labels_file={FLAGS.labels_file}")
  ner_data.check_tags(tagged, scheme, labels)


def predict_words(strategy, model, features, batch_size, buckets):
  """(predicted label id [W], log-probability of the file's tag [W]) of every word."""
  outputs = array_predictor.predict(strategy, model.predict_step, features.arrays, batch_size,
                               buckets, sequence_outputs=("predicted", "label_log_prob"),
                               jit_compile=tpu_flags.jit_whole_step_from_flags())
  index = (features.word_window, features.word_column)
  return outputs["predicted"][index], outputs["label_log_prob"][index]


def write_predictions(path, sentences, columns):
  """One line per word, `word column...` (space-separated), a blank line after each
  sentence: the input of the official conlleval script."""
  lines = []
  for sentence, *sentence_columns in zip(sentences, *columns):
    lines.extend(" ".join(parts) + "\n" for parts in zip(sentence.words, *sentence_columns))
    lines.append("\n")
  files.write_atomically(path, "".join(lines))


def evaluate(strategy, model, sentences, features, labels, global_step, buckets):
  """Entity-level scores and the mean loss of every word; writes nothing."""
  predicted, label_log_prob = predict_words(strategy, model, features, FLAGS.eval_batch_size,
                                            buckets)
  tags = ner_data.split_by_sentence([labels[i] for i in predicted], sentences)
  scores = ner_metrics.evaluate([s.tags for s in sentences], tags)
  results = {"eval_precision": scores["precision"], "eval_recall": scores["recall"],
             "eval_f1": scores["f1"], "eval_loss": float(-np.mean(label_log_prob)),
             "global_step": global_step}
  for entity_type, type_scores in scores["by_type"].items():
    for name in ("precision", "recall", "f1", "support"):
      results[f"eval_{name}/{entity_type}"] = type_scores[name]
  return results, tags


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  config = BertConfig.from_json_file(FLAGS.bert_config_file)
  stride = check_flags(config)
  compute_dtype = shared_flags.compute_dtype_from_flags(FLAGS.use_tpu)
  remove_padding = shared_flags.remove_padding_from_flags(FLAGS.use_tpu)
  export_flags.check_file_exports(False, FLAGS.preserve_unused_tokens, compute_dtype)
  buckets = bucket_flags.buckets_from_flags(FLAGS.max_seq_length)
  tokenizer, inputs = tokenizer_flags.tokenizer_from_flags(config)
  inputs += [("--labels_file", FLAGS.labels_file),
             ("--bert_config_file", FLAGS.bert_config_file)]
  for name in ("train_file", "eval_file", "predict_file"):
    inputs += [(f"--{name}", path) for path in (FLAGS[name].value or "").split(",")]
  shared_flags.check_outputs(OUTPUT_FILES, inputs)
  if FLAGS.export_dir:
    files.check_replaceable_directory(FLAGS.export_dir, serving.SAVED_MODEL_FILE,
                                      "--export_dir")
  data = read_data()
  labels = label_list(data)
  check_tags(data, labels)
  label_ids = {label: i for i, label in enumerate(labels)}
  max_seq_length = FLAGS.max_seq_length
  features = {split: ner_data.features(sentences, tokenizer, label_ids, max_seq_length, stride)
              for split, sentences in data.items()}

  train_arrays = ner_data.training_arrays(features["train"]) if FLAGS.do_train else None
  strategy = tpu_flags.strategy_from_flags()
  is_chief, model, optimizer, trainer, checkpoints, num_train_steps = (
      fine_tuning_flags.set_up_fine_tuning(
          strategy, len(train_arrays["input_ids"]) if FLAGS.do_train else 0,
          lambda: ner.NerModel(config, len(labels), FLAGS.use_tpu, compute_dtype, remove_padding),
          ner.FRESH_HEAD, FLAGS.init_checkpoint, "evaluate, predict or export"))
  if is_chief:
    files.write_atomically(os.path.join(FLAGS.output_dir, "labels.txt"),
                          "".join(f"{label}\n" for label in labels))

  if FLAGS.do_train:
    logging.info("***** Running training: %d sentences in %d windows, batch size %d, %d "
                 "steps *****", len(data["train"]), len(train_arrays["input_ids"]),
                 FLAGS.train_batch_size, num_train_steps)
    status = shared_flags.train_on_bucketed_arrays(trainer, train_arrays, buckets,
                                                   num_train_steps, checkpoints)
    if status is not None:
      return status

  if FLAGS.do_eval:
    sentences = data["eval"]
    results, tags = evaluate(strategy, model, sentences, features["eval"], labels,
                             int(optimizer.global_step.numpy()), buckets)
    logging.info("***** Eval results (%d sentences, %d words) *****\n%s", len(sentences),
                 sum(len(s.words) for s in sentences),
                 "\n".join(f"  {k} = {results[k]}" for k in sorted(results)))
    if is_chief:
      files.write_eval_results(os.path.join(FLAGS.output_dir, "eval_results.txt"), results)
      write_predictions(os.path.join(FLAGS.output_dir, "eval_predictions.txt"), sentences,
                        [[s.tags for s in sentences], tags])

  if FLAGS.do_predict:
    sentences = data["predict"]
    predicted, _ = predict_words(strategy, model, features["predict"], FLAGS.predict_batch_size,
                                 buckets)
    tags = ner_data.split_by_sentence([labels[i] for i in predicted], sentences)
    if is_chief:
      path = os.path.join(FLAGS.output_dir, "test_predictions.txt")
      write_predictions(path, sentences, [tags])
      logging.info("Wrote the tags of %d sentences to %s", len(sentences), path)

  if FLAGS.export_dir and is_chief:
    server = ner_serving.NerServer(model, FLAGS.vocab_file, FLAGS.do_lower_case,
                                   max_seq_length, stride, labels, FLAGS.spm_model_file)
    logging.info("Exported the serving model to %s", serving.save(
        server, FLAGS.export_dir, {"serving_default": server.tag, "tag": server.tag}))
  if is_chief:
    for path in export_flags.export_files(model, lambda: ner_tflite_export.TfliteTagger(
        model, FLAGS.vocab_file, FLAGS.do_lower_case, max_seq_length, stride, labels)):
      logging.info("Exported %s", path)
  return 0


if __name__ == "__main__":
  # And --vocab_file or --spm_model_file.
  for name in ("bert_config_file", "output_dir"):
    flags.mark_flag_as_required(name)
  app.run(main)
