"""Flags of the predict step of run_classifier.py, run_squad.py and run_ner.py."""

from absl import flags

flags.DEFINE_bool("do_predict", False,
                  "Whether to run the model in inference mode on the test set (run_squad.py: "
                  "\"Whether to run eval on the dev set.\", on --predict_file, as the "
                  "original's; run_ner.py: whether to tag --predict_file).")
flags.DEFINE_integer("predict_batch_size", 8, "Total batch size for predict (run_squad.py: "
                     "for predictions).")
