"""Encoder forward throughput, ours vs the original TF1 code, side by side.

  .venv/bin/python bench/inference.py [--config minilm] [--batch_size 32] [--seq_length 128] \
      [--dtypes float32,bfloat16] [--xla]

Prints sequences/s for the original (fp32) and for ours in each dtype, and the
ratios, from one run.
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
  original = common.run_original("inference", **settings)["seconds_per_step"]
  ours = {dtype: ours_seconds_per_step(settings, tf.as_dtype(dtype))
          for dtype in args.dtypes.split(",")}
  per_second = lambda seconds: args.batch_size / seconds  # noqa: E731
  print(f"inference {args.config} batch {args.batch_size} seq {args.seq_length} "
        f"xla={args.xla}")
  print(f"original fp32: {per_second(original):8.1f} sequences/s")
  for dtype, seconds in ours.items():
    print(f"ours {dtype}: {per_second(seconds):8.1f} sequences/s")
  for dtype, seconds in ours.items():
    print(f"ratio ours {dtype} / original fp32: {original / seconds:.2f}x")


if __name__ == "__main__":
  main()
