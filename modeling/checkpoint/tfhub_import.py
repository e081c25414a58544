"""TF Hub / Kaggle BERT encoder SavedModels into the original layout, losslessly.

A TF Hub BERT encoder (`bert_en_uncased_L-12_H-768_A-12`, the small BERTs, and
what `tfhub_export` writes) is a SavedModel: `saved_model.pb` (the object graph
and the functions) beside `variables/variables` (a checkpoint of every variable,
keyed by object path, e.g. `variables/5/.ATTRIBUTES/VARIABLE_VALUE`), with the
`vocab_file` asset and the `do_lower_case` variable attached to its root. It is
read without running any of its functions: the object graph of `saved_model.pb`
gives each variable's name, the checkpoint's own object graph the key it is
stored under (the two graphs number their nodes alike). Google's exports are
Model Garden `BertEncoder` Keras models, whose names `MODEL_GARDEN_NAMES` maps to
the original's (q/k/v kernels [H, heads, head_dim] -> [H, H], the attention
output [heads, head_dim, H] -> [H, H]: reshapes, so every bit is kept); ours
carry the original names already, and the config as a `bert_config.json` asset.
What has no place in the original layout (ELECTRA-small's embedding projection,
Talking-Heads attention, an ALBERT SavedModel) is refused, named.

  is_tfhub_savedmodel(path)                                          -> bool
  saved_lowercase(src)                                               -> bool or None
  read_tfhub(src, bert_config_file=None, vocab_file=None)            -> HubCheckpoint
  from_tfhub(src, output_dir, bert_config_file=None, vocab_file=None) -> Conversion
"""

import dataclasses
import os
import re

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import saved_model_pb2, trackable_object_graph_pb2

from modeling.checkpoint.expected import expected_variables
from modeling.checkpoint.hf_import import Conversion, copy_file, write_directory, write_text
from modeling.checkpoint.layout import READ_ERRORS, compare, is_training_state, save
from modeling.checkpoint.model_garden_names import (COPY, EINSUM_RANK, OUTPUT_KERNEL, QKV_BIAS,
                                                    QKV_KERNEL, to_original)
from modeling.data import files, tokenization
from modeling.model.config import BertConfig

SAVED_MODEL_FILE = "saved_model.pb"
VARIABLES_PREFIX = os.path.join("variables", "variables")
# The root's attributes besides its weights (Model Garden's export_tfhub_lib, and
# the config asset `tfhub_export` adds).
VOCAB_ASSET, SPM_ASSET, LOWER_CASE, CONFIG_ASSET = (
    "vocab_file", "sp_model_file", "do_lower_case", "bert_config")

# The checkpoint entry of a TF2 SavedModel's object graph, and a TF1 one's asset files.
_OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
_TF1_ASSETS = {VOCAB_ASSET: "vocab.txt"}

# Model Garden's BertEncoder variable names -> the original's, and how the tensor
# changes (a `model_garden_names` kind: C-order reshapes, the bits are the same).
# A name may carry an outer scope (e.g. `bert/` on the masked-LM head of
# BertPretrainerV2). `self_attention_output` is the attention output of Model
# Garden before its attention layer owned it (TF 2.2).
MODEL_GARDEN_NAMES = (
    (r"word_embeddings/embeddings", r"bert/embeddings/word_embeddings", COPY),
    (r"position_embedding/embeddings", r"bert/embeddings/position_embeddings", COPY),
    (r"type_embeddings/embeddings", r"bert/embeddings/token_type_embeddings", COPY),
    (r"embeddings/layer_norm/(gamma|beta)", r"bert/embeddings/LayerNorm/\1", COPY),
    (r"transformer/layer_(\d+)/self_attention/(query|key|value)/kernel",
     r"bert/encoder/layer_\1/attention/self/\2/kernel", QKV_KERNEL),
    (r"transformer/layer_(\d+)/self_attention/(query|key|value)/bias",
     r"bert/encoder/layer_\1/attention/self/\2/bias", QKV_BIAS),
    (r"transformer/layer_(\d+)/(?:self_attention/attention_output|self_attention_output)/kernel",
     r"bert/encoder/layer_\1/attention/output/dense/kernel", OUTPUT_KERNEL),
    (r"transformer/layer_(\d+)/(?:self_attention/attention_output|self_attention_output)/bias",
     r"bert/encoder/layer_\1/attention/output/dense/bias", COPY),
    (r"transformer/layer_(\d+)/self_attention_layer_norm/(gamma|beta)",
     r"bert/encoder/layer_\1/attention/output/LayerNorm/\2", COPY),
    (r"transformer/layer_(\d+)/intermediate/(kernel|bias)",
     r"bert/encoder/layer_\1/intermediate/dense/\2", COPY),
    (r"transformer/layer_(\d+)/output/(kernel|bias)", r"bert/encoder/layer_\1/output/dense/\2",
     COPY),
    (r"transformer/layer_(\d+)/output_layer_norm/(gamma|beta)",
     r"bert/encoder/layer_\1/output/LayerNorm/\2", COPY),
    (r"pooler_transform/(kernel|bias)", r"bert/pooler/dense/\1", COPY),
    (r"cls/predictions/transform/dense/(kernel|bias)", r"cls/predictions/transform/dense/\1",
     COPY),
    (r"cls/predictions/transform/LayerNorm/(gamma|beta)",
     r"cls/predictions/transform/LayerNorm/\1", COPY),
    (r"cls/predictions/output_bias(?:/bias)?", r"cls/predictions/output_bias", COPY),
)

# The names the original layout uses itself (our exports): taken as they are.
_ORIGINAL_NAME = re.compile(r"bert/(embeddings|encoder|pooler)/.+|cls/predictions/.+")

# Model Garden's names for what BERT has not (BertEncoder(embedding_width=...),
# TalkingHeadsAttention, GatedFeedforward, ReZeroTransformer), for the refusal.
_FOREIGN = (
    (r"embedding_projection", "an embedding projection (embedding width != hidden size, "
     "as ELECTRA-small's)"),
    (r"pre_softmax_weight|post_softmax_weight", "Talking-Heads attention"),
    (r"/gate_\d+/", "a gated feed-forward (GatedFeedforward, as the Talking-Heads BERT)"),
    (r"rezero_alpha", "ReZero residuals"),
)

# What the activation of each `hidden_act` leaves in the functions' graphs.
_ACTIVATION_OPS = (("gelu_exact", {"Erf"}), ("gelu", {"Pow", "Tanh"}), ("relu", {"Relu"}))


def is_tfhub_savedmodel(path):
  """Whether `path` is a SavedModel directory with variables (a TF Hub encoder's layout)."""
  path = os.fspath(path)
  return (files.isdir(path) and files.exists(os.path.join(path, SAVED_MODEL_FILE))
          and files.exists(os.path.join(path, VARIABLES_PREFIX + ".index")))


@dataclasses.dataclass
class HubCheckpoint:
  """A TF Hub BERT encoder read into the original layout, in memory.

  Attributes:
    directory: the SavedModel read.
    config: our BertConfig (its `bert_config.json` asset, the --bert_config_file,
      or the tensors' shapes and the graph's activation).
    tensors: {our checkpoint name: float32 np.ndarray}.
    vocab_file: its vocab_file asset, or the vocab_file given.
    do_lower_case: its do_lower_case variable, or None.
    notes: what was inferred or left out, one line each.
  """
  directory: str
  config: BertConfig
  tensors: dict
  vocab_file: str = None
  do_lower_case: bool = None
  notes: list = dataclasses.field(default_factory=list)

  @property
  def task(self):
    return "pretraining" if "cls/predictions/output_bias" in self.tensors else "encoder"


def _read_proto(path, proto):
  with files.open(path, "rb") as reader:
    proto.ParseFromString(reader.read())
  return proto


class _SavedModel:
  """The parts of a SavedModel read here: its variables (name -> array), the
  root's attributes, assets, and the op types its functions use.

  A TF1 SavedModel (TF Hub's first format, `hub.Module`, as the first TF Hub
  BERTs) has no object graph: its variables are keyed by their TF1 names, and its
  vocabulary is the asset file `vocab.txt`.
  """

  def __init__(self, src):
    self.src = src
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    try:
      saved = _read_proto(os.path.join(src, SAVED_MODEL_FILE), saved_model_pb2.SavedModel())
      self.reader = tf.train.load_checkpoint(os.path.join(src, VARIABLES_PREFIX))
      self.tf1 = not self.reader.has_tensor(_OBJECT_GRAPH)
      if not self.tf1:
        graph.ParseFromString(self.reader.get_tensor(_OBJECT_GRAPH))
    except (*READ_ERRORS, OSError, DecodeError) as error:
      raise ValueError(f"{src}: not a readable SavedModel ({error.__class__.__name__}: "
                       f"{getattr(error, 'message', error)})") from None
    self.meta_graph = saved.meta_graphs[0]
    self.nodes = self.meta_graph.object_graph_def.nodes
    if not self.tf1 and len(self.nodes) != len(graph.nodes):
      raise ValueError(f"{src}: saved_model.pb has {len(self.nodes)} objects but its "
                       f"variables checkpoint {len(graph.nodes)}; the files are not of one "
                       "SavedModel")
    self.keys = {i: node.attributes[0].checkpoint_key for i, node in enumerate(graph.nodes)
                 if node.attributes}
    self.root = {} if self.tf1 else {child.local_name: child.node_id
                                     for child in self.nodes[0].children}

  def variable(self, node_id):
    """The array stored for the variable of object `node_id`."""
    try:
      return self.reader.get_tensor(self.keys[node_id])
    except (*READ_ERRORS, KeyError) as error:
      raise ValueError(f"{self.src}: cannot read variable "
                       f"{self.nodes[node_id].variable.name} ({error.__class__.__name__}); "
                       "the variables checkpoint is corrupt or truncated") from None

  def weights(self):
    """{variable name: array} of every variable but the root's `do_lower_case`."""
    if self.tf1:
      return {name: self.reader.get_tensor(name)
              for name in self.reader.get_variable_to_shape_map() if not is_training_state(name)}
    skip = self.root.get(LOWER_CASE)
    weights, nodes = {}, {}
    for node_id, node in enumerate(self.nodes):
      if node.WhichOneof("kind") != "variable" or node_id == skip or node_id not in self.keys:
        continue
      name = re.sub(r":\d+$", "", node.variable.name)
      if name in weights:
        raise ValueError(f"{self.src}: two variables are both named {name} (objects "
                         f"{nodes[name]} and {node_id}); refused")
      weights[name], nodes[name] = self.variable(node_id), node_id
    return weights

  def asset(self, attribute):
    """The path of the root's asset `attribute` (TF1: its file in assets/), or None."""
    if self.tf1:
      path = os.path.join(self.src, "assets", _TF1_ASSETS.get(attribute, "?"))
      return path if files.exists(path) else None
    node_id = self.root.get(attribute)
    if node_id is None or self.nodes[node_id].WhichOneof("kind") != "asset":
      return None
    index = self.nodes[node_id].asset.asset_file_def_index
    return os.path.join(self.src, "assets", self.meta_graph.asset_file_def[index].filename)

  def root_variable(self, attribute):
    node_id = self.root.get(attribute)
    if node_id is None or self.nodes[node_id].WhichOneof("kind") != "variable":
      return None
    return self.variable(node_id)

  def op_types(self):
    graph = self.meta_graph.graph_def
    return ({node.op for function in graph.library.function for node in function.node_def}
            | {node.op for node in graph.node})


def model_garden_name(name):
  """(our name, `model_garden_names` kind) of a Model Garden BertEncoder variable, or None."""
  for pattern, ours, kind in MODEL_GARDEN_NAMES:
    match = re.fullmatch(r"(?:.+/)?" + pattern, name)
    if match:
      return match.expand(ours), kind
  return None


def _refusal(src, unmapped):
  """The ValueError for variables with no place in the original layout."""
  kinds = sorted({what for name in unmapped for pattern, what in _FOREIGN
                  if re.search(pattern, name)})
  listed = ", ".join(unmapped[:6]) + (", ..." if len(unmapped) > 6 else "")
  what = f"it holds {' and '.join(kinds)}, which BERT has not; " if kinds else ""
  return ValueError(f"{src}: not a BERT encoder the original layout can hold: {what}"
                    f"{len(unmapped)} variables have no place in it ({listed}); refused "
                    "(nothing was written)")


def _map_weights(weights, src):
  """{our name: array} and {our name: the SavedModel's shape} of the encoder's weights."""
  tensors, shapes, origin, unmapped = {}, {}, {}, []
  for name in sorted(weights):
    value = weights[name]
    mapped = (name, COPY) if _ORIGINAL_NAME.fullmatch(name) else model_garden_name(name)
    if mapped is None:
      unmapped.append(f"{name} {list(value.shape)}")
      continue
    ours, kind = mapped
    if ours in tensors:
      raise ValueError(f"{src}: both {origin[ours]} and {name} would be {ours}; refused")
    expected_rank = EINSUM_RANK.get(kind)
    if expected_rank and value.ndim != expected_rank:
      raise ValueError(f"{src}: {name} has shape {list(value.shape)}; Model Garden's "
                       f"BertEncoder stores it with rank {expected_rank}; refused")
    origin[ours], shapes[ours], tensors[ours] = name, value.shape, to_original(value, kind)
  if unmapped:
    raise _refusal(src, unmapped)
  for name, value in tensors.items():
    if value.dtype != np.float32:
      raise ValueError(f"{src}: {origin[name]} has dtype {value.dtype.name}; the original "
                       "layout holds float32 weights; refused")
  return tensors, shapes


def _graph_activation(saved):
  """The hidden_act whose ops the SavedModel's functions hold, or None if unclear."""
  ops = saved.op_types()
  found = [name for name, needed in _ACTIVATION_OPS if needed <= ops]
  return found[0] if len(found) == 1 else None


def _shape_config(tensors, shapes, saved):
  """A BertConfig from the tensors' shapes and the graph's activation, and notes."""
  src = saved.src
  for name in ("bert/embeddings/word_embeddings", "bert/embeddings/position_embeddings",
               "bert/embeddings/token_type_embeddings",
               "bert/encoder/layer_0/attention/self/query/kernel",
               "bert/encoder/layer_0/intermediate/dense/kernel"):
    if name not in tensors:
      raise ValueError(f"{src}: the encoder has no {name} (or its Model Garden name); refused")
  query = shapes["bert/encoder/layer_0/attention/self/query/kernel"]
  if len(query) != 3:
    raise ValueError(f"{src}: no bert_config.json asset, and its query kernels "
                     f"are {list(query)}, which do not give the number of heads: pass "
                     "--bert_config_file")
  activation = _graph_activation(saved)
  if activation is None:
    raise ValueError(f"{src}: its functions' ops do not tell the activation (gelu, "
                     "gelu_exact or relu): pass --bert_config_file")
  layers = {int(n) for n in re.findall(r"^bert/encoder/layer_(\d+)/", "\n".join(tensors),
                                       re.M)}
  vocab_size, hidden_size = tensors["bert/embeddings/word_embeddings"].shape
  config = BertConfig.from_dict({
      "vocab_size": int(vocab_size), "hidden_size": int(hidden_size),
      "num_hidden_layers": max(layers) + 1, "num_attention_heads": int(query[1]),
      "intermediate_size": int(tensors["bert/encoder/layer_0/intermediate/dense/kernel"].shape[1]),
      "hidden_act": activation,
      "max_position_embeddings": int(tensors["bert/embeddings/position_embeddings"].shape[0]),
      "type_vocab_size": int(tensors["bert/embeddings/token_type_embeddings"].shape[0])},
      source=src)
  notes = [f"config from the tensors' shapes; hidden_act={activation} from the functions' ops; "
           "dropout and initializer_range are the original's defaults (a SavedModel does "
           "not record them): pass --bert_config_file to set them"]
  return config, notes


def _check_heads(config, shapes, source):
  """Model Garden's q/k/v kernels [H, N, D] name the head count: it must be the config's."""
  for name, shape in sorted(shapes.items()):
    if name.endswith(("/query/kernel", "/key/kernel", "/value/kernel")) and len(shape) == 3 \
       and shape[1] != config.num_attention_heads:
      raise ValueError(f"{source}: num_attention_heads={config.num_attention_heads}, but the "
                       f"SavedModel's {name} has {shape[1]} heads {list(shape)}; refused")


def _check_fits(tensors, config, source):
  """Refuses tensors that disagree with the config, or an encoder lacking some."""
  entries = {name: (value.shape, tf.float32) for name, value in tensors.items()}
  expected = expected_variables(config, None)
  _, errors = compare(entries, expected, allow_missing=(r"^",), prefix=source)
  missing = sorted(set(expected_variables(config, "encoder")) - set(tensors))
  if missing:
    errors.append(f"missing from the SavedModel: {', '.join(missing[:6])}"
                  f"{', ...' if len(missing) > 6 else ''}")
  if errors:
    raise ValueError(f"{source}: the SavedModel's tensors do not fit the config:\n  "
                     + "\n  ".join(errors))
  for name in sorted(tensors):
    if not np.all(np.isfinite(tensors[name])):
      raise ValueError(f"{source}: {name} holds NaN or Inf; refused (nothing was written)")


def _vocabulary(saved, vocab_file, config):
  """The vocabulary to ship: the SavedModel's asset or `vocab_file` (not both, unless equal)."""
  asset = saved.asset(VOCAB_ASSET)
  if vocab_file and asset:
    with files.open(asset, "rb") as a, files.open(vocab_file, "rb") as b:
      if a.read() != b.read():
        raise ValueError(f"--vocab_file={vocab_file} differs from the SavedModel's own "
                         f"vocab_file asset {asset}: it cannot take effect; leave it out")
  path = asset or vocab_file
  if path is None:
    raise ValueError(f"{saved.src}: the SavedModel has no vocab_file asset; pass --vocab_file "
                     "(the model's vocab.txt), or the converted model would have no "
                     "vocabulary")
  flag = "--vocab_file" if not asset else "vocab_file asset"
  config.check_vocab_size(len(tokenization.load_vocab(path)), path, flag)
  return path


def read_tfhub(src, bert_config_file=None, vocab_file=None):
  """Reads a TF Hub BERT encoder SavedModel into the original layout, in memory.

  Args:
    src: the SavedModel directory (an encoder, with or without its `.mlm`).
    bert_config_file: its bert_config.json, for a SavedModel without one (Model
      Garden's exports record no dropout, initializer range or activation; the
      shapes and the graph's ops give the rest). Refused for one of ours, whose
      own config asset it cannot override.
    vocab_file: the vocab.txt, for a SavedModel without a vocab_file asset.

  Returns:
    A HubCheckpoint.

  Raises:
    FileNotFoundError: `src` is not a SavedModel with variables.
    ValueError: named: an architecture with no place in the original layout
      (the variables, and what they are), ALBERT's SentencePiece model, shapes
      that disagree with the config, a missing vocabulary.
  """
  src = os.fspath(src).rstrip("/")
  if not is_tfhub_savedmodel(src):
    raise FileNotFoundError(f"{src}: not a SavedModel directory with variables (no "
                            f"{SAVED_MODEL_FILE} and {VARIABLES_PREFIX}.index)")
  saved = _SavedModel(src)
  if saved.asset(SPM_ASSET):
    raise ValueError(f"{src}: an ALBERT encoder (its tokenizer is a SentencePiece model, "
                     "the sp_model_file asset); only BERT SavedModels are read; refused")
  tensors, shapes = _map_weights(saved.weights(), src)
  own_config = saved.asset(CONFIG_ASSET)
  notes = []
  if own_config and bert_config_file:
    raise ValueError(f"--bert_config_file={bert_config_file}: {src} holds its own "
                     f"{os.path.basename(own_config)} asset, which it cannot override; "
                     "leave it out")
  if own_config or bert_config_file:
    config_source = own_config or os.fspath(bert_config_file)
    config = BertConfig.from_json_file(config_source)
    if config.is_albert:
      raise ValueError(f"{config_source}: an ALBERT config; only BERT SavedModels are read")
    activation = _graph_activation(saved)
    if activation and config.hidden_act != activation:
      raise ValueError(f"{config_source}: hidden_act={config.hidden_act!r}, but the "
                       f"SavedModel's functions compute {activation}; refused")
  else:
    config_source = src
    config, notes = _shape_config(tensors, shapes, saved)
  _check_heads(config, shapes, config_source)
  _check_fits(tensors, config, config_source)
  vocab = _vocabulary(saved, vocab_file and os.fspath(vocab_file), config)
  lower = saved.root_variable(LOWER_CASE)
  return HubCheckpoint(src, config, tensors, vocab, None if lower is None else bool(lower),
                       notes)


def saved_lowercase(src):
  """The `do_lower_case` variable of the SavedModel `src`, or None."""
  lower = _SavedModel(os.fspath(src).rstrip("/")).root_variable(LOWER_CASE)
  return None if lower is None else bool(lower)


# What from_tfhub writes (a Google release's layout), for `write_directory`.
_RELEASE_FILES = ("bert_model.ckpt.*", "bert_config.json", "vocab.txt")


def from_tfhub(src, output_dir, bert_config_file=None, vocab_file=None):
  """Converts a TF Hub BERT encoder SavedModel to the layout of a Google release.

  Writes `output_dir/bert_model.ckpt` (name-based: the encoder, the pooler and,
  when the SavedModel has `.mlm`, `cls/predictions/...`), `bert_config.json` and
  `vocab.txt`, whole or not at all (`hf_import.write_directory`).

  Args:
    src: the SavedModel directory (see `read_tfhub`).
    output_dir: where to write: absent, empty, or an earlier conversion's.
    bert_config_file, vocab_file: see `read_tfhub`.

  Returns:
    A Conversion.
  """
  hub = read_tfhub(src, bert_config_file, vocab_file)
  with tf.device("/cpu:0"):
    variables = [tf.Variable(value, name=name, trainable=False)
                 for name, value in hub.tensors.items()]
  writers = [("bert_model.ckpt", lambda path: save(path, variables)),
             ("bert_config.json", lambda path: write_text(path, hub.config.to_json_string())),
             ("vocab.txt", lambda path: copy_file(hub.vocab_file, path))]
  written = write_directory(os.fspath(output_dir), "bert_config.json", _RELEASE_FILES, writers)
  notes = list(hub.notes)
  if hub.do_lower_case is not None:
    notes.append(f"do_lower_case={hub.do_lower_case} (the SavedModel's variable): run the "
                 f"scripts with --do_lower_case={hub.do_lower_case}")
  return Conversion(hub.directory, "TF Hub BERT encoder" + (" with .mlm" if hub.task ==
                                                            "pretraining" else ""),
                    hub.task, len(hub.tensors), written, notes)
