"""The Hugging Face side of the benchmarks: `transformers` on PyTorch, as its users run it.

  .venv/bin/pip install torch==2.13.0 transformers   # the peer only; not a dependency

The model starts from the same checkpoint as ours, converted by our own bridge
(`modeling.checkpoint.to_hf`, tested against transformers) and read back with
`from_pretrained`; the head is new, as run_classifier's. Batches are padded to
their longest example, as `DataCollatorWithPadding` and
`DataCollatorForTokenClassification` do. Fine-tuning uses the hyper-parameters
of ours: AdamW with weight decay 0.01 except LayerNorm and biases, Adam epsilon
1e-6, 10% linear warmup then linear decay, global-norm clipping at 1.0, dropout 0.1.
"""

import os
import re
import tempfile
import time

import numpy as np

# Arrays of ours that are not inputs of the transformers models.
_NOT_INPUTS = ("label_weights", "is_real_example")


def available():
  """True when torch and transformers import; else says how to install them."""
  try:
    import torch  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    import transformers  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    print("(Hugging Face not measured: pip install torch==2.13.0 transformers)")
    return False
  return True


def load_model(class_name, bert_dir, num_labels, seed=12345, **config):
  """transformers.<class_name> with the encoder of `bert_dir`'s bert_model.ckpt.

  Args:
    class_name: "BertForSequenceClassification" or "BertForTokenClassification".
    bert_dir: a directory in the original layout (bert_config.json, bert_model.ckpt).
    num_labels: classes of the new head.
    seed: torch's seed, for the new head's initialization and dropout.
    **config: more of its config (problem_type="multi_label_classification").
  """
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel
  from modeling import checkpoint  # pylint: disable=import-outside-toplevel
  torch.manual_seed(seed)
  torch.set_num_threads(os.cpu_count())
  with tempfile.TemporaryDirectory() as hf_dir:
    checkpoint.to_hf(os.path.join(bert_dir, "bert_model.ckpt"),
                     os.path.join(bert_dir, "bert_config.json"), hf_dir, task="encoder")
    transformers.logging.set_verbosity_error()  # "newly initialized" head: expected.
    return getattr(transformers, class_name).from_pretrained(hf_dir, num_labels=num_labels,
                                                             **config)


def dynamic_batch(arrays, rows, labels=True):
  """torch int64 tensors of `arrays[k][rows]`, sequences cut to the longest example.

  Args:
    arrays: {name: np.ndarray [N, S] or [N]}: `input_ids`, `input_mask`, `segment_ids`
      and the labels (`label_ids`; -100 where a label does not count, as transformers;
      float [N, C] multi-label targets).
    rows: int array [b] of the rows of the batch.
    labels: whether to keep `label_ids`.
  """
  import torch  # pylint: disable=import-outside-toplevel
  width = int(arrays["input_mask"][rows].sum(1).max())
  batch = {}
  for name, value in arrays.items():
    if name in _NOT_INPUTS or (name == "label_ids" and not labels):
      continue
    value = value[rows]
    if value.dtype.kind == "f":  # Multi-label targets [b, C] of 0/1 stay float.
      batch[name] = torch.from_numpy(value)
      continue
    batch[name] = torch.from_numpy(value[:, :width] if value.ndim == 2 else value).long()
  return batch


def _forward(model, batch, bf16=False):
  """The model's outputs; with bf16 under `torch.autocast` in bfloat16 (float32 weights,
  as our --mixed_precision=bf16)."""
  import torch  # pylint: disable=import-outside-toplevel
  with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
    outputs = model(input_ids=batch["input_ids"], attention_mask=batch["input_mask"],
                    token_type_ids=batch["segment_ids"], labels=batch.get("label_ids"))
  return outputs


def fine_tune(model, arrays, epochs, batch_size=32, learning_rate=5e-5, seed=12345, log=print,
              bf16=False):
  """Fine-tunes `model` for int(N / batch_size * epochs) steps, each epoch in a new order
  (bf16: forward and backward under `torch.autocast` in bfloat16).

  Returns:
    seconds of each step (forward, backward, clipping, update), a list.
  """
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel
  count = len(arrays["input_ids"])
  steps = int(count / batch_size * epochs)
  decayed = re.compile("LayerNorm|bias")
  groups = [{"params": [p for n, p in model.named_parameters() if not decayed.search(n)],
             "weight_decay": 0.01},
            {"params": [p for n, p in model.named_parameters() if decayed.search(n)],
             "weight_decay": 0.0}]
  optimizer = torch.optim.AdamW(groups, lr=learning_rate, eps=1e-6)
  schedule = transformers.get_linear_schedule_with_warmup(optimizer, int(0.1 * steps), steps)
  rng = np.random.RandomState(seed)
  order = np.concatenate([rng.permutation(count) for _ in range(int(np.ceil(epochs)) + 1)])
  model.train()
  times = []
  for step in range(steps):
    batch = dynamic_batch(arrays, order[step * batch_size:(step + 1) * batch_size])
    start = time.perf_counter()
    loss = _forward(model, batch, bf16).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad()
    times.append(time.perf_counter() - start)
    if step % 20 == 0:
      log(f"hugging face: step {step}/{steps} loss {loss.item():.4f}")
  return times


def predict(model, arrays, batch_size=32, bf16=False):
  """The logits of every row, in order, without dropout: float32 [N, C] for a
  sequence classifier, [N, S, C] (zero past each batch's longest) per token."""
  import torch  # pylint: disable=import-outside-toplevel
  model.eval()
  count = len(arrays["input_ids"])
  width = arrays["input_ids"].shape[1]
  outputs = []
  with torch.no_grad():
    for start in range(0, count, batch_size):
      batch = dynamic_batch(arrays, np.arange(start, min(start + batch_size, count)),
                            labels=False)
      logits = _forward(model, batch, bf16).logits.float().numpy()
      if logits.ndim == 3:
        logits = np.pad(logits, [(0, 0), (0, width - logits.shape[1]), (0, 0)])
      outputs.append(logits)
  return np.concatenate(outputs)
