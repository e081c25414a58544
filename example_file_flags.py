"""Flags of the example files of run_squad.py and run_ner.py, and of the windows their long
texts are read in."""

from absl import flags

flags.DEFINE_string("train_file", None,
                    "run_squad.py: SQuAD json for training. E.g., train-v1.1.json. run_ner.py: "
                    "CoNLL file(s) to train on (comma-separated).")
flags.DEFINE_string("predict_file", None,
                    "run_squad.py: SQuAD json for predictions. E.g., dev-v1.1.json or "
                    "test-v1.1.json. run_ner.py: CoNLL file(s) to tag (comma-separated; the tag "
                    "column is optional).")
flags.DEFINE_integer("doc_stride", 128,
                     "When splitting up a long document into chunks, how much stride to take "
                     "between chunks. run_ner.py: word pieces between the starts of the "
                     "windows of a sentence longer than max_seq_length - 2 pieces; default: "
                     "half a window.")
