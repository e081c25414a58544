"""Flags of the input and output files of the scripts that read and write files, not
directories (create_pretraining_data.py, extract_features.py), and of the records the
pretraining scripts read.

Imports no TensorFlow: create_pretraining_data.py uses it.
"""

from absl import flags

flags.DEFINE_string("input_file", None,
                    "create_pretraining_data.py: input raw text file (or comma-separated list "
                    "of files and globs). run_pretraining.py, run_distillation.py: input TF "
                    "example files (can be a glob or comma separated). extract_features.py: "
                    "text, one `text_a` or `text_a ||| text_b` a line.")
flags.DEFINE_string("output_file", None,
                    "create_pretraining_data.py: output TF example file (or comma-separated "
                    "list of files); with several, each holds the instances of one chunk of "
                    "the documents. extract_features.py: where the JSON lines are written.")
