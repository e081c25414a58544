"""The checkpoint command line: inspect, check, convert, from-hf, to-hf.

  python -m modeling.checkpoint inspect CKPT
  python -m modeling.checkpoint check --bert_config_file CONFIG CKPT \\
      [--task encoder|pretraining|classifier|squad|ner]
  python -m modeling.checkpoint from-hf HF_DIR OUTPUT_DIR [--allow_unused REGEX]
  python -m modeling.checkpoint to-hf --bert_config_file CONFIG CKPT OUTPUT_DIR \\
      [--task ...] [--vocab_file V | --spm_model_file M] [--labels_file L] \\
      [--do_lower_case B] [--multi_label]
  python -m modeling.checkpoint convert SRC DST --to original|hf|model-garden|keras-hub|tfhub \\
      [--bert_config_file CONFIG] [--vocab_file V] [--do_lower_case B] [--task ...] \\
      [--labels_file L] [--approximate_gelu] [--allow_unused REGEX]

CKPT and SRC may be a checkpoint of any format of `formats` (an original or Model
Garden checkpoint, a Hugging Face directory, a keras-hub preset), recognised from
its files and read in the original layout.
"""

import argparse
import sys

from modeling.checkpoint.expected import TASKS
from modeling.checkpoint.formats import FORMATS, convert
from modeling.checkpoint.hf_export import to_hf
from modeling.checkpoint.hf_import import from_hf
from modeling.checkpoint.inspection import check_checkpoint, inspect_checkpoint


def _bool(text):
  """"True"/"False" (any case), as the scripts' absl flags take them."""
  if text.lower() not in ("true", "false", "1", "0"):
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")
  return text.lower() in ("true", "1")


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m modeling.checkpoint",
                                   description="Inspect BERT checkpoints of any format, check "
                                               "them against a bert_config.json, convert them "
                                               "between formats.")
  commands = parser.add_subparsers(dest="command", required=True)
  command = commands.add_parser("inspect", help="names, shapes, dtypes, implied dimensions")
  command.add_argument("checkpoint")
  command = commands.add_parser("check", help="exit 0 when compatible, 1 with a report")
  command.add_argument("checkpoint")
  command.add_argument("--bert_config_file", required=True)
  command.add_argument("--task", choices=TASKS, default="encoder")
  unused_help = ("regex (re.search) of tensor names with no place in the output that may be "
                 "left out; repeatable")
  command = commands.add_parser("from-hf", help="a Hugging Face BERT directory to "
                                "bert_model.ckpt, bert_config.json, vocab.txt, labels.txt "
                                "(ALBERT: model.ckpt, albert_config.json, spiece.model)")
  command.add_argument("hf_dir")
  command.add_argument("output_dir")
  command.add_argument("--allow_unused", action="append", default=[], metavar="REGEX",
                       help=unused_help)
  command = commands.add_parser("to-hf", help="a checkpoint to model.safetensors, config.json "
                                "and the tokenizer files of a Hugging Face directory")
  command.add_argument("checkpoint")
  command.add_argument("output_dir")
  command.add_argument("--bert_config_file", required=True)
  command.add_argument("--task", choices=TASKS, default=None,
                       help="the transformers class to write (default: from the checkpoint's "
                            "heads)")
  command.add_argument("--vocab_file", help="vocab.txt to ship with tokenizer_config.json")
  command.add_argument("--spm_model_file", help="ALBERT: the SentencePiece model to ship as "
                       "spiece.model (instead of --vocab_file)")
  command.add_argument("--labels_file", help="class names, one a line (classifier, ner)")
  command.add_argument("--do_lower_case", type=_bool, default=True,
                       help="for tokenizer_config.json (default True)")
  command.add_argument("--allow_unused", action="append", default=[], metavar="REGEX",
                       help=unused_help)
  command.add_argument("--multi_label", action="store_true",
                       help="the classifier is run_classifier --multi_label's: problem_type "
                            "multi_label_classification")
  command = commands.add_parser("convert", help="a checkpoint of any format to another "
                                "(through the original layout)")
  command.add_argument("src", help="a checkpoint prefix or directory, format recognised "
                       "from its files")
  command.add_argument("dst", help="the directory to write, whole or not at all")
  command.add_argument("--to", required=True, choices=list(FORMATS))
  command.add_argument("--bert_config_file", help="for a source that holds no config "
                       "(original, Model Garden: what shapes cannot say, e.g. hidden_act)")
  command.add_argument("--vocab_file", help="for a source that holds no vocabulary")
  command.add_argument("--do_lower_case", type=_bool, default=None,
                       help="the tokenizer's lowercasing (default: the source's, else True)")
  command.add_argument("--task", choices=TASKS, default=None, help="--to=hf: the class")
  command.add_argument("--labels_file", help="--to=hf: class names, one a line")
  command.add_argument("--approximate_gelu", action="store_true",
                       help="--to=keras-hub: write a gelu_exact model with keras-hub's tanh "
                            "GELU (outputs then differ slightly); refused without it")
  command.add_argument("--seq_length", type=int, default=None,
                       help="--to=tfhub: the preprocessing model's default length (128)")
  command.add_argument("--allow_unused", action="append", default=[], metavar="REGEX",
                       help=unused_help)
  args = parser.parse_args(argv)
  try:
    if args.command == "inspect":
      inspect_checkpoint(args.checkpoint)
      return 0
    if args.command == "from-hf":
      print(from_hf(args.hf_dir, args.output_dir, args.allow_unused))
      return 0
    if args.command == "convert":
      for step in convert(args.src, args.dst, args.to, args.bert_config_file, args.vocab_file,
                          do_lower_case=args.do_lower_case, task=args.task,
                          labels_file=args.labels_file,
                          approximate_gelu=args.approximate_gelu or None,
                          seq_length=args.seq_length,
                          allow_unused=args.allow_unused or None):
        print(step)
      return 0
    if args.command == "to-hf":
      print(to_hf(args.checkpoint, args.bert_config_file, args.output_dir, args.task,
                  args.vocab_file, args.labels_file, args.do_lower_case, args.allow_unused,
                  args.spm_model_file, args.multi_label))
      return 0
    return 0 if check_checkpoint(args.bert_config_file, args.checkpoint, args.task) else 1
  except (FileNotFoundError, ValueError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(main())
