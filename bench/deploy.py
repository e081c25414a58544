"""Deployment runtimes side by side: our SavedModel, TFLite and ONNX Runtime, on topics.

  .venv/bin/python bench/deploy.py [--epochs 0.5] [--latency_sentences 100]
      [--output_dir /tmp/deploy_bench] [--finetuned DIR]

Fine-tunes MiniLM-L6-H384 (../shared/models/minilm-l6-h384-uncased) on
../shared/data/topics with run_classifier.py (--epochs, 0.5 by default where the
issue asks for 3: the shared 2-core CPU; --finetuned reuses a run's output_dir),
then exports its checkpoint (in a process of its own) as:
  saved_model fp32 / bf16   run_classifier.py --export_dir (bf16: --mixed_precision=bf16)
  tflite fp32 / int8        --export_tflite (--tflite_quantization=dynamic)
  onnx fp32 / int8          --export_onnx (--onnx_quantization=dynamic)
  hf onnx fp32 / int8       the same weights as transformers' BertForSequenceClassification
                            (our to_hf bridge), torch.onnx.export, ONNX Runtime's
                            quantize_dynamic: the path a PyTorch user takes
and measures each in a fresh process of its own, one after the other in this run, on
the 317 topics dev sentences: dev accuracy, batch 32 throughput over the dev set
(in file order), and batch 1 latency (p50, p99) over the first --latency_sentences.
The SavedModel and TFLite sides take raw text (the tokenizer inside); the ONNX sides
take token ids, so their times include our Python FullTokenizer and padding each
batch to its longest row; their "runtime alone" column times only ONNX Runtime's
`session.run` over the same batches. Every runtime uses all cores. Prints the CPU model and its
bf16/AMX/VNNI flags, and the file sizes. WNUT (NER) is not measured here.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

import common

SHARED_DIR = os.path.join(os.path.dirname(common.REPO_DIR), "shared")
BERT_DIR = os.path.join(SHARED_DIR, "models", "minilm-l6-h384-uncased")
DATA_DIR = os.path.join(SHARED_DIR, "data", "topics")
MAX_SEQ_LENGTH, BATCH_SIZE = 128, 32
SIDES = ("saved_model fp32", "saved_model bf16", "tflite fp32", "tflite int8", "onnx fp32",
         "onnx int8", "hf onnx fp32", "hf onnx int8")
FILES = {"saved_model fp32": "saved_model_fp32", "saved_model bf16": "saved_model_bf16",
         "tflite fp32": "model_fp32.tflite", "tflite int8": "model_int8.tflite",
         "onnx fp32": "model_fp32.onnx", "onnx int8": "model_int8.onnx",
         "hf onnx fp32": "hf_fp32.onnx", "hf onnx int8": "hf_int8.onnx"}


def fine_tune(args):
  """run_classifier.py --do_train --do_eval; returns its output_dir."""
  output_dir = os.path.join(args.output_dir, "finetune")
  results, examples_per_second, seconds = common.run_fine_tuning(
      "run_classifier.py", output_dir, "--task_name=tsv", f"--data_dir={DATA_DIR}",
      f"--vocab_file={BERT_DIR}/vocab.txt", f"--bert_config_file={BERT_DIR}/bert_config.json",
      f"--init_checkpoint={BERT_DIR}/bert_model.ckpt", "--do_train", "--do_eval",
      f"--max_seq_length={MAX_SEQ_LENGTH}", f"--train_batch_size={BATCH_SIZE}",
      f"--num_train_epochs={args.epochs}", "--log_steps=20", "--save_checkpoints_steps=100000",
      f"--eval_batch_size={BATCH_SIZE}")
  print(f"fine-tuned {args.epochs:g} epochs in {seconds:.0f}s ({examples_per_second:.1f} "
        f"examples/s): dev accuracy {results['eval_accuracy']:.4f}", flush=True)
  return output_dir


def run_classifier_export(finetuned, output_dir, *flags):
  """An export-only run_classifier.py beside the fine-tuned run's last checkpoint."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  common.run_timed([sys.executable, os.path.join(common.REPO_DIR, "run_classifier.py"),
                    "--task_name=tsv", f"--data_dir={DATA_DIR}",
                    f"--vocab_file={BERT_DIR}/vocab.txt",
                    f"--bert_config_file={BERT_DIR}/bert_config.json",
                    f"--init_checkpoint={tf.train.latest_checkpoint(finetuned)}",
                    f"--output_dir={output_dir}", f"--max_seq_length={MAX_SEQ_LENGTH}", *flags])


def export_all(finetuned, root):
  """Writes every side's model under `root`, each by the script flags a user would run."""
  path = {side: os.path.join(root, name) for side, name in FILES.items()}
  run_classifier_export(finetuned, os.path.join(root, "run_fp32"),
                        f"--export_dir={path['saved_model fp32']}",
                        f"--export_tflite={path['tflite fp32']}",
                        f"--export_onnx={path['onnx fp32']}")
  run_classifier_export(finetuned, os.path.join(root, "run_int8"),
                        f"--export_tflite={path['tflite int8']}",
                        "--tflite_quantization=dynamic", f"--export_onnx={path['onnx int8']}",
                        "--onnx_quantization=dynamic")
  run_classifier_export(finetuned, os.path.join(root, "run_bf16"),
                        f"--export_dir={path['saved_model bf16']}", "--mixed_precision=bf16")
  common.run_timed([sys.executable, os.path.abspath(__file__), "--hf_export", finetuned,
                    path["hf onnx fp32"], path["hf onnx int8"]])
  return path


def hf_export(finetuned, fp32_path, int8_path):
  """In its own process: our checkpoint as transformers' model, exported by torch."""
  import tempfile  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel
  # pylint: disable-next=import-outside-toplevel
  from onnxruntime.quantization import QuantType, quantize_dynamic
  sys.path.insert(0, common.REPO_DIR)
  from modeling import checkpoint  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory() as hf_dir:
    checkpoint.to_hf(finetuned, os.path.join(BERT_DIR, "bert_config.json"), hf_dir,
                     task="classifier", labels_file=os.path.join(finetuned, "labels.txt"))
    model = transformers.BertForSequenceClassification.from_pretrained(hf_dir).eval()
  ids = torch.ones([2, 16], dtype=torch.long)
  names = ["input_ids", "attention_mask", "token_type_ids"]
  axes = {name: {0: "batch", 1: "length"} for name in names}
  torch.onnx.export(model, (ids, ids, torch.zeros_like(ids)), fp32_path, input_names=names,
                    output_names=["logits"], dynamic_axes=axes, opset_version=17,
                    dynamo=False)
  quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8)


def size(path):
  if os.path.isdir(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, names in os.walk(path)
               for f in names)
  return os.path.getsize(path)


def dev_set():
  sys.path.insert(0, common.REPO_DIR)
  from modeling.data import classifier_data  # pylint: disable=import-outside-toplevel
  processor = classifier_data.get_processor("tsv", DATA_DIR)
  examples = processor.get_examples(DATA_DIR, "dev")
  labels = processor.get_labels()
  return [e.text_a for e in examples], np.array([labels.index(e.label) for e in examples])


def raw_text_predictor(side, path):
  """A function: list of str [B] -> probabilities [B, C], for the raw-text sides."""
  threads = os.cpu_count()
  if side.startswith("saved_model"):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tensorflow_text  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    signature = tf.saved_model.load(path).signatures["serving_default"]
    return lambda texts: signature(text_a=tf.constant(texts))["probabilities"].numpy()
  # pylint: disable-next=import-outside-toplevel
  from ai_edge_litert.interpreter import InterpreterWithCustomOps
  from tensorflow_text import tflite_registrar  # pylint: disable=import-outside-toplevel
  interpreter = InterpreterWithCustomOps(
      custom_op_registerers=tflite_registrar.SELECT_TFTEXT_OPS, model_path=path,
      num_threads=threads)
  classify = interpreter.get_signature_runner("classify")
  return lambda texts: classify(text_a=np.array(texts, dtype=object))["probabilities"]


def ids_predictor(side, path):
  """The same for the ONNX sides: FullTokenizer, then ONNX Runtime on token ids."""
  import onnxruntime  # pylint: disable=import-outside-toplevel
  sys.path.insert(0, common.REPO_DIR)
  from modeling.data import classifier_data, tokenization  # pylint: disable=import-outside-toplevel
  tokenizer = tokenization.FullTokenizer(os.path.join(BERT_DIR, "vocab.txt"))
  options = onnxruntime.SessionOptions()
  options.intra_op_num_threads = os.cpu_count()
  session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
  names = ([i.name for i in session.get_inputs()] if side.startswith("hf")
           else ["input_ids", "input_mask", "segment_ids"])

  def predict(texts):
    """Also adds the seconds of `session.run` to predict.runtime_seconds."""
    examples = [classifier_data.InputExample(str(i), t, None, None) for i, t in enumerate(texts)]
    arrays = classifier_data.to_arrays(examples, None, MAX_SEQ_LENGTH, tokenizer)
    width = int(arrays["input_mask"].sum(1).max())
    dtype = np.int64 if side.startswith("hf") else np.int32
    feed = {name: arrays[ours][:, :width].astype(dtype) for name, ours in
            zip(names, ("input_ids", "input_mask", "segment_ids"))}
    start = time.perf_counter()
    outputs = session.run(None, feed)[0]
    predict.runtime_seconds += time.perf_counter() - start
    if side.startswith("hf"):  # logits -> probabilities
      outputs = np.exp(outputs - outputs.max(1, keepdims=True))
      outputs /= outputs.sum(1, keepdims=True)
    return outputs

  predict.runtime_seconds = 0.0
  return predict


def measure(side, path, latency_sentences):
  """In its own process: accuracy, throughput, latency of one side; prints JSON."""
  texts, labels = dev_set()
  predict = (ids_predictor if "onnx" in side else raw_text_predictor)(side, path)
  predict(texts[:BATCH_SIZE])  # Warm-up (tracing, allocation).
  predict(texts[:1])
  predict.runtime_seconds = 0.0
  start = time.perf_counter()
  probabilities = np.concatenate([predict(texts[i:i + BATCH_SIZE])
                                  for i in range(0, len(texts), BATCH_SIZE)])
  seconds = time.perf_counter() - start
  throughput = len(texts) / seconds
  # The raw-text sides tokenize inside: the runtime is the whole call.
  runtime_throughput = len(texts) / (getattr(predict, "runtime_seconds", 0.0) or seconds)
  latencies = []
  for text in texts[:latency_sentences]:
    start = time.perf_counter()
    predict([text])
    latencies.append(time.perf_counter() - start)
  print(json.dumps({"accuracy": float((probabilities.argmax(1) == labels).mean()),
                    "throughput": throughput, "runtime_throughput": runtime_throughput,
                    "p50_ms": 1000 * float(np.percentile(latencies, 50)),
                    "p99_ms": 1000 * float(np.percentile(latencies, 99)),
                    "probabilities": probabilities.tolist()}))


def fine_tune_export_measure(args, sides, fine_tune_fn, export_fn, script, score):
  """Prints the CPU, fine-tunes (unless --finetuned), exports under --output_dir/models,
  then measures each side by `script --side SIDE PATH` in a process of its own.

  Returns:
    ({side: model path}, {side: the side's JSON result}), the sides that ran.
  """
  print(f"CPU: {common.cpu_description()}", flush=True)
  finetuned = args.finetuned or fine_tune_fn(args)
  root = os.path.join(args.output_dir, "models")
  shutil.rmtree(root, ignore_errors=True)
  os.makedirs(root)
  paths = export_fn(finetuned, root)
  results = {}
  for side in sides:
    try:
      stdout, _, _ = common.run_timed([sys.executable, script, "--side", side, paths[side],
                                       f"--latency_sentences={args.latency_sentences}"])
    except (RuntimeError, subprocess.SubprocessError) as error:
      print(f"{side}: not measured: {str(error)[-500:]}", flush=True)
      continue
    results[side] = common.last_json_line(stdout)
    print(f"{side}: {score} {results[side][score]:.4f}, load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
  return paths, results


def parser_of(doc, sides, epochs, output_dir, script):
  """The flags of a deployment benchmark whose module docstring is `doc`."""
  parser = argparse.ArgumentParser(description=doc.splitlines()[0])
  parser.add_argument("--epochs", type=float, default=epochs)
  parser.add_argument("--latency_sentences", type=int, default=100)
  parser.add_argument("--output_dir", default=output_dir)
  parser.add_argument("--finetuned", help=f"a {script} output_dir to export from")
  parser.add_argument("--sides", default=",".join(sides))
  parser.add_argument("--side", nargs=2, help=argparse.SUPPRESS)
  return parser


def main():
  parser = parser_of(__doc__, SIDES, 0.5, "/tmp/deploy_bench", "run_classifier.py")
  parser.add_argument("--hf_export", nargs=3, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.side:
    measure(args.side[0], args.side[1], args.latency_sentences)
    return
  if args.hf_export:
    hf_export(*args.hf_export)
    return
  paths, results = fine_tune_export_measure(
      args, common.chosen_sides(parser, args.sides, SIDES), fine_tune, export_all,
      os.path.abspath(__file__), "accuracy")

  reference = np.array(results["saved_model fp32"]["probabilities"])
  print(f"\ntopics dev (317 sentences), MiniLM-L6-H384 fine-tuned {args.epochs:g} epochs, "
        f"max_seq_length {MAX_SEQ_LENGTH}, {os.cpu_count()} threads")
  print(f"  {'':17s} {'accuracy':>8s} {'batch 32 seq/s':>14s} {'vs ours fp32':>12s} "
        f"{'runtime alone':>13s} "
        f"{'batch 1 p50':>11s} {'p99':>8s} {'size MB':>8s} {'max |p - ours fp32|':>19s} "
        f"{'rows > 1e-4':>11s}")
  base = results["saved_model fp32"]["throughput"]
  for side, result in results.items():
    gap = np.abs(np.array(result["probabilities"]) - reference).max(1)  # [317]
    print(f"  {side:17s} {result['accuracy']:8.4f} {result['throughput']:14.1f} "
          f"{result['throughput'] / base:11.2f}x {result['runtime_throughput']:13.1f} "
          f"{result['p50_ms']:9.1f}ms "
          f"{result['p99_ms']:6.1f}ms {size(paths[side]) / 1e6:8.1f} {gap.max():19.2e} "
          f"{int((gap > 1e-4).sum()):11d}")


if __name__ == "__main__":
  main()
