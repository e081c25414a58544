"""Hugging Face BERT and ALBERT <-> the original layout: tensor names, classes, config keys.

What maps to what, and what is refused; `hf_import` and `hf_export` read and
write the files. PyTorch's Linear weights are [out, in] where the original's dense
kernels are [in, out], so kernels are transposed; everything else keeps its shape.

Name table (the encoder and pooler keys take a `bert.` prefix in every class but
BertModel; (T): transposed; H hidden, C classes):

  ours                                              Hugging Face
  bert/embeddings/word_embeddings                   embeddings.word_embeddings.weight
    (position_embeddings, token_type_embeddings alike)
  SCOPE/LayerNorm/gamma, beta                       SCOPE.LayerNorm.weight, bias
  bert/encoder/layer_N/PART/kernel (T), bias        encoder.layer.N.PART.weight, bias
    PART: attention/self/{query,key,value}, attention/output/dense,
          intermediate/dense, output/dense ("/" becomes ".")
  bert/pooler/dense/kernel (T), bias                pooler.dense.weight, bias
  cls/predictions/transform/dense/kernel (T), bias  cls.predictions.transform.dense.weight, bias
  cls/predictions/output_bias                       cls.predictions.bias
  cls/seq_relationship/output_weights [2, H], bias  cls.seq_relationship.weight, bias
  output_weights [C, H], output_bias [C]            classifier.weight, bias
  cls/squad/output_weights [2, H], output_bias [2]  qa_outputs.weight, bias

ALBERT (Google's ALBERT names, `modeling.model.albert`; an `albert.` prefix in every
class but AlbertModel; G group, I inner block, E embedding width):

  bert/embeddings/... [., E]                         embeddings.... (as BERT's)
  bert/encoder/embedding_hidden_mapping_in (T)       encoder.embedding_hidden_mapping_in
  bert/encoder/transformer/group_G/inner_group_I/    encoder.albert_layer_groups.G.albert_layers.I.
    attention_1/self/{query,key,value} (T)             attention.{query,key,value}
    attention_1/output/dense (T)                       attention.dense
    LayerNorm                                          attention.LayerNorm
    ffn_1/intermediate/dense (T)                       ffn
    ffn_1/intermediate/output/dense (T)                ffn_output
    LayerNorm_1                                        full_layer_layer_norm
  bert/pooler/dense (T)                              pooler
  cls/predictions/transform/dense (T), LayerNorm     predictions.dense, predictions.LayerNorm
  cls/predictions/output_bias                        predictions.bias
  cls/seq_relationship/output_weights [2, H], bias   sop_classifier.classifier.weight, bias
  (the classifier, SQuAD and token heads as BERT's)
"""

import dataclasses
import re

from modeling.model import albert
from modeling.model.config import BertConfig

# hidden_act of Hugging Face -> ours. Their "gelu" is the exact erf form; "gelu_new"
# and "gelu_pytorch_tanh" are the original's tanh approximation.
ACTIVATIONS_FROM_HF = {"gelu": "gelu_exact", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu",
                       "relu": "relu", "tanh": "tanh", "linear": "linear"}

ACTIVATIONS_TO_HF = {"gelu_exact": "gelu", "gelu": "gelu_new", "relu": "relu", "tanh": "tanh",
                     "linear": "linear"}

# The original's LayerNorm epsilon, fixed in its code.
LAYER_NORM_EPS = 1e-12

# Hugging Face BertConfig defaults of the keys that shape the model, for a
# config.json that leaves some out.
HF_DEFAULTS = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
}

# Hugging Face AlbertConfig defaults (ALBERT-xxlarge's dimensions), as HF_DEFAULTS.
HF_ALBERT_DEFAULTS = {
    "vocab_size": 30000,
    "embedding_size": 128,
    "hidden_size": 4096,
    "num_hidden_layers": 12,
    "num_hidden_groups": 1,
    "num_attention_heads": 64,
    "intermediate_size": 16384,
    "inner_group_num": 1,
    "hidden_act": "gelu_new",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
}


@dataclasses.dataclass(frozen=True)
class Family:
  """What differs between Hugging Face BERT and ALBERT directories and our files."""
  model_type: str
  prefix: str            # of the encoder keys in every class but the bare model
  mlm: str               # the masked-LM head's scope
  sentence: str          # the NSP / SOP head's scope
  config_file: str       # ours
  checkpoint_name: str   # ours
  vocab_file: str        # the tokenizer file, theirs and ours
  tokenizer_class: str
  defaults: dict


FAMILIES = {f.model_type: f for f in (
    Family("bert", "bert.", "cls.predictions", "cls.seq_relationship", "bert_config.json",
           "bert_model.ckpt", "vocab.txt", "BertTokenizer", HF_DEFAULTS),
    Family("albert", "albert.", "predictions", "sop_classifier.classifier",
           "albert_config.json", "model.ckpt", "spiece.model", "AlbertTokenizer",
           HF_ALBERT_DEFAULTS),
)}


def family_of(config):
  """The Family of our config: ALBERT for an ALBERT config, else BERT."""
  return FAMILIES["albert" if config.is_albert else "bert"]


@dataclasses.dataclass(frozen=True)
class Architecture:
  """A transformers class: our task, whether it has the pooler, its heads, its family."""
  name: str
  task: str
  pooler: bool
  heads: tuple
  model_type: str = "bert"


ARCHITECTURES = {a.name: a for a in (
    Architecture("BertModel", "encoder", True, ()),
    Architecture("BertForPreTraining", "pretraining", True, ("masked_lm", "next_sentence")),
    Architecture("BertForMaskedLM", "pretraining", False, ("masked_lm",)),
    Architecture("BertForNextSentencePrediction", "pretraining", True, ("next_sentence",)),
    Architecture("BertForSequenceClassification", "classifier", True, ("classifier",)),
    Architecture("BertForTokenClassification", "ner", False, ("classifier",)),
    Architecture("BertForQuestionAnswering", "squad", False, ("squad",)),
    Architecture("AlbertModel", "encoder", True, (), "albert"),
    Architecture("AlbertForPreTraining", "pretraining", True,
                 ("albert_masked_lm", "sentence_order"), "albert"),
    Architecture("AlbertForMaskedLM", "pretraining", False, ("albert_masked_lm",), "albert"),
    Architecture("AlbertForSequenceClassification", "classifier", True, ("classifier",),
                 "albert"),
    Architecture("AlbertForTokenClassification", "ner", False, ("classifier",), "albert"),
    Architecture("AlbertForQuestionAnswering", "squad", False, ("squad",), "albert"),
)}

# (family, has the masked-LM head, has the NSP / SOP head) -> the pretraining class.
_PRETRAINING_CLASSES = {
    ("bert", True, True): "BertForPreTraining", ("bert", True, False): "BertForMaskedLM",
    ("bert", False, True): "BertForNextSentencePrediction",
    ("albert", True, True): "AlbertForPreTraining", ("albert", True, False): "AlbertForMaskedLM",
}

# ----------------------------------------------------------------------------
# The name table.

def _dense(ours, theirs):
  return [(f"{ours}/kernel", f"{theirs}.weight", True), (f"{ours}/bias", f"{theirs}.bias", False)]


def _layer_norm(ours, theirs):
  return [(f"{ours}/gamma", f"{theirs}.weight", False),
          (f"{ours}/beta", f"{theirs}.bias", False)]


def _linear_head(ours, theirs):
  """Our `output_weights` [C, H] are used transposed, as PyTorch's Linear weight."""
  return [(f"{ours}output_weights", f"{theirs}.weight", False),
          (f"{ours}output_bias", f"{theirs}.bias", False)]


_LAYER_DENSES = ("attention/self/query", "attention/self/key", "attention/self/value",
                 "attention/output/dense", "intermediate/dense", "output/dense")


_LAYER_NORMS = ("attention/output/LayerNorm", "output/LayerNorm")


def _masked_lm(transform, bias):
  """The masked-LM head: its transform (dense, LayerNorm) under `transform`, its bias."""
  return (_dense("cls/predictions/transform/dense", f"{transform}.dense")
          + _layer_norm("cls/predictions/transform/LayerNorm", f"{transform}.LayerNorm")
          + [("cls/predictions/output_bias", bias, False)])


_HEADS = {
    "masked_lm": _masked_lm("cls.predictions.transform", "cls.predictions.bias"),
    "next_sentence": _linear_head("cls/seq_relationship/", "cls.seq_relationship"),
    "classifier": _linear_head("", "classifier"),
    "squad": _linear_head("cls/squad/", "qa_outputs"),
    "albert_masked_lm": _masked_lm("predictions", "predictions.bias"),
    "sentence_order": _linear_head("cls/seq_relationship/", "sop_classifier.classifier"),
}


def _albert_part(part):
  """Our scope of a part of an ALBERT block (`albert.ALBERT_LAYER_NAMES`)."""
  return "/".join(p for p in part if p) if isinstance(part, tuple) else part


# Parts of an ALBERT block: (key of albert.ALBERT_LAYER_NAMES, suffix, theirs).
_ALBERT_DENSES = (("attention", "/query", "attention.query"),
                  ("attention", "/key", "attention.key"),
                  ("attention", "/value", "attention.value"),
                  ("attention_output", "", "attention.dense"),
                  ("intermediate", "", "ffn"),
                  ("output", "", "ffn_output"))
_ALBERT_NORMS = (("attention_layer_norm", "attention.LayerNorm"),
                 ("output_layer_norm", "full_layer_layer_norm"))


def _albert_encoder_rows(config):
  """Rows of ALBERT's embedding projection (when E != H, as ours) and shared blocks:
  every group some layer uses (all of them, as num_hidden_groups <= num_hidden_layers)."""
  rows = []
  if config.embedding_size != config.hidden_size:
    rows += _dense(albert.EMBEDDING_PROJECTION, "encoder.embedding_hidden_mapping_in")
  groups = sorted({albert.group_index(layer, config)
                   for layer in range(config.num_hidden_layers)})
  for group in groups:
    for inner in range(config.inner_group_num):
      ours = f"bert/encoder/transformer/group_{group}/inner_group_{inner}"
      theirs = f"encoder.albert_layer_groups.{group}.albert_layers.{inner}"
      for key, suffix, part in _ALBERT_DENSES:
        rows += _dense(f"{ours}/{_albert_part(albert.ALBERT_LAYER_NAMES[key])}{suffix}",
                       f"{theirs}.{part}")
      for key, part in _ALBERT_NORMS:
        rows += _layer_norm(f"{ours}/{_albert_part(albert.ALBERT_LAYER_NAMES[key])}",
                            f"{theirs}.{part}")
  return rows


def _base_rows(config, pooler):
  """(ours, theirs without the `bert.`/`albert.` prefix, transposed) of the
  embeddings, encoder and optionally the pooler."""
  rows = [(f"bert/embeddings/{kind}_embeddings", f"embeddings.{kind}_embeddings.weight", False)
          for kind in ("word", "position", "token_type")]
  rows += _layer_norm("bert/embeddings/LayerNorm", "embeddings.LayerNorm")
  if config.is_albert:
    rows += _albert_encoder_rows(config)
    if pooler:
      rows += _dense("bert/pooler/dense", "pooler")
    return rows
  for index in range(config.num_hidden_layers):
    ours, theirs = f"bert/encoder/layer_{index}", f"encoder.layer.{index}"
    for part in _LAYER_DENSES:
      rows += _dense(f"{ours}/{part}", f"{theirs}.{part.replace('/', '.')}")
    for part in _LAYER_NORMS:
      rows += _layer_norm(f"{ours}/{part}", f"{theirs}.{part.replace('/', '.')}")
  if pooler:
    rows += _dense("bert/pooler/dense", "pooler.dense")
  return rows


def name_table(config, architecture):
  """[(our name, Hugging Face key, transposed)] of a transformers class's tensors.

  Args:
    config: our BertConfig (BERT or ALBERT, as the class).
    architecture: a key of ARCHITECTURES, e.g. "BertForPreTraining".
  """
  arch = ARCHITECTURES[architecture]
  prefix = "" if architecture.endswith("Model") else FAMILIES[arch.model_type].prefix
  rows = [(ours, prefix + theirs, transposed)
          for ours, theirs, transposed in _base_rows(config, arch.pooler)]
  for head in arch.heads:
    rows += _HEADS[head]
  return rows


def reading_table(config):
  """{Hugging Face key: (our name, transposed)} of every tensor the original layout
  holds for `config` (BERT's or ALBERT's), encoder and pooler keys with and without
  the `bert.`/`albert.` prefix."""
  family = family_of(config)
  table = {}
  for ours, theirs, transposed in _base_rows(config, pooler=True):
    table[theirs] = table[family.prefix + theirs] = (ours, transposed)
  heads = {head for arch in ARCHITECTURES.values() if arch.model_type == family.model_type
           for head in arch.heads}
  for head in heads:
    table.update({theirs: (ours, transposed) for ours, theirs, transposed in _HEADS[head]})
  return table


def canonical_key(key):
  """Legacy LayerNorm names (`gamma`, `beta`), as transformers renames them on load."""
  return re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight",
                re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key))


# ----------------------------------------------------------------------------
# Configs.

def refusal(source, key, value, why):
  return ValueError(f"{source}: {key}={value!r} {why}; refused (nothing was written)")


def _check_albert(config, source):
  """Refuses the ALBERT configs whose layers Hugging Face's ALBERT arranges otherwise."""
  if config.embedding_size == config.hidden_size:
    raise refusal(source, "embedding_size", config.embedding_size,
                  "equals hidden_size: Hugging Face's ALBERT always has "
                  "encoder.embedding_hidden_mapping_in, ours (as Google's ALBERT) has none "
                  "when E == H")
  layers, groups = config.num_hidden_layers, config.num_hidden_groups
  for layer in range(layers):
    ours, theirs = albert.group_index(layer, config), int(layer / (layers / groups))
    if ours != theirs:
      raise refusal(source, "num_hidden_groups", groups,
                    f"with num_hidden_layers={layers} puts layer {layer} in group {ours} "
                    f"here (Google's ALBERT) but in group {theirs} in Hugging Face's "
                    "(floating-point rounding)")


def config_from_hf(hf_config, source):
  """Our BertConfig from the dict of a Hugging Face BERT or ALBERT `config.json`.

  Raises:
    ValueError: naming `source` and the key, for what the original cannot
      represent: another model_type, position_embedding_type other than
      "absolute", layer_norm_eps other than 1e-12, a decoder, an activation
      without a counterpart; for ALBERT, embedding_size equal to hidden_size or
      groups assigned otherwise (`_check_albert`).
  """
  if not isinstance(hf_config, dict):
    raise ValueError(f"{source}: a config must be a JSON object")
  model_type = hf_config.get("model_type")
  if model_type not in FAMILIES:
    raise refusal(source, "model_type", model_type,
                  'is neither "bert" nor "albert": only BERT and ALBERT models convert to '
                  "the original layout")
  position_type = hf_config.get("position_embedding_type", "absolute")
  if position_type != "absolute":
    raise refusal(source, "position_embedding_type", position_type,
                  'has no counterpart in the original, whose position embeddings are '
                  '"absolute" (a learned table)')
  eps = hf_config.get("layer_norm_eps", LAYER_NORM_EPS)
  if eps != LAYER_NORM_EPS:
    raise refusal(source, "layer_norm_eps", eps,
                  f"differs from the original's fixed LayerNorm epsilon {LAYER_NORM_EPS}: "
                  "every output would change")
  for key in ("is_decoder", "add_cross_attention"):
    if hf_config.get(key):
      raise refusal(source, key, hf_config[key],
                    "makes a decoder (causal or cross attention), which the original "
                    "BERT encoder is not")
  values = {key: hf_config.get(key, default)
            for key, default in FAMILIES[model_type].defaults.items()}
  activation = values["hidden_act"]
  if not isinstance(activation, str) or activation not in ACTIVATIONS_FROM_HF:
    raise refusal(source, "hidden_act", activation,
                  "has no counterpart in the original (convertible: "
                  + ", ".join(f"{k} as {v}" for k, v in ACTIVATIONS_FROM_HF.items()) + ")")
  values["hidden_act"] = ACTIVATIONS_FROM_HF[activation]
  config = BertConfig.from_dict(values, source=source)
  if config.is_albert:
    _check_albert(config, source)
  return config


def config_to_hf(config, architecture, labels=None, source="bert_config.json"):
  """The dict of a Hugging Face `config.json` for `architecture`.

  Args:
    config: our BertConfig.
    architecture: a key of ARCHITECTURES.
    labels: for the classifier heads, the class names in output order.
    source: the config's file, for messages.

  Raises:
    ValueError: the config uses what Hugging Face BERT or ALBERT cannot represent.
  """
  family = family_of(config)
  if config.position_embedding_type != "learned":
    raise refusal(source, "position_embedding_type", config.position_embedding_type,
                  f"has no counterpart in Hugging Face {family.model_type.upper()} (only "
                  '"learned", their "absolute")')
  if config.is_albert:
    _check_albert(config, source)
  values = {"architectures": [architecture], "model_type": family.model_type}
  values.update({key: getattr(config, key) for key in family.defaults})
  values.update(hidden_act=ACTIVATIONS_TO_HF[config.hidden_act], layer_norm_eps=LAYER_NORM_EPS,
                tie_word_embeddings=True)
  if not config.is_albert:
    values["position_embedding_type"] = "absolute"
  if labels is not None:
    values["id2label"] = {str(i): label for i, label in enumerate(labels)}
    values["label2id"] = {label: i for i, label in enumerate(labels)}
  return values


# ----------------------------------------------------------------------------
# Which class.

def infer_architecture(keys, model_type="bert"):
  """The transformers class of `model_type` whose heads a set of keys holds."""
  family = FAMILIES[model_type]
  name = "Albert" if model_type == "albert" else "Bert"
  has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
  if has("qa_outputs."):
    return f"{name}ForQuestionAnswering"
  if has("classifier."):  # The token classification classes have no pooler.
    return (f"{name}ForSequenceClassification"
            if has(family.prefix + "pooler") or has("pooler") else
            f"{name}ForTokenClassification")
  mlm, sentence = has(family.mlm + "."), has(family.sentence + ".")
  if mlm or sentence:
    return _PRETRAINING_CLASSES.get((model_type, mlm, sentence), f"{name}ForPreTraining")
  return f"{name}Model"


def architecture_of(hf_config, keys, source):
  model_type = hf_config["model_type"]
  names = hf_config.get("architectures") or [infer_architecture(keys, model_type)]
  known = [n for n, a in ARCHITECTURES.items() if a.model_type == model_type]
  unknown = [name for name in names if name not in known]
  if unknown:
    raise refusal(source, "architectures", names,
                  f"names a class with no counterpart in the original layout for model_type "
                  f"{model_type!r} (convertible: " + ", ".join(known) + ")")
  return names[0]


def infer_task(names):
  """The task whose heads a checkpoint holds. `output_weights` with a pooler is a
  sentence classifier; without one, a token classifier (BertForTokenClassification
  has no pooler; give task "ner" for a token classifier of ours, which has one)."""
  if "cls/squad/output_weights" in names:
    return "squad"
  if "output_weights" in names:
    return "classifier" if "bert/pooler/dense/kernel" in names else "ner"
  if any(name.startswith("cls/") for name in names):
    return "pretraining"
  return "encoder"


def architecture_for(task, names, model_type="bert"):
  """The transformers class of `model_type` for our task and checkpoint names."""
  if task == "pretraining":
    mlm, nsp = "cls/predictions/output_bias" in names, "cls/seq_relationship/output_bias" in names
    if not (mlm or nsp):
      raise ValueError("task pretraining: the checkpoint has neither cls/predictions nor "
                       "cls/seq_relationship")
    if (model_type, mlm, nsp) not in _PRETRAINING_CLASSES:
      raise ValueError("task pretraining: the checkpoint has cls/seq_relationship (sentence "
                       "order) without cls/predictions, and Hugging Face has no ALBERT class "
                       "with that head alone; pass --task encoder --allow_unused ^cls/")
    return _PRETRAINING_CLASSES[(model_type, mlm, nsp)]
  return next(a.name for a in ARCHITECTURES.values()
              if a.task == task and a.model_type == model_type)
