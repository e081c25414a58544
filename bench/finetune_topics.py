"""Fine-tuning the real MiniLM checkpoint on ../shared/data/topics: ours vs Hugging Face.

  .venv/bin/pip install torch==2.13.0 transformers   # the peer only; not a dependency
  .venv/bin/python bench/finetune_topics.py [--epochs 3] [--output_dir /tmp/finetune_topics]

Both start from the same weights (../shared/models/minilm-l6-h384-uncased, read by name
from the TF1 checkpoint into the PyTorch model), the same data, tokenization and
hyper-parameters (3 epochs, seq 128, batch 32, lr 5e-5, 10% linear warmup then linear
decay, weight decay 0.01 except LayerNorm and biases, Adam eps 1e-6, clip 1.0, dropout
0.1), one after the other in this run. Prints dev accuracy and training examples/s of each.
"""

import argparse
import os
import re
import subprocess
import sys
import time

import numpy as np

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_DIR)
SHARED_DIR = os.path.join(os.path.dirname(REPO_DIR), "shared")
BERT_DIR = os.path.join(SHARED_DIR, "models", "minilm-l6-h384-uncased")
DATA_DIR = os.path.join(SHARED_DIR, "data", "topics")

from modeling import classifier_data  # noqa: E402
from modeling.tokenization import FullTokenizer  # noqa: E402


def run_ours(args):
  """Runs run_classifier.py; returns (dev accuracy, training examples/s)."""
  output_dir = os.path.join(args.output_dir, "ours")
  command = [sys.executable, os.path.join(REPO_DIR, "run_classifier.py"), "--task_name=tsv",
             f"--data_dir={DATA_DIR}", f"--vocab_file={BERT_DIR}/vocab.txt",
             f"--bert_config_file={BERT_DIR}/bert_config.json",
             f"--init_checkpoint={BERT_DIR}/bert_model.ckpt", f"--output_dir={output_dir}",
             "--do_train", "--do_eval", "--max_seq_length=128", "--train_batch_size=32",
             "--learning_rate=5e-5", f"--num_train_epochs={args.epochs}", "--log_steps=20",
             "--save_checkpoints_steps=100000", "--eval_batch_size=32"]
  start = time.time()
  result = subprocess.run(command, capture_output=True, text=True)
  if result.returncode != 0:
    raise RuntimeError(result.stderr[-4000:])
  logged = [float(x) for x in re.findall(r"([\d.]+) examples/s", result.stderr)]
  results = dict(line.split(" = ") for line in
                 open(os.path.join(output_dir, "eval_results.txt")).read().splitlines())
  print(f"ours: wall {time.time() - start:.0f}s")
  # The first logged interval includes tracing; the rest are steady state.
  return float(results["eval_accuracy"]), float(np.median(logged[1:] or logged))


def tf1_to_torch_state(model):
  """Copies the TF1 checkpoint's variables into a transformers BertModel by name."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  reader = tf.train.load_checkpoint(os.path.join(BERT_DIR, "bert_model.ckpt"))
  state = {}
  for name in reader.get_variable_to_shape_map():
    key = name.replace("bert/", "bert.", 1).replace("/", ".")
    key = re.sub(r"layer_(\d+)", r"layer.\1", key)
    key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta",
                                                                      "LayerNorm.bias")
    key = key.replace("word_embeddings", "word_embeddings.weight").replace(
        "token_type_embeddings", "token_type_embeddings.weight").replace(
            "position_embeddings", "position_embeddings.weight")
    value = reader.get_tensor(name)
    if key.endswith(".kernel"):
      key, value = key[:-len("kernel")] + "weight", value.T
    state[key] = torch.from_numpy(np.ascontiguousarray(value))
  missing, unexpected = model.load_state_dict(state, strict=False)
  # BertForTokenClassification has no pooler: its checkpoint weights go unused.
  assert all(k.startswith("bert.pooler.") and model.bert.pooler is None
             for k in unexpected), unexpected
  assert all(k.startswith("classifier.") or "position_ids" in k for k in missing), missing


def features(split, labels, tokenizer):
  processor = classifier_data.get_processor("tsv", DATA_DIR)
  examples = processor.get_examples(DATA_DIR, split)
  rows = [classifier_data.convert_example(e, labels, 128, tokenizer) for e in examples]
  return {k: np.array([getattr(r, k) for r in rows]) for k in
          ("input_ids", "input_mask", "segment_ids", "label_id")}


def run_hugging_face(args):
  """Fine-tunes transformers' BertForSequenceClassification; (dev accuracy, examples/s)."""
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel
  torch.manual_seed(12345)
  labels = classifier_data.get_processor("tsv", DATA_DIR).get_labels()
  tokenizer = FullTokenizer(os.path.join(BERT_DIR, "vocab.txt"), do_lower_case=True)
  train, dev = features("train", labels, tokenizer), features("dev", labels, tokenizer)
  config = transformers.BertConfig.from_json_file(os.path.join(BERT_DIR, "bert_config.json"))
  config.hidden_act = "gelu"  # transformers' "gelu" is the exact (erf) GELU
  config.num_labels = len(labels)
  model = transformers.BertForSequenceClassification(config)
  tf1_to_torch_state(model)
  steps = int(len(train["label_id"]) / 32 * args.epochs)
  decay = [p for n, p in model.named_parameters() if not re.search("LayerNorm|bias", n)]
  no_decay = [p for n, p in model.named_parameters() if re.search("LayerNorm|bias", n)]
  optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=5e-5, eps=1e-6)
  schedule = transformers.get_linear_schedule_with_warmup(optimizer, int(0.1 * steps), steps)
  rng = np.random.RandomState(12345)
  order = np.concatenate([rng.permutation(len(train["label_id"]))
                          for _ in range(int(np.ceil(args.epochs)) + 1)])
  model.train()
  times = []
  for step in range(steps):
    index = order[step * 32:(step + 1) * 32]
    batch = {k: torch.from_numpy(v[index]).long() for k, v in train.items()}
    start = time.time()
    loss = model(input_ids=batch["input_ids"], attention_mask=batch["input_mask"],
                 token_type_ids=batch["segment_ids"], labels=batch["label_id"]).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad()
    times.append(time.time() - start)
    if step % 20 == 0:
      print(f"hugging face: step {step}/{steps} loss {loss.item():.4f}", flush=True)
  model.eval()
  correct = 0
  with torch.no_grad():
    for start in range(0, len(dev["label_id"]), 32):
      batch = {k: torch.from_numpy(v[start:start + 32]).long() for k, v in dev.items()}
      logits = model(input_ids=batch["input_ids"], attention_mask=batch["input_mask"],
                     token_type_ids=batch["segment_ids"]).logits
      correct += int((logits.argmax(-1) == batch["label_id"]).sum())
  return correct / len(dev["label_id"]), 32 / float(np.median(times[5:]))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--epochs", type=float, default=3.0)
  parser.add_argument("--output_dir", default="/tmp/finetune_topics")
  args = parser.parse_args()
  ours = run_ours(args)
  peer = run_hugging_face(args)
  print(f"topics dev accuracy, MiniLM-L6-H384, {args.epochs:g} epochs, seq 128, batch 32, "
        "lr 5e-5, fp32")
  print(f"hugging face (PyTorch): accuracy {peer[0]:.4f}  training {peer[1]:.1f} examples/s")
  print(f"ours:                   accuracy {ours[0]:.4f}  training {ours[1]:.1f} examples/s")


if __name__ == "__main__":
  main()
