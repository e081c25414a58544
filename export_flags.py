"""Flags of the exports that run_classifier.py and run_ner.py write for serving:
the SavedModel (raw text), TFLite (raw text, the tokenizer inside) and ONNX (token ids)."""

import os

from absl import flags
import tensorflow as tf

from modeling.tasks import onnx_export, tflite_export

flags.DEFINE_string("export_dir", None,
                    "Ours: write a SavedModel serving raw text here (run_ner.py: one that tags "
                    "raw text and returns entities).")
flags.DEFINE_string("export_tflite", None,
                    "Ours: write a .tflite model here that takes raw UTF-8 text (the tokenizer "
                    "inside, tensorflow-text's TFLite ops: WordPiece, or with --spm_model_file "
                    "ALBERT's SentencePiece) and returns class probabilities and the label "
                    "(run_ner.py: the tag and character offsets of every word; WordPiece only). "
                    "See docs/deploy.md.")
flags.DEFINE_enum("tflite_quantization", "none", tflite_export.QUANTIZATIONS,
                  "Ours: --export_tflite weights: none (fp32) or dynamic (int8 weights, "
                  "dynamic-range quantization).")
flags.DEFINE_string("export_onnx", None,
                    "Ours: write an ONNX model here taking int32 input_ids, input_mask, "
                    "segment_ids [batch, length] (both dynamic) and returning the "
                    "probabilities (run_ner.py: the log_probs of every piece), for ONNX "
                    "Runtime.")
flags.DEFINE_enum("onnx_quantization", "none", onnx_export.QUANTIZATIONS,
                  "Ours: --export_onnx weights: none (fp32) or dynamic (ONNX Runtime's dynamic "
                  "int8 quantization).")

FLAGS = flags.FLAGS


def requested():
  """Whether any export flag is set (an export alone is a run's whole work)."""
  return bool(FLAGS.export_dir or FLAGS.export_tflite or FLAGS.export_onnx)


def check_file_exports(is_regression, preserve_unused_tokens, compute_dtype):
  """Refuses, before any work, the file exports that cannot take effect."""
  if (FLAGS.export_tflite or FLAGS.export_onnx) and compute_dtype != tf.float32:
    raise ValueError("--export_tflite and --export_onnx write float32 graphs (or int8 with "
                     "their --*_quantization=dynamic): export in a run without "
                     "--mixed_precision, beside --init_checkpoint of this one")
  for flag, path, quantization in (("tflite", FLAGS.export_tflite, FLAGS.tflite_quantization),
                                   ("onnx", FLAGS.export_onnx, FLAGS.onnx_quantization)):
    if quantization != "none" and not path:
      raise ValueError(f"--{flag}_quantization={quantization} needs --export_{flag}")
    if path and os.path.isdir(path):
      raise ValueError(f"--export_{flag}={path} is a directory; name the file to write")
  if FLAGS.export_tflite and is_regression:
    raise ValueError("--export_tflite exports a classifier; this task is a regression")
  if FLAGS.export_tflite and preserve_unused_tokens:
    raise ValueError("--preserve_unused_tokens is not supported with --export_tflite: the "
                     "exported tokenizer would split [unusedN] words")


def export_files(model, tflite_server):
  """Writes the --export_tflite and --export_onnx files of a trained classifier or tagger.

  Args:
    model: the trained task model.
    tflite_server: () -> its TFLite server (`tflite_export.TfliteClassifier`,
      `ner_tflite_export.TfliteTagger`), called only for --export_tflite.

  Returns:
    the paths written.
  """
  written = []
  if FLAGS.export_tflite:
    written.append(tflite_export.export(tflite_server(), FLAGS.export_tflite,
                                        FLAGS.tflite_quantization))
  return written + export_onnx(model)


def export_onnx(model):
  """Writes the --export_onnx file of a trained classifier or tagger; the paths written."""
  if not FLAGS.export_onnx:
    return []
  return [onnx_export.export(model, FLAGS.export_onnx, FLAGS.onnx_quantization)]
