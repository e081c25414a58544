"""Makes the demo's data from the documentation of Python's own standard library.

No download and nothing from ../shared: every Python installation carries these
docstrings. Writes, under the output directory:
  corpus.txt           pretraining text: one sentence per line, a blank line
                       between documents (one document per docstring)
  vocab.txt            a word-piece vocabulary: special tokens, frequent words,
                       every character and its "##" continuation
  bert_config.json     a small BERT (2 layers, hidden 64)
  topics/{train,dev,test}.tsv
                       sentence classification: which part of the standard
                       library (text, math, files, network) a sentence documents

  python demo/make_data.py OUTPUT_DIR
"""

import collections
import importlib
import inspect
import json
import os
import re
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from modeling.data.tokenization import BasicTokenizer  # noqa: E402

TOPICS = {
    "text": ["string", "re", "textwrap", "difflib", "unicodedata", "html", "codecs", "shlex",
             "csv", "gettext", "locale", "stringprep"],
    "math": ["math", "cmath", "statistics", "decimal", "fractions", "random", "numbers",
             "operator", "heapq", "bisect", "array"],
    "files": ["os", "shutil", "pathlib", "tempfile", "glob", "zipfile", "tarfile", "io",
              "fnmatch", "filecmp", "gzip", "bz2", "lzma", "stat"],
    "network": ["socket", "http.client", "urllib.request", "urllib.parse", "email.message",
                "smtplib", "ssl", "ftplib", "poplib", "imaplib", "ipaddress", "http.server",
                "socketserver", "selectors"],
}
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CONFIG = {"vocab_size": None, "hidden_size": 64, "num_hidden_layers": 2,
          "num_attention_heads": 4, "intermediate_size": 256, "hidden_act": "gelu",
          "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
          "max_position_embeddings": 128, "type_vocab_size": 2, "initializer_range": 0.02}


def docstrings(module_name):
  """The docstrings of a module and of its public classes, functions and methods."""
  module = importlib.import_module(module_name)
  objects = [module]
  for name, value in sorted(vars(module).items()):
    if name.startswith("_") or getattr(value, "__module__", module_name) != module.__name__:
      continue
    if inspect.isclass(value):
      objects.append(value)
      objects.extend(v for n, v in sorted(vars(value).items())
                     if not n.startswith("_") and callable(v))
    elif callable(value):
      objects.append(value)
  return [doc for doc in (inspect.getdoc(o) for o in objects) if doc]


def sentences(doc):
  """Prose sentences of a docstring (code examples, signatures and lists dropped)."""
  prose = " ".join(line.strip() for line in doc.splitlines()
                   if line.strip() and not line.strip().startswith((">>>", "...", "-", "*")))
  found = []
  for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", prose):
    words = sentence.split()
    if 5 <= len(words) <= 40 and sum(w.isalpha() for w in words) >= 0.6 * len(words):
      found.append(sentence)
  return found


def split_of(sentence):
  """A stable train/dev/test assignment (80/10/10) from the sentence's hash."""
  bucket = zlib.crc32(sentence.encode("utf-8")) % 10
  return "test" if bucket == 0 else "dev" if bucket == 1 else "train"


def main(output_dir):
  os.makedirs(os.path.join(output_dir, "topics"), exist_ok=True)
  documents, labelled = [], []
  for topic, modules in TOPICS.items():
    for module_name in modules:
      for doc in docstrings(module_name):
        found = sentences(doc)
        if found:
          documents.append(found)
          labelled.extend((topic, s) for s in found)
  with open(os.path.join(output_dir, "corpus.txt"), "w", encoding="utf-8") as writer:
    writer.write("\n\n".join("\n".join(doc) for doc in documents) + "\n")

  tokenizer = BasicTokenizer(do_lower_case=True)
  counts = collections.Counter(t for _, s in labelled for t in tokenizer.tokenize(s))
  characters = sorted({c for token in counts for c in token})
  words = sorted(t for t, n in counts.items() if n >= 3 and len(t) > 1)
  vocab = SPECIAL + characters + [f"##{c}" for c in characters] + words
  with open(os.path.join(output_dir, "vocab.txt"), "w", encoding="utf-8") as writer:
    writer.write("\n".join(vocab) + "\n")
  with open(os.path.join(output_dir, "bert_config.json"), "w", encoding="utf-8") as writer:
    json.dump(dict(CONFIG, vocab_size=len(vocab)), writer, indent=2)

  unique = {s: topic for topic, s in labelled}  # a sentence documented twice counts once
  rows = collections.defaultdict(list)
  for sentence, topic in sorted(unique.items()):
    rows[split_of(sentence)].append((topic, sentence.replace("\t", " ")))
  for split in ("train", "dev"):
    with open(os.path.join(output_dir, "topics", f"{split}.tsv"), "w",
              encoding="utf-8") as writer:
      writer.write("label\ttext\n" + "".join(f"{t}\t{s}\n" for t, s in rows[split]))
  with open(os.path.join(output_dir, "topics", "test.tsv"), "w", encoding="utf-8") as writer:
    writer.write("text\n" + "".join(f"{s}\n" for _, s in rows["test"]))
  print(f"corpus.txt: {len(documents)} documents, {sum(map(len, documents))} sentences; "
        f"vocab.txt: {len(vocab)} word pieces; topics: " +
        ", ".join(f"{split} {len(rows[split])}" for split in ("train", "dev", "test")))


if __name__ == "__main__":
  main(sys.argv[1])
