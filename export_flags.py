"""Flag of the SavedModel that run_classifier.py and run_ner.py export for serving."""

from absl import flags

flags.DEFINE_string("export_dir", None,
                    "Ours: write a SavedModel serving raw text here (run_ner.py: one that tags "
                    "raw text and returns entities).")
