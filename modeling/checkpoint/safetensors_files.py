"""The files of a Hugging Face model directory: safetensors weights and JSON.

Weights are read and written with the `safetensors` package, without PyTorch. A
`pytorch_model.bin` is a pickle, which can run any code when loaded: it is never
opened.

  read_tensors(hf_dir)           -> {Hugging Face key: np.ndarray}
  write_safetensors(path, tensors)
  read_json(path)                -> the parsed JSON, errors naming the file
"""

import json
import os

import numpy as np
import safetensors
import safetensors.numpy
import tensorflow as tf

from modeling.data import files

WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
CONFIG_FILE = "config.json"
# Weight files in formats we do not read, and why.
UNREAD_FORMATS = {
    "pytorch_model.bin": "a Python pickle, and loading a pickle can run any code it contains",
    "tf_model.h5": "the Keras format of the TFBert* classes that transformers removed",
    "flax_model.msgpack": "the Flax format",
}



def read_json(path):
  with files.open(path) as reader:
    text = reader.read()
  try:
    return json.loads(text)
  except json.JSONDecodeError as error:
    raise ValueError(f"{path}: not valid JSON ({error})") from None


# safetensors dtype -> numpy dtype (bfloat16 is TensorFlow's numpy extension type).
_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16,
           "BF16": tf.bfloat16.as_numpy_dtype, "I64": np.int64, "I32": np.int32,
           "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _read_safetensors(path):
  """{key: np.ndarray} of a safetensors file (any dtype numpy or bfloat16 holds)."""
  with files.open(path, "rb") as reader:
    data = reader.read()
  try:
    entries = safetensors.deserialize(data)
  except Exception as error:  # SafetensorError, raised from Rust with no public class.
    raise ValueError(f"{path}: not a readable safetensors file ({error})") from None
  tensors = {}
  for key, entry in entries:
    if entry["dtype"] not in _DTYPES:
      raise ValueError(f"{path}: tensor {key} has dtype {entry['dtype']}, which has no "
                       "float32 counterpart in the original layout")
    dtype = np.dtype(_DTYPES[entry["dtype"]]).newbyteorder("<")
    tensors[key] = np.frombuffer(entry["data"], dtype).reshape(entry["shape"])
  return tensors


def _weight_files(hf_dir):
  """The safetensors files of a directory: [model.safetensors] or its shards."""
  single, index = os.path.join(hf_dir, WEIGHTS_FILE), os.path.join(hf_dir, INDEX_FILE)
  if files.exists(single):
    return [single], None
  if files.exists(index):
    weight_map = read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
      raise ValueError(f"{index}: no \"weight_map\" of tensor names to shard files")
    for shard in set(weight_map.values()):
      if not isinstance(shard, str) or os.path.basename(shard) != shard or shard in (".", ".."):
        raise ValueError(f"{index}: shard {shard!r} is not a file name in {hf_dir}")
    return [os.path.join(hf_dir, shard) for shard in sorted(set(weight_map.values()))], weight_map
  found = [name for name in UNREAD_FORMATS if files.exists(os.path.join(hf_dir, name))]
  if found:
    name = found[0]
    raise ValueError(
        f"{hf_dir} has {name} but no {WEIGHTS_FILE}: {name} is {UNREAD_FORMATS[name]}, so it "
        f"is never read here. Get the model's {WEIGHTS_FILE} instead: most models on the "
        "Hugging Face Hub have one (see the repository's files, or its "
        "refs/pr/N safetensors conversion); for a file you trust, transformers converts it: "
        "python -c \"import transformers as t; t.BertForPreTraining.from_pretrained('DIR')"
        ".save_pretrained('NEW_DIR')\" (with the class named in its config.json)")
  raise FileNotFoundError(f"{hf_dir}: no {WEIGHTS_FILE} or {INDEX_FILE}")


def read_tensors(hf_dir):
  """{Hugging Face key: np.ndarray} of a directory's model.safetensors or shards."""
  paths, weight_map = _weight_files(hf_dir)
  tensors = {}
  for path in paths:
    for key, value in _read_safetensors(path).items():
      if weight_map is not None and weight_map.get(key) != os.path.basename(path):
        raise ValueError(f"{path}: tensor {key} is not listed for this shard in {INDEX_FILE}")
      tensors[key] = value
  if weight_map is not None and set(weight_map) - set(tensors):
    missing = sorted(set(weight_map) - set(tensors))
    raise ValueError(f"{os.path.join(hf_dir, INDEX_FILE)} lists tensors absent from their "
                     f"shards: {', '.join(missing[:5])}")
  return tensors


def write_safetensors(path, tensors):
  """Writes {key: np.ndarray} to `path` atomically, with the metadata transformers reads."""
  with files.atomic_open(path, "wb") as writer:
    writer.write(safetensors.numpy.save(tensors, metadata={"format": "pt"}))
