"""The NER tagger's deployment runtimes side by side on WNUT 2017: SavedModel and TFLite.

  .venv/bin/python bench/deploy_ner.py [--epochs 2] [--latency_sentences 100]
      [--output_dir /tmp/deploy_ner_bench] [--finetuned DIR]

Fine-tunes MiniLM-L6-H384 (../shared/models/minilm-l6-h384-uncased) with run_ner.py on
../shared/data/wnut17 train.conll (--finetuned reuses a run's output_dir), then
exports its checkpoint with export-only runs of run_ner.py, as a user would:
  saved_model fp32   --export_dir (raw text in; tags and entities out)
  tflite fp32 / int8 --export_tflite (--tflite_quantization=dynamic)
  onnx fp32 / int8   --export_onnx (--onnx_quantization=dynamic) in ONNX Runtime, from
                     token ids: our FullTokenizer and `ner_data.features`' windows in
                     Python (timed with it), the settings the SavedModel keeps
and measures each in a fresh process of its own, one after the other in this run, on
the dev.conll sentences (each sentence's words joined by spaces, the raw text the
models take): entity F1 of the tags (conlleval, `ner_metrics.evaluate`, against the
gold tags), batch 32 throughput (sentences/s, file order) and batch 1 latency (p50,
p99) over the first --latency_sentences. Every runtime uses all cores. Prints the CPU
model and its bf16/AMX/VNNI flags, and the file sizes.
"""

import json
import os
import sys
import time

import numpy as np

import common
from deploy import fine_tune_export_measure, parser_of, size

SHARED_DIR = os.path.join(os.path.dirname(common.REPO_DIR), "shared")
BERT_DIR = os.path.join(SHARED_DIR, "models", "minilm-l6-h384-uncased")
WNUT_DIR = os.path.join(SHARED_DIR, "data", "wnut17")
MAX_SEQ_LENGTH, BATCH_SIZE = 64, 32
SIDES = ("saved_model fp32", "tflite fp32", "tflite int8", "onnx fp32", "onnx int8")
FILES = {"saved_model fp32": "saved_model_fp32", "tflite fp32": "ner_fp32.tflite",
         "tflite int8": "ner_int8.tflite", "onnx fp32": "ner_fp32.onnx",
         "onnx int8": "ner_int8.onnx"}


def model_flags():
  return [f"--vocab_file={BERT_DIR}/vocab.txt", f"--bert_config_file={BERT_DIR}/bert_config.json",
          f"--max_seq_length={MAX_SEQ_LENGTH}"]


def fine_tune(args):
  """run_ner.py --do_train --do_eval; returns its output_dir."""
  output_dir = os.path.join(args.output_dir, "finetune")
  results, examples_per_second, seconds = common.run_fine_tuning(
      "run_ner.py", output_dir, *model_flags(), f"--train_file={WNUT_DIR}/train.conll",
      f"--eval_file={WNUT_DIR}/dev.conll", f"--init_checkpoint={BERT_DIR}/bert_model.ckpt",
      "--do_train", "--do_eval", f"--train_batch_size={BATCH_SIZE}", "--learning_rate=5e-5",
      f"--num_train_epochs={args.epochs}", "--log_steps=20", "--save_checkpoints_steps=100000")
  print(f"fine-tuned {args.epochs:g} epochs in {seconds:.0f}s ({examples_per_second:.1f} "
        f"examples/s): dev entity F1 {results['eval_f1']:.4f} (--do_eval)", flush=True)
  return output_dir


def export_all(finetuned, root):
  """Writes every side's model under `root` by export-only runs beside the checkpoint."""
  path = {side: os.path.join(root, name) for side, name in FILES.items()}
  for flags in ([f"--export_dir={path['saved_model fp32']}",
                 f"--export_tflite={path['tflite fp32']}"],
                [f"--export_tflite={path['tflite int8']}", "--tflite_quantization=dynamic",
                 f"--export_onnx={path['onnx fp32']}"],
                [f"--export_onnx={path['onnx int8']}", "--onnx_quantization=dynamic"]):
    common.run_timed([sys.executable, os.path.join(common.REPO_DIR, "run_ner.py"),
                      *model_flags(), f"--output_dir={finetuned}", *flags])
  return path


def dev_set():
  """(raw texts, gold tags of each text's words) of dev.conll."""
  sys.path.insert(0, common.REPO_DIR)
  from modeling.data import ner_data  # pylint: disable=import-outside-toplevel
  sentences = ner_data.read_files(os.path.join(WNUT_DIR, "dev.conll"))
  return [" ".join(s.words) for s in sentences], [s.tags for s in sentences]


def tagger(side, path):
  """A function: list of str [B] -> (tags [B, W] of str, num_words [B])."""
  if side.startswith("saved_model"):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tensorflow_text  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    signature = tf.saved_model.load(path).signatures["serving_default"]

    def tag_saved_model(texts):
      outputs = signature(text=tf.constant(texts))
      return outputs["tags"].numpy(), outputs["num_words"].numpy()
    return tag_saved_model
  if side.startswith("onnx"):
    return onnx_tagger(path)
  # pylint: disable-next=import-outside-toplevel
  from ai_edge_litert.interpreter import InterpreterWithCustomOps
  from tensorflow_text import tflite_registrar  # pylint: disable=import-outside-toplevel
  interpreter = InterpreterWithCustomOps(
      custom_op_registerers=tflite_registrar.SELECT_TFTEXT_OPS, model_path=path,
      num_threads=os.cpu_count())
  runner = interpreter.get_signature_runner()

  def tag_tflite(texts):
    outputs = runner(text=np.array(texts, dtype=object))
    return outputs["tags"], outputs["num_words"]
  return tag_tflite


def onnx_tagger(path):
  """`tagger` of an ONNX file: the windows made in Python with the settings of the
  SavedModel beside it (labels, stride, casing), each word's tag its first piece's."""
  sys.path.insert(0, common.REPO_DIR)
  # pylint: disable=import-outside-toplevel
  import onnxruntime
  from modeling.data import ner_data
  from modeling.data.tokenization import FullTokenizer
  from modeling.tasks import serving
  saved_model = os.path.join(os.path.dirname(path), FILES["saved_model fp32"])
  with open(os.path.join(saved_model, serving.SETTINGS_FILE), encoding="utf-8") as reader:
    settings = json.load(reader)
  tokenizer = FullTokenizer(os.path.join(os.path.dirname(os.path.join(
      saved_model, serving.SETTINGS_FILE)), settings["tokenizer_file"]), settings["do_lower_case"])
  options = onnxruntime.SessionOptions()
  options.intra_op_num_threads = os.cpu_count()
  session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
  labels = np.array(settings["labels"])

  def tag_onnx(texts):
    sentences = [ner_data.Sentence(text.split(), None, "", []) for text in texts]
    features = ner_data.features(sentences, tokenizer, {}, settings["max_seq_length"],
                                 settings["stride"])
    inputs = {name: features.arrays[name].astype(np.int32)
              for name in ("input_ids", "input_mask", "segment_ids")}
    log_probs, = session.run(["log_probs"], inputs)  # [N, S, C]
    word_tags = labels[log_probs.argmax(-1)[features.word_window, features.word_column]]
    num_words = np.array([len(s.words) for s in sentences])
    rows = np.split(word_tags, np.cumsum(num_words)[:-1])
    width = max(1, num_words.max())
    return (np.array([[t.encode() for t in row] + [b""] * (width - len(row)) for row in rows]),
            num_words)
  return tag_onnx


def measure(side, path, latency_sentences):
  """In its own process: entity F1, throughput, latency of one side; prints JSON."""
  sys.path.insert(0, common.REPO_DIR)
  from modeling.tasks import ner_metrics  # pylint: disable=import-outside-toplevel
  texts, gold = dev_set()
  tag = tagger(side, path)
  tag(texts[:BATCH_SIZE])  # Warm-up (tracing, allocation).
  tag(texts[:1])
  predicted = []
  start = time.perf_counter()
  for i in range(0, len(texts), BATCH_SIZE):
    tags, num_words = tag(texts[i:i + BATCH_SIZE])
    predicted += [[t.decode() for t in row[:n]] for row, n in zip(tags, num_words)]
  throughput = len(texts) / (time.perf_counter() - start)
  latencies = []
  for text in texts[:latency_sentences]:
    start = time.perf_counter()
    tag([text])
    latencies.append(time.perf_counter() - start)
  print(json.dumps({"f1": ner_metrics.evaluate(gold, predicted)["f1"],
                    "throughput": throughput,
                    "p50_ms": 1000 * float(np.percentile(latencies, 50)),
                    "p99_ms": 1000 * float(np.percentile(latencies, 99)),
                    "tags": predicted}))


def main():
  parser = parser_of(__doc__, SIDES, 2.0, "/tmp/deploy_ner_bench", "run_ner.py")
  args = parser.parse_args()
  if args.side:
    measure(args.side[0], args.side[1], args.latency_sentences)
    return
  paths, results = fine_tune_export_measure(
      args, common.chosen_sides(parser, args.sides, SIDES), fine_tune, export_all,
      os.path.abspath(__file__), "f1")

  reference = results.get("saved_model fp32", {}).get("tags")
  print(f"\nWNUT 2017 dev ({len(dev_set()[0])} sentences), MiniLM-L6-H384 fine-tuned "
        f"{args.epochs:g} epochs, max_seq_length {MAX_SEQ_LENGTH}, {os.cpu_count()} threads")
  print(f"  {'':17s} {'entity F1':>9s} {'batch 32 sent/s':>15s} {'batch 1 p50':>11s} "
        f"{'p99':>8s} {'size MB':>8s} {'sentences tagged otherwise':>26s}")
  for side, result in results.items():
    other = (str(sum(a != b for a, b in zip(result["tags"], reference)))
             if reference is not None else "-")
    print(f"  {side:17s} {result['f1']:9.4f} {result['throughput']:15.1f} "
          f"{result['p50_ms']:9.1f}ms {result['p99_ms']:6.1f}ms {size(paths[side]) / 1e6:8.1f} "
          f"{other:>26s}")


if __name__ == "__main__":
  main()
