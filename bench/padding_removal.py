"""--remove_padding (and --jit_optimizer) against the padded encoder: the same fine-tuning
runs, side by side.

  .venv/bin/python bench/padding_removal.py [--epochs 1]

Two jobs on WNUT 2017 (../shared/data/wnut17) with MiniLM-L6-H384, batch 32, each run
three times, padded, with --remove_padding, and with --remove_padding --jit_optimizer,
one after the other, each in its own process:

- multi-label: run_classifier.py --multi_label on the entity types each sentence
  mentions (bench/multi_label.py's task; lr 2e-4): random batches (its default
  --nogroup_by_length), each padded to the multiple of 8 above its longest row;
- ner: run_ner.py with its defaults (batches grouped by length bucket, so little
  padding is left to remove; max_seq_length 64, lr 5e-5).

Prints the CPU, the training examples/s (the median of the logged intervals but the
first), the wall-clock of each process and the dev score, which differs between the
sides only as dropout draws (and the last bits of the compiled update) do.
"""

import argparse
import os

import common
import multi_label

SIDES = (("padded", []), ("--remove_padding", ["--remove_padding"]),
         ("+ --jit_optimizer", ["--remove_padding", "--jit_optimizer"]))


def jobs(args, data_dir):
  """{name: (script, flags, score key)}."""
  ner_dir = multi_label.WNUT_DIR
  bert_dir = multi_label.BERT_DIR
  model = [f"--vocab_file={bert_dir}/vocab.txt", f"--bert_config_file={bert_dir}/bert_config.json",
           f"--init_checkpoint={bert_dir}/bert_model.ckpt", "--do_train", "--do_eval",
           "--train_batch_size=32", "--eval_batch_size=32", f"--num_train_epochs={args.epochs}",
           "--log_steps=20", "--save_checkpoints_steps=100000"]
  return {
      "multi-label": ("run_classifier.py", [
          "--task_name=tsv", "--multi_label", f"--data_dir={data_dir}",
          f"--max_seq_length={multi_label.MAX_SEQ_LENGTH}", "--learning_rate=2e-4", *model],
          "eval_micro_f1"),
      "ner": ("run_ner.py", [
          f"--train_file={ner_dir}/train.conll", f"--eval_file={ner_dir}/dev.conll",
          "--max_seq_length=64", "--learning_rate=5e-5", *model], "eval_f1"),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--epochs", type=float, default=1.0)
  parser.add_argument("--output_dir", default="/tmp/padding_removal_bench")
  args = parser.parse_args()
  print(f"CPU: {common.cpu_description()}", flush=True)
  data_dir = os.path.join(args.output_dir, "data")
  multi_label.make_task(data_dir)
  rows = []
  for job, (script, flags, score) in jobs(args, data_dir).items():
    for side, extra in SIDES:
      results, examples_per_second, seconds = common.run_fine_tuning(
          script, os.path.join(args.output_dir, job), *flags, *extra)
      rows.append((job, side, examples_per_second, seconds, score, results[score]))
      print(f"{job} {side}: {examples_per_second:.1f} examples/s, {seconds:.0f} s, "
            f"{score} {results[score]:.4f}, {multi_label.load()}", flush=True)

  print(f"\nWNUT-17, MiniLM-L6-H384, batch 32, {args.epochs:g} epochs, fp32")
  print(f"  {'job':12s} {'side':19s} {'training':>16s} {'wall-clock':>10s}  dev score")
  for job, side, examples_per_second, seconds, score, value in rows:
    print(f"  {job:12s} {side:19s} {examples_per_second:6.1f} examples/s {seconds:9.0f}s  "
          f"{score} {value:.4f}")
  for job in dict.fromkeys(row[0] for row in rows):
    padded, *others = [row for row in rows if row[0] == job]
    for _, side, examples_per_second, seconds, _, _ in others:
      print(f"  {job}, {side}: training {examples_per_second / padded[2]:.2f}x as fast as "
            f"padded, the whole run {padded[3] / seconds:.2f}x")


if __name__ == "__main__":
  main()
