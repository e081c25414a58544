"""Converts an existing export directory to TFLite and ONNX, without its training run.

  .venv/bin/python convert_export.py --from_export_dir=/tmp/topics_export \
    --export_tflite=/tmp/topics_int8.tflite --tflite_quantization=dynamic \
    --export_onnx=/tmp/topics.onnx

`--from_export_dir` is the `--export_dir` SavedModel of run_classifier.py or
run_ner.py; the files are those the scripts' `--export_tflite` and `--export_onnx`
write, from the same weights, settings (labels, buckets, thresholds, windows) and
vocabulary (`export_reading`).
"""

from absl import app, flags, logging
import tensorflow as tf

import export_flags
from modeling.tasks import export_reading

flags.DEFINE_string("from_export_dir", None,
                    "The --export_dir SavedModel of run_classifier.py or run_ner.py to convert.")

FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.export_dir:
    raise ValueError(f"--export_dir={FLAGS.export_dir}: --from_export_dir is a SavedModel "
                     "already (copy it); give --export_tflite or --export_onnx")
  if not (FLAGS.export_tflite or FLAGS.export_onnx):
    raise ValueError("Nothing to write: give --export_tflite, --export_onnx or both")
  export = export_reading.read_export(FLAGS.from_export_dir)
  export_flags.check_file_exports(export.settings["is_regression"], False, tf.float32)
  if FLAGS.export_tflite and export.settings["kind"] == "tagger" and export.settings["spm"]:
    raise ValueError(f"--export_tflite: {FLAGS.from_export_dir} is an ALBERT tagger; the "
                     "TFLite tagger has WordPiece only (run_ner.py refuses it too)")
  for path in export_flags.export_files(export.model,
                                        lambda: export_reading.tflite_server(export)):
    logging.info("Exported %s", path)
  return 0


if __name__ == "__main__":
  flags.mark_flag_as_required("from_export_dir")
  app.run(main)
