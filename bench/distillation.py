"""Distilling MiniLM-L6 into a 3-layer student, then fine-tuning all three on topics.

In one run:
  1. create_pretraining_data.py: static masked-LM records of ../shared/data/corpus
     (--packing=full_sentences --next_sentence=false, --dupe_factor=1);
  2. the teacher: MiniLM-L6-H384 (../shared/models) has no masked-LM head, which
     DistilBERT's soft targets need, so one (`cls/predictions`, the word embeddings
     it is tied to excepted) is fitted for --head_steps with MiniLM's encoder frozen
     (the library's Trainer, in this process): the teacher is MiniLM's encoder
     unchanged plus that head. (Training the whole model instead, as
     run_pretraining.py does, moved the encoder enough in 100 steps at lr 1e-4 to
     cost it 0.14 of dev accuracy after fine-tuning.)
  3. run_distillation.py: a 3-layer student (the teacher's config, 3 layers),
     initialised from teacher layers 0,2,4, distilled for --steps with DistilBERT's
     loss and defaults (alpha_ce 5, alpha_mlm 2, alpha_cos 1, T 2);
  4. the undistilled student: the same teacher layers 0,2,4, not trained further;
  5. run_classifier.py fine-tunes teacher, distilled and undistilled student on
     ../shared/data/topics with the same flags and reports dev accuracy;
  6. inference speed of the fine-tuned student against the fine-tuned teacher
     (the classifier's forward pass on dev batches), timed alternately in this
     process, fp32 and bf16.
Every training run uses --mixed_precision (bf16 by default: these CPUs have bf16
units); variables and checkpoints stay float32.

  .venv/bin/python bench/distillation.py [--steps 300] [--head_steps 300] [--seq_length 64] \
      [--finetune_epochs 2] [--mixed_precision bf16]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import common

SHARED = os.path.join(os.path.dirname(common.REPO_DIR), "shared")


def run(script, *args):
  """Runs one of our scripts; returns (log, wall seconds)."""
  start = time.time()
  result = subprocess.run([sys.executable, os.path.join(common.REPO_DIR, script), *args],
                          capture_output=True, text=True, cwd=common.REPO_DIR,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  if result.returncode != 0:
    raise RuntimeError(f"{script} failed:\n{result.stderr[-4000:]}")
  return result.stderr, time.time() - start


def examples_per_second(log):
  """Median examples/s of the log lines after the first (which includes tracing)."""
  rates = [float(r) for r in re.findall(r"([\d.]+) examples/s", log)]
  return statistics.median(rates[1:]) if len(rates) > 1 else float("nan")


def eval_results(directory):
  with open(os.path.join(directory, "eval_results.txt"), encoding="utf-8") as reader:
    return {k: float(v) for k, v in (line.strip().split(" = ") for line in reader)}


def write_json(path, value):
  with open(path, "w", encoding="utf-8") as writer:
    json.dump(value, writer, indent=2)
  return path


def fit_teacher_head(config_file, init_checkpoint, records, args, output_dir):
  """MiniLM with a masked-LM head fitted on `records`, its encoder frozen.

  Returns:
    (checkpoint prefix, examples/s).
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from modeling import checkpoint  # pylint: disable=import-outside-toplevel
  from modeling.data import pretraining_input  # pylint: disable=import-outside-toplevel
  from modeling.model.config import BertConfig  # pylint: disable=import-outside-toplevel
  from modeling.tasks import pretraining  # pylint: disable=import-outside-toplevel
  from modeling.training import loop, optimization  # pylint: disable=import-outside-toplevel
  from modeling.training import run_checkpoints, steps  # pylint: disable=import-outside-toplevel
  config = BertConfig.from_json_file(config_file)
  dtype = {"none": tf.float32, "bf16": tf.bfloat16}[args.mixed_precision]
  model = pretraining.PretrainingModel(config, compute_dtype=dtype, next_sentence=False)
  checkpoint.load(init_checkpoint, model, allow_missing=pretraining.FRESH_HEADS)
  head = [v for v in model.trainable_variables if v.name.startswith("cls/")]
  optimizer = optimization.create_optimizer("adamw", head, args.head_learning_rate,
                                            args.head_steps, args.head_steps // 10)
  trainer = loop.Trainer(steps.TrainStep(tf.distribute.get_strategy(), model.loss, optimizer,
                                         args.batch_size, totals_fn=model.loss_totals),
                         log_steps=20)
  checkpoints = run_checkpoints.CheckpointManager(output_dir, [model, optimizer, trainer.state])
  data = pretraining_input.PretrainingRecords(records, config, args.seq_length,
                                              args.max_predictions_per_seq, 1,
                                              next_sentence=False)
  start = time.time()
  trainer.train(data.dataset(args.batch_size, True), args.head_steps, checkpoints,
                args.head_steps)
  rate = args.head_steps * args.batch_size / (time.time() - start)
  return checkpoints.latest, rate


def undistilled_student(teacher_config, student_config, teacher_checkpoint, layers, prefix):
  """Saves the student of teacher layers `layers`, without distillation, at `prefix`."""
  from modeling import checkpoint  # pylint: disable=import-outside-toplevel
  from modeling.model.config import BertConfig  # pylint: disable=import-outside-toplevel
  from modeling.tasks import distillation  # pylint: disable=import-outside-toplevel
  model = distillation.MaskedLMDistillation(BertConfig.from_json_file(student_config),
                                            BertConfig.from_json_file(teacher_config))
  report = model.load_teacher(teacher_checkpoint)
  distillation.init_from_teacher_layers(model.student, model.teacher, layers,
                                        set(report.loaded))
  return checkpoint.save(prefix, model.student)


def inference_speed(models, dev_dir, vocab_file, seq_length, batch_size, rounds, dtype_name):
  """Sequences/s of each fine-tuned classifier's forward pass on the same dev batches.

  Args:
    models: {name: (bert_config.json, checkpoint)}.

  Returns:
    {name: sequences/s}, from the median over `rounds` alternating rounds.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from modeling import checkpoint  # pylint: disable=import-outside-toplevel
  from modeling.data import classifier_data  # pylint: disable=import-outside-toplevel
  from modeling.data.tokenization import FullTokenizer  # pylint: disable=import-outside-toplevel
  from modeling.model.config import BertConfig  # pylint: disable=import-outside-toplevel
  from modeling.tasks.classifier import ClassifierModel  # pylint: disable=import-outside-toplevel
  processor = classifier_data.get_processor("tsv", dev_dir)
  labels = processor.get_labels()
  arrays = classifier_data.to_arrays(processor.get_examples(dev_dir, "dev"), labels, seq_length,
                                     FullTokenizer(vocab_file))
  count = len(arrays["input_ids"]) // batch_size * batch_size
  batches = [{k: tf.constant(arrays[k][i:i + batch_size])
              for k in ("input_ids", "input_mask", "segment_ids")}
             for i in range(0, count, batch_size)]
  forward = {}
  for name, (config_file, ckpt) in models.items():
    model = ClassifierModel(BertConfig.from_json_file(config_file), len(labels),
                            compute_dtype=tf.as_dtype(dtype_name))
    checkpoint.load(ckpt, model)
    forward[name] = tf.function(lambda batch, model=model: model.head.logits(model.bert(
        batch["input_ids"], batch["input_mask"], batch["segment_ids"])["pooled_output"]))
  seconds = {name: [] for name in models}
  for round_index in range(rounds + 1):
    for name, fn in forward.items():
      start = time.perf_counter()
      for batch in batches:
        fn(batch).numpy()
      if round_index:  # Round 0 traces and warms up.
        seconds[name].append(time.perf_counter() - start)
  return {name: count / statistics.median(times) for name, times in seconds.items()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--corpus", default=os.path.join(SHARED, "data", "corpus",
                                                       "fortunes_corpus.txt"))
  parser.add_argument("--model_dir", default=os.path.join(SHARED, "models",
                                                          "minilm-l6-h384-uncased"))
  parser.add_argument("--topics", default=os.path.join(SHARED, "data", "topics"))
  parser.add_argument("--head_steps", type=int, default=300)
  parser.add_argument("--head_learning_rate", type=float, default=1e-3)
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--seq_length", type=int, default=64)
  parser.add_argument("--max_predictions_per_seq", type=int, default=10)
  parser.add_argument("--learning_rate", type=float, default=1e-4,
                      help="of the distillation")
  parser.add_argument("--finetune_epochs", type=float, default=2.0)
  parser.add_argument("--finetune_learning_rate", type=float, default=1e-4)
  parser.add_argument("--student_layers", default="0,2,4")
  parser.add_argument("--mixed_precision", default="bf16", choices=("none", "bf16"),
                      help="of every training run (inference is timed in both)")
  parser.add_argument("--rounds", type=int, default=7, help="inference timing rounds")
  parser.add_argument("--work_dir", default=None)
  args = parser.parse_args()
  work = args.work_dir or tempfile.mkdtemp(prefix="distillation_")
  os.makedirs(work, exist_ok=True)
  began = time.time()
  vocab = os.path.join(args.model_dir, "vocab.txt")
  teacher_config = os.path.join(args.model_dir, "bert_config.json")
  print(f"CPU: {common.cpu_description()}")
  print(f"settings: {json.dumps(vars(args))}")

  records = os.path.join(work, "corpus.tfrecord")
  sizes = [f"--max_seq_length={args.seq_length}",
           f"--max_predictions_per_seq={args.max_predictions_per_seq}"]
  _, seconds = run("create_pretraining_data.py", f"--input_file={args.corpus}",
                   f"--output_file={records}", f"--vocab_file={vocab}", *sizes,
                   "--packing=full_sentences", "--next_sentence=false", "--dupe_factor=1")
  from modeling.data import tfrecord  # pylint: disable=import-outside-toplevel
  count = sum(1 for _ in tfrecord.read_records(records))
  print(f"records: {count} sequences of {args.seq_length} ({seconds:.0f}s); distillation: "
        f"{args.steps} steps of {args.batch_size} = "
        f"{args.steps * args.batch_size / count:.2f} passes")

  start = time.time()
  teacher_checkpoint, rate = fit_teacher_head(
      teacher_config, os.path.join(args.model_dir, "bert_model.ckpt"), records, args,
      os.path.join(work, "teacher"))
  print(f"teacher masked-LM head: {args.head_steps} steps, encoder frozen, {rate:.1f} "
        f"examples/s ({time.time() - start:.0f}s)")
  precision = f"--mixed_precision={args.mixed_precision}"
  train = [f"--train_batch_size={args.batch_size}", f"--learning_rate={args.learning_rate}",
           "--log_steps=20", "--do_train", precision, *sizes]

  with open(teacher_config, encoding="utf-8") as reader:
    student = dict(json.load(reader), num_hidden_layers=len(args.student_layers.split(",")))
  student_config = write_json(os.path.join(work, "student_config.json"), student)
  student_dir = os.path.join(work, "student_distilled")
  log, seconds = run("run_distillation.py", f"--input_file={records}",
                     f"--output_dir={student_dir}", f"--teacher_config_file={teacher_config}",
                     f"--teacher_checkpoint={teacher_checkpoint}",
                     f"--student_config_file={student_config}",
                     f"--student_layers={args.student_layers}",
                     f"--num_train_steps={args.steps}", f"--num_warmup_steps={args.steps // 10}",
                     f"--save_checkpoints_steps={args.steps}", "--do_eval",
                     "--max_eval_steps=10", f"--eval_batch_size={args.batch_size}", *train)
  distilled = eval_results(student_dir)
  print(f"distillation: {args.steps} steps, {examples_per_second(log):.1f} examples/s "
        f"({seconds:.0f}s); on 10 batches of the training records: student masked-LM "
        f"accuracy {distilled['masked_lm_accuracy']:.4f}, teacher "
        f"{distilled['teacher_masked_lm_accuracy']:.4f}, cosine loss "
        f"{distilled['cosine_loss']:.4f}")

  layers = [int(x) for x in args.student_layers.split(",")]
  undistilled = undistilled_student(teacher_config, student_config, teacher_checkpoint, layers,
                                    os.path.join(work, "student_undistilled", "model.ckpt"))
  starts = {"teacher": (teacher_config, teacher_checkpoint),
            "distilled student": (student_config,
                                  os.path.join(student_dir, f"model.ckpt-{args.steps}")),
            "undistilled student": (student_config, undistilled)}
  accuracy, finetuned, rates = {}, {}, {}
  for name, (config, init) in starts.items():
    output_dir = os.path.join(work, "topics_" + name.replace(" ", "_"))
    log, seconds = run("run_classifier.py", "--task_name=tsv", f"--data_dir={args.topics}",
                       f"--vocab_file={vocab}", f"--bert_config_file={config}",
                       f"--init_checkpoint={init}", f"--output_dir={output_dir}", "--do_train",
                       "--do_eval", f"--max_seq_length={args.seq_length}",
                       f"--train_batch_size={args.batch_size}", "--eval_batch_size=32",
                       f"--learning_rate={args.finetune_learning_rate}",
                       f"--num_train_epochs={args.finetune_epochs}", "--log_steps=20",
                       "--save_checkpoints_steps=100000", precision)
    accuracy[name] = eval_results(output_dir)["eval_accuracy"]
    rates[name] = examples_per_second(log)
    finetuned[name] = (config, output_dir)
    print(f"fine-tuned {name}: dev accuracy {accuracy[name]:.4f}, training "
          f"{rates[name]:.1f} examples/s ({seconds:.0f}s)")

  speed = {}
  for dtype in ("float32", "bfloat16"):
    speed[dtype] = inference_speed(
        {name: finetuned[name] for name in ("teacher", "distilled student")}, args.topics,
        vocab, args.seq_length, args.batch_size, args.rounds, dtype)

  print(f"\nsummary (seq {args.seq_length}, batch {args.batch_size}; "
        f"{time.time() - began:.0f}s in all):")
  for name in starts:
    print(f"  {name:20s} dev accuracy {accuracy[name]:.4f} "
          f"({accuracy[name] / accuracy['teacher']:.1%} of the teacher's)")
  for dtype, rate in speed.items():
    print(f"  inference {dtype:8s}: teacher {rate['teacher']:7.1f} sequences/s, student "
          f"{rate['distilled student']:7.1f}: {rate['distilled student'] / rate['teacher']:.2f}x")
  print(f"  fine-tuning examples/s: student / teacher "
        f"{rates['distilled student'] / rates['teacher']:.2f}x")


if __name__ == "__main__":
  sys.path.insert(0, common.REPO_DIR)
  main()
