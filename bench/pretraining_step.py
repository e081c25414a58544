"""Pretraining step throughput (MLM + NSP + AdamWeightDecay), ours vs the original TF1 code.

  .venv/bin/python bench/pretraining_step.py [--config minilm] [--batch_size 32] \
      [--seq_length 128] [--dtypes float32,bfloat16] [--xla]

One run measures, one after the other: the machine's matmul peak (fp32 and bf16),
the original code's training step (fp32; TF1 has no bf16 path on CPU), and ours in
each dtype, through the same `Trainer.replica_step` that run_pretraining.py runs.
Prints examples/s, achieved FLOP/s as a fraction of the measured peak, and the ratios
to the original last.
"""

import os
import sys

import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402
from modeling import BertConfig  # noqa: E402
from modeling.tasks import pretraining  # noqa: E402
from modeling.training import optimization, steps  # noqa: E402


def train_step(config_dict, dtype, settings, use_xla=False):
  """run_pretraining.py's model and a tf.function of its train step on a fixed batch.

  Returns:
    (PretrainingModel, step: () -> loss tensor).
  """
  config = BertConfig.from_dict(config_dict)
  batch = common.pretraining_batch(settings["batch_size"], settings["seq_length"],
                                   settings["max_predictions"], config.vocab_size)
  batch = {k: tf.constant(v) for k, v in batch.items()}
  model = pretraining.PretrainingModel(config, compute_dtype=dtype)
  optimizer = optimization.create_optimizer("adamw", model.trainable_variables, 5e-5, 100000,
                                            10000)
  strategy = tf.distribute.get_strategy()
  step = steps.TrainStep(strategy, model.loss, optimizer, settings["batch_size"],
                         totals_fn=model.loss_totals, use_xla=use_xla)
  return model, tf.function(lambda: strategy.run(step.replica_step, args=(batch,))[0])


def ours_seconds_per_step(settings, dtype):
  """Seconds per training step of run_pretraining.py's model, optimizer and train step."""
  _, step = train_step(common.CONFIGS[settings["config"]], dtype, settings, settings["xla"])
  return common.time_calls(lambda: step().numpy(), settings["warmup"], settings["iterations"])


def main():
  parser = common.argument_parser(__doc__)
  parser.add_argument("--max_predictions", type=int, default=20)
  args = parser.parse_args()
  settings = vars(args)
  config = common.CONFIGS[args.config]
  flops = common.pretraining_flops(config, args.batch_size, args.seq_length,
                                   args.max_predictions)
  peaks = {dtype: common.matmul_peak(dtype) for dtype in ("float32", "bfloat16")}
  original = common.run_original("pretraining", **settings)["seconds_per_step"]
  ours = {dtype: ours_seconds_per_step(settings, tf.as_dtype(dtype))
          for dtype in args.dtypes.split(",")}

  print(f"pretraining step, {args.config}, batch {args.batch_size}, seq {args.seq_length}, "
        f"{args.max_predictions} predictions, xla={args.xla}; {flops / 1e9:.0f} GFLOP/step")
  common.report("examples", args.batch_size, flops, peaks, original, ours)


if __name__ == "__main__":
  main()
