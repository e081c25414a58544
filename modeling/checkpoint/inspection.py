"""What a checkpoint holds and whether it fits a config: `inspect` and `check`.

Any format of `formats` is read, in the original layout, and named.

  inspect_checkpoint(ckpt_path)                    prints format, names, shapes, dimensions
  check_checkpoint(config_file, ckpt_path, task)   -> True when it fits
"""

import re
import sys

import numpy as np

from modeling.checkpoint import expected
from modeling.checkpoint.layout import READ_ERRORS, compare, describe
from modeling.checkpoint.formats import FORMATS, open_any
from modeling.model.config import BertConfig


def implied_dimensions(entries):
  """The model dimensions a checkpoint implies, from its variable shapes."""
  dims = {}
  shape = lambda name: entries[name][0] if name in entries else None  # noqa: E731
  if shape("bert/embeddings/word_embeddings"):
    dims["vocab_size"], dims["hidden_size"] = shape("bert/embeddings/word_embeddings")
  if shape("bert/embeddings/position_embeddings"):
    dims["max_position_embeddings"] = shape("bert/embeddings/position_embeddings")[0]
  if shape("bert/embeddings/token_type_embeddings"):
    dims["type_vocab_size"] = shape("bert/embeddings/token_type_embeddings")[0]
  layers = {int(m.group(1)) for n in entries for m in [re.match(r"bert/encoder/layer_(\d+)/", n)]
            if m}
  if layers:
    dims["num_hidden_layers"] = max(layers) + 1
  if shape("bert/encoder/layer_0/intermediate/dense/kernel"):
    dims["intermediate_size"] = shape("bert/encoder/layer_0/intermediate/dense/kernel")[1]
  dims.update(_implied_albert_dimensions(entries))
  heads = [head for head, key in (("pretraining MLM", "cls/predictions/output_bias"),
                                  ("pretraining NSP", "cls/seq_relationship/output_bias"),
                                  ("classifier", "output_bias"),
                                  ("SQuAD span", "cls/squad/output_bias")) if key in entries]
  if "output_bias" in entries:
    dims["num_labels"] = entries["output_bias"][0][0]
  dims["heads"] = ", ".join(heads) or "none (encoder only)"
  dims["optimizer slots"] = "yes" if any(n.endswith("/adam_m") for n in entries) else "no"
  return dims


def _implied_albert_dimensions(entries):
  """ALBERT's dimensions from its shared-layer names (none for a BERT checkpoint).

  The number of layers is not in an ALBERT checkpoint: groups are shared by
  num_hidden_layers / num_hidden_groups layers each.
  """
  blocks = [m.groups() for n in entries
            for m in [re.match(r"bert/encoder/transformer/group_(\d+)/inner_group_(\d+)/", n)]
            if m]
  if not blocks:
    return {}
  dims = {"model": "ALBERT (factorized embeddings, shared layers)",
          "num_hidden_groups": max(int(g) for g, _ in blocks) + 1,
          "inner_group_num": max(int(i) for _, i in blocks) + 1}
  if "bert/embeddings/word_embeddings" in entries:
    dims["embedding_size"] = entries["bert/embeddings/word_embeddings"][0][1]
  kernel = "bert/encoder/transformer/group_0/inner_group_0/ffn_1/intermediate/dense/kernel"
  if kernel in entries:
    dims["hidden_size"], dims["intermediate_size"] = entries[kernel][0]
  return dims


def inspect_checkpoint(ckpt_path, out=sys.stdout):
  """Prints the format, names, shapes, dtypes, parameter count and implied dimensions."""
  name, prefix, reader, entries = open_any(ckpt_path)
  print(f"checkpoint: {prefix}", file=out)
  print(f"format: {name} ({FORMATS[name].description})", file=out)
  total = 0
  for name in sorted(entries):
    shape, dtype = entries[name]
    total += int(np.prod(shape)) if not name.endswith(("/adam_m", "/adam_v")) else 0
    print(f"  {name:70s} {describe(shape, dtype)}", file=out)
  print(f"variables: {len(entries)}; parameters (without optimizer slots): {total:,}", file=out)
  if "global_step" in entries:
    print(f"global_step: {int(reader.get_tensor('global_step'))}", file=out)
  for key, value in implied_dimensions(entries).items():
    print(f"{key}: {value}", file=out)


def check_checkpoint(config_file, ckpt_path, task="encoder", out=sys.stdout):
  """Checks that a checkpoint fits a config for a task; returns True when it does.

  Reads every tensor, so truncated or corrupt data files are found too.
  """
  config = BertConfig.from_json_file(config_file)
  name, prefix, reader, entries = open_any(ckpt_path)
  print(f"format: {name} ({FORMATS[name].description})", file=out)
  num_labels = entries["output_bias"][0][0] if "output_bias" in entries else 2
  report, errors = compare(entries, expected.expected_variables(config, task, num_labels),
                           expected.fresh_heads(task), prefix)
  for name in sorted(entries):  # Adam slots and global_step too: a resume reads them.
    try:
      value = reader.get_tensor(name)
    except READ_ERRORS as error:
      errors.append(f"unreadable tensor {name} ({error.__class__.__name__}): corrupt data file")
      continue
    if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
      errors.append(f"non-finite values in {name}")
  print(report, file=out)
  if errors:
    print(f"INCOMPATIBLE with {config_file} for task {task}:", file=out)
    for line in errors:
      print(f"  {line}", file=out)
    return False
  suffix = f"; initialised fresh: {', '.join(report.missing)}" if report.missing else ""
  print(f"OK: {prefix} fits {config_file} for task {task}{suffix}", file=out)
  return True
