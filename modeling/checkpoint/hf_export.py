"""Checkpoints in the original layout out to Hugging Face BERT and ALBERT directories.

The inverse of `hf_import`: every tensor's bits are copied under the transformers
class's names (kernels transposed to PyTorch's [out, in]); what the class has no
place for is refused with its name unless `allow_unused` names it.

  to_hf(ckpt_path, bert_config_file, output_dir, task=None, vocab_file=None,
        labels_file=None, do_lower_case=True, allow_unused=(),
        spm_model_file=None, multi_label=False)       -> Conversion
"""

import json
import os
import re

import numpy as np

from modeling.checkpoint.expected import TASKS, expected_variables
from modeling.checkpoint.hf_import import Conversion, copy_file, write_directory, write_text
from modeling.checkpoint.hf_names import (ARCHITECTURES, FAMILIES, architecture_for,
                                          config_to_hf, family_of, infer_task, name_table)
from modeling.checkpoint.layout import compare, is_training_state
from modeling.checkpoint.loader import open_checkpoint
from modeling.checkpoint.safetensors_files import CONFIG_FILE, WEIGHTS_FILE, write_safetensors
from modeling.data import files, tokenization
from modeling.model.config import BertConfig


# The files of a Hugging Face model directory that an earlier conversion (or
# transformers' save_pretrained) leaves, for `write_directory`.
_HF_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json",
             "model-*-of-*.safetensors", "vocab.txt", "spiece.model", "tokenizer_config.json",
             "tokenizer.json", "special_tokens_map.json", "added_tokens.json",
             "generation_config.json")


def read_labels(labels_file, count):
  """The class names of `labels_file`, one a line, checked to number `count`."""
  with files.open(labels_file) as reader:
    labels = reader.read().splitlines()
  if len(labels) != count:
    raise ValueError(f"{labels_file}: {len(labels)} labels, but the checkpoint's classifier "
                     f"has {count} outputs (output_bias [{count}])")
  for number, label in enumerate(labels, 1):
    if not label.strip() or labels.index(label) != number - 1:
      raise ValueError(f"{labels_file}, line {number}: label {label!r} is "
                       f"{'empty' if not label.strip() else 'repeated'}")
  return labels


def _is_token_classifier(entries, labels_file):
  """Whether a checkpoint with `output_weights` and a pooler is run_ner's tagger.

  run_ner trains every variable but the pooler, so its checkpoints hold Adam slots
  of the head and none of the pooler. Without training state, the labels tell:
  NER tags are refused as sentence classes, since the two heads share their names.

  Raises:
    ValueError: no training state to tell, and every label is a tag.
  """
  if "output_weights/adam_m" in entries:
    return "bert/pooler/dense/kernel/adam_m" not in entries
  if labels_file and all(re.fullmatch(r"O|[BIESU]-.+", label)
                         for label in read_labels(labels_file, entries["output_bias"][0][0])):
    raise ValueError(f"--labels_file={labels_file} holds NER tags, but the checkpoint's "
                     "head could be a sentence classifier's or run_ner's (the same variable "
                     "names): give --task ner or --task classifier")
  return False


def to_hf(ckpt_path, bert_config_file, output_dir, task=None, vocab_file=None,
          labels_file=None, do_lower_case=True, allow_unused=(), spm_model_file=None,
          multi_label=False):
  """Converts a checkpoint in the original layout (ours or the original's, BERT or
  ALBERT as its config says) to a Hugging Face directory.

  Writes `model.safetensors`, `config.json` (`architectures`, `hidden_act`,
  `id2label`) and, with a vocabulary, `vocab.txt` (or ALBERT's `spiece.model`)
  and `tokenizer_config.json`.
  The training state (`global_step`, Adam slots, our loop's `bert_tf2/`
  variables) is left out; so is the pooler for the classes
  that have none (BertForQuestionAnswering, BertForTokenClassification,
  BertForMaskedLM: their heads do not read it). Nothing is written unless the
  whole conversion can go ahead.

  Args:
    ckpt_path: a checkpoint prefix, or a directory with a `checkpoint` file.
    bert_config_file: its bert_config.json.
    output_dir: where to write: absent, empty, or an earlier Hugging Face model
      directory of these files (`hf_import.write_directory`), replaced whole.
    task: "encoder" (BertModel), "pretraining" (BertForPreTraining, or
      BertForMaskedLM without cls/seq_relationship), "classifier"
      (BertForSequenceClassification), "squad" (BertForQuestionAnswering),
      "ner" (BertForTokenClassification); None: from the checkpoint's heads.
    vocab_file: the vocab.txt to ship, or None.
    spm_model_file: instead, an ALBERT config's SentencePiece model, shipped as
      spiece.model with tokenizer_class AlbertTokenizer.
    labels_file: the class names, one a line (run_classifier writes
      labels.txt), for classifier and ner; else LABEL_0, LABEL_1, ...
    do_lower_case: written to tokenizer_config.json.
    allow_unused: regexes of checkpoint names the class has no place for that
      may be left out (e.g. "^cls/" with task encoder).
    multi_label: the classifier is run_classifier --multi_label's (a sigmoid
      per label): written as problem_type multi_label_classification.

  Returns:
    A Conversion.
  """
  bert_config_file, output_dir = os.fspath(bert_config_file), os.fspath(output_dir)
  vocab_file = vocab_file and os.fspath(vocab_file)
  labels_file = labels_file and os.fspath(labels_file)
  spm_model_file = spm_model_file and os.fspath(spm_model_file)
  config = BertConfig.from_json_file(bert_config_file)
  family = family_of(config)
  if spm_model_file and (vocab_file or not config.is_albert):
    raise ValueError(f"--spm_model_file={spm_model_file}: "
                     + ("give --vocab_file or --spm_model_file, not both" if vocab_file else
                        f"{bert_config_file} is a BERT config; a SentencePiece model goes "
                        "with an ALBERT config (give --vocab_file)"))
  if vocab_file and config.is_albert:
    raise ValueError(f"--vocab_file={vocab_file}: {bert_config_file} is an ALBERT config, "
                     "whose transformers tokenizer (AlbertTokenizer) reads a SentencePiece "
                     "model: give --spm_model_file")
  if vocab_file or spm_model_file:
    flag, path = (("--spm_model_file", spm_model_file) if spm_model_file
                  else ("--vocab_file", vocab_file))
    config.check_vocab_size(len(tokenization.create_tokenizer(vocab_file,
                                                              spm_model_file=spm_model_file)
                                .vocab), path, flag)
  prefix, reader, entries = open_checkpoint(ckpt_path)
  names = {name for name in entries if not is_training_state(name)}
  if task is None:
    task = infer_task(names)
    if task == "classifier" and _is_token_classifier(entries, labels_file):
      task = "ner"
  if task not in TASKS:
    raise ValueError(f"task {task!r} is not one of {', '.join(TASKS)}")
  architecture = architecture_for(task, names, family.model_type)
  rows = name_table(config, architecture)
  needed = {ours for ours, _, _ in rows}
  num_labels = entries["output_bias"][0][0] if "output_bias" in entries else 2
  expected = expected_variables(config, None, num_labels)
  _, errors = compare({n: entries[n] for n in names & needed},
                      {n: expected[n] for n in needed}, prefix=prefix)
  if errors:
    raise ValueError(f"checkpoint {prefix} does not fit {bert_config_file} for "
                     f"{architecture}:\n  " + "\n  ".join(errors))
  notes = []
  patterns = [re.compile(p) for p in allow_unused]
  unused = []
  for name in sorted(names - needed):
    if name.startswith("bert/pooler/") and not ARCHITECTURES[architecture].pooler:
      notes.append(f"left out {name} ({architecture} has no pooler; its head does not read it)")
    elif any(p.search(name) for p in patterns):
      notes.append(f"left out {name} (--allow_unused)")
    else:
      unused.append(name)
  if unused:
    raise ValueError(f"checkpoint {prefix}: {architecture} (task {task}) has no place for "
                     f"{', '.join(unused)}; refused (nothing was written). Choose the --task "
                     "that holds them, or pass --allow_unused REGEX to leave them out")
  state = len(entries) - len(names)
  if state:
    notes.append(f"left out {state} training-state entries (global_step, Adam slots, "
                 "bert_tf2/ state)")
  labels = None
  if ARCHITECTURES[architecture].heads == ("classifier",):
    count = entries["output_bias"][0][0]
    labels = (read_labels(labels_file, count) if labels_file
              else [f"LABEL_{i}" for i in range(count)])
  if multi_label and labels is None:
    raise ValueError(f"multi_label: {architecture} (task {task}) has no sentence classifier "
                     "head to read as multi-label")
  hf_config = config_to_hf(config, architecture, labels, bert_config_file)
  if multi_label:
    hf_config["problem_type"] = "multi_label_classification"
  elif labels is not None and len(labels) == 1:
    hf_config["problem_type"] = "regression"  # run_classifier's STS-B head
  tensors = {}
  for ours, theirs, transposed in rows:
    value = reader.get_tensor(ours)
    tensors[theirs] = np.ascontiguousarray(value.T) if transposed else value

  writers = [(WEIGHTS_FILE, lambda path: write_safetensors(path, tensors)),
             (CONFIG_FILE, lambda path: write_text(
                 path, json.dumps(hf_config, indent=2, sort_keys=True) + "\n"))]
  tokenizer = FAMILIES["albert" if spm_model_file else "bert"]
  if vocab_file or spm_model_file:
    tokenizer_config = {"do_lower_case": bool(do_lower_case),
                        "tokenizer_class": tokenizer.tokenizer_class,
                        "model_max_length": config.max_position_embeddings}
    writers += [(tokenizer.vocab_file, lambda path: copy_file(vocab_file or spm_model_file,
                                                              path)),
                ("tokenizer_config.json", lambda path: write_text(
                    path, json.dumps(tokenizer_config, indent=2) + "\n"))]
  else:
    notes.append("no --vocab_file or --spm_model_file: no tokenizer files written")
  written = write_directory(output_dir, CONFIG_FILE, _HF_FILES, writers)
  return Conversion(prefix, architecture, task, len(tensors), written, notes)
