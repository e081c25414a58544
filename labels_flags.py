"""Flag of a task's label list, for run_classifier.py (the tsv task) and run_ner.py."""

from absl import flags

flags.DEFINE_string("labels_file", None,
                    "The labels, one per line, in label-id order. run_ner.py: the tags; "
                    "default: those of --train_file, sorted (or labels.txt in "
                    "--output_dir). run_classifier.py (--task_name=tsv): default: those of "
                    "train.tsv, sorted.")
