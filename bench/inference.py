"""Encoder forward throughput, ours vs the original TF1 code, side by side.

  .venv/bin/python bench/inference.py [--config minilm] [--batch_size 32] [--seq_length 128] \
      [--dtypes float32,bfloat16] [--xla]

Prints sequences/s for the original (fp32) and for ours in each dtype, achieved
FLOP/s as a fraction of the matmul peak measured in the same run, and the ratios.
"""

import os
import sys

import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402
from modeling import BertConfig, BertModel  # noqa: E402


def ours_seconds_per_step(settings, dtype):
  config = BertConfig.from_dict(common.CONFIGS[settings["config"]])
  batch = common.pretraining_batch(settings["batch_size"], settings["seq_length"],
                                   settings["max_predictions"], config.vocab_size)
  model = BertModel(config, compute_dtype=dtype)
  inputs = [tf.constant(batch[k]) for k in ("input_ids", "input_mask", "segment_ids")]
  encode = tf.function(lambda ids, mask, types: model(ids, mask, types)["pooled_output"],
                       jit_compile=settings["xla"])
  return common.time_calls(lambda: encode(*inputs).numpy(), settings["warmup"],
                           settings["iterations"])


def main():
  args = common.argument_parser(__doc__).parse_args()
  settings = dict(vars(args), max_predictions=20)
  flops = common.encoder_flops(common.CONFIGS[args.config], args.batch_size, args.seq_length)
  peaks = {dtype: common.matmul_peak(dtype) for dtype in ("float32", "bfloat16")}
  original = common.run_original("inference", **settings)["seconds_per_step"]
  ours = {dtype: ours_seconds_per_step(settings, tf.as_dtype(dtype))
          for dtype in args.dtypes.split(",")}
  print(f"inference {args.config} batch {args.batch_size} seq {args.seq_length} "
        f"xla={args.xla}; {flops / 1e9:.0f} GFLOP/batch")
  common.report("sequences", args.batch_size, flops, peaks, original, ours)


if __name__ == "__main__":
  main()
