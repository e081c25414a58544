"""ALBERT against BERT of the same hidden size and depth: parameters and pretraining speed.

  .venv/bin/python bench/albert.py [--config base] [--embedding_size 128] \
      [--batch_size 32] [--seq_length 128] [--dtypes float32,bfloat16]

One run builds, for the BERT config of `--config` and its ALBERT twin (same H, L,
heads, I and vocabulary; embeddings of width E = --embedding_size projected to H,
one group of shared layers), run_pretraining.py's model (MLM + NSP/SOP heads),
AdamWeightDecay and train step, and times them one after the other on the same
fixed batch, in each dtype. Prints the CPU and its bf16/AMX flags, the parameter
counts, examples/s, and the ALBERT / BERT ratios last. ALBERT shares the layers'
parameters, not their compute: it runs every layer and does slightly more work
(the E -> H projection), so the speed ratio is near 1 by construction; what it
saves is memory, checkpoint size and optimizer work per step.
"""

import os
import sys

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402
import pretraining_step  # noqa: E402


def build(config_dict, dtype, settings):
  """run_pretraining.py's model and train step (`pretraining_step.train_step`); returns
  (trainable parameters, step)."""
  model, step = pretraining_step.train_step(config_dict, dtype, settings)
  parameters = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
  return parameters, step


def main():
  parser = common.argument_parser(__doc__)
  parser.set_defaults(config="base")
  parser.add_argument("--embedding_size", type=int, default=128)
  parser.add_argument("--max_predictions", type=int, default=20)
  args = parser.parse_args()
  settings = vars(args)
  bert = dict(common.CONFIGS[args.config], hidden_dropout_prob=0.1)
  albert = dict(bert, embedding_size=args.embedding_size, num_hidden_groups=1,
                inner_group_num=1)
  print(common.cpu_description())
  print(f"pretraining step (MLM + NSP/SOP, AdamWeightDecay), {args.config} dimensions "
        f"(H={bert['hidden_size']}, L={bert['num_hidden_layers']}, "
        f"V={bert['vocab_size']}), ALBERT E={args.embedding_size}, batch {args.batch_size}, "
        f"seq {args.seq_length}, {args.max_predictions} predictions")
  results = {}
  for dtype in args.dtypes.split(","):
    for name, config in (("BERT", bert), ("ALBERT", albert)):
      parameters, step = build(config, tf.as_dtype(dtype), settings)
      seconds = common.time_calls(lambda: step().numpy(), args.warmup, args.iterations)
      results[name, dtype] = (parameters, seconds)
      print(f"{name:6s} {dtype:8s} {parameters / 1e6:7.2f} M parameters  "
            f"{args.batch_size / seconds:6.1f} examples/s")
  for dtype in args.dtypes.split(","):
    (bert_parameters, bert_seconds), (albert_parameters, albert_seconds) = (
        results["BERT", dtype], results["ALBERT", dtype])
    print(f"ratio ALBERT / BERT {dtype}: parameters {albert_parameters / bert_parameters:.3f}x "
          f"({bert_parameters / albert_parameters:.1f}x fewer), examples/s "
          f"{bert_seconds / albert_seconds:.2f}x")


if __name__ == "__main__":
  main()
