"""Hugging Face BERT <-> the original layout: tensor names, classes and config keys.

What maps to what, and what is refused; modeling.hf_checkpoint reads and writes
the files. PyTorch's Linear weights are [out, in] where the original's dense
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
"""

import dataclasses
import re

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


@dataclasses.dataclass(frozen=True)
class Architecture:
  """A transformers class: our task, whether it has the pooler, its heads."""
  name: str
  task: str
  pooler: bool
  heads: tuple


ARCHITECTURES = {a.name: a for a in (
    Architecture("BertModel", "encoder", True, ()),
    Architecture("BertForPreTraining", "pretraining", True, ("masked_lm", "next_sentence")),
    Architecture("BertForMaskedLM", "pretraining", False, ("masked_lm",)),
    Architecture("BertForNextSentencePrediction", "pretraining", True, ("next_sentence",)),
    Architecture("BertForSequenceClassification", "classifier", True, ("classifier",)),
    Architecture("BertForTokenClassification", "ner", False, ("classifier",)),
    Architecture("BertForQuestionAnswering", "squad", False, ("squad",)),
)}

TASKS = ("encoder", "pretraining", "classifier", "squad", "ner")


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


_HEADS = {
    "masked_lm": (_dense("cls/predictions/transform/dense", "cls.predictions.transform.dense")
                  + _layer_norm("cls/predictions/transform/LayerNorm",
                                "cls.predictions.transform.LayerNorm")
                  + [("cls/predictions/output_bias", "cls.predictions.bias", False)]),
    "next_sentence": _linear_head("cls/seq_relationship/", "cls.seq_relationship"),
    "classifier": _linear_head("", "classifier"),
    "squad": _linear_head("cls/squad/", "qa_outputs"),
}


def _base_rows(num_layers, pooler):
  """(ours, theirs without the `bert.` prefix, transposed) of the embeddings,
  encoder and optionally the pooler."""
  rows = [(f"bert/embeddings/{kind}_embeddings", f"embeddings.{kind}_embeddings.weight", False)
          for kind in ("word", "position", "token_type")]
  rows += _layer_norm("bert/embeddings/LayerNorm", "embeddings.LayerNorm")
  for index in range(num_layers):
    ours, theirs = f"bert/encoder/layer_{index}", f"encoder.layer.{index}"
    for part in _LAYER_DENSES:
      rows += _dense(f"{ours}/{part}", f"{theirs}.{part.replace('/', '.')}")
    for part in _LAYER_NORMS:
      rows += _layer_norm(f"{ours}/{part}", f"{theirs}.{part.replace('/', '.')}")
  if pooler:
    rows += _dense("bert/pooler/dense", "pooler.dense")
  return rows


def name_table(num_layers, architecture):
  """[(our name, Hugging Face key, transposed)] of a transformers class's tensors.

  Args:
    num_layers: the config's num_hidden_layers.
    architecture: a key of ARCHITECTURES, e.g. "BertForPreTraining".
  """
  arch = ARCHITECTURES[architecture]
  prefix = "" if architecture == "BertModel" else "bert."
  rows = [(ours, prefix + theirs, transposed)
          for ours, theirs, transposed in _base_rows(num_layers, arch.pooler)]
  for head in arch.heads:
    rows += _HEADS[head]
  return rows


def reading_table(num_layers):
  """{Hugging Face key: (our name, transposed)} of every tensor the original layout
  holds, encoder and pooler keys with and without the `bert.` prefix."""
  table = {}
  for ours, theirs, transposed in _base_rows(num_layers, pooler=True):
    table[theirs] = table["bert." + theirs] = (ours, transposed)
  for rows in _HEADS.values():
    table.update({theirs: (ours, transposed) for ours, theirs, transposed in rows})
  return table


def canonical_key(key):
  """Legacy LayerNorm names (`gamma`, `beta`), as transformers renames them on load."""
  return re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight",
                re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key))


# ----------------------------------------------------------------------------
# Configs.

def refusal(source, key, value, why):
  return ValueError(f"{source}: {key}={value!r} {why}; refused (nothing was written)")


def config_from_hf(hf_config, source):
  """Our BertConfig from the dict of a Hugging Face `config.json`.

  Raises:
    ValueError: naming `source` and the key, for what the original cannot
      represent: another model_type, position_embedding_type other than
      "absolute", layer_norm_eps other than 1e-12, a decoder, an activation
      without a counterpart.
  """
  if not isinstance(hf_config, dict):
    raise ValueError(f"{source}: a config must be a JSON object")
  model_type = hf_config.get("model_type")
  if model_type != "bert":
    raise refusal(source, "model_type", model_type,
                  'is not "bert": only BERT models convert to the original BERT layout')
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
  values = {key: hf_config.get(key, default) for key, default in HF_DEFAULTS.items()}
  activation = values["hidden_act"]
  if not isinstance(activation, str) or activation not in ACTIVATIONS_FROM_HF:
    raise refusal(source, "hidden_act", activation,
                  "has no counterpart in the original (convertible: "
                  + ", ".join(f"{k} as {v}" for k, v in ACTIVATIONS_FROM_HF.items()) + ")")
  values["hidden_act"] = ACTIVATIONS_FROM_HF[activation]
  return BertConfig.from_dict(values, source=source)


def config_to_hf(config, architecture, labels=None, source="bert_config.json"):
  """The dict of a Hugging Face `config.json` for `architecture`.

  Args:
    config: our BertConfig.
    architecture: a key of ARCHITECTURES.
    labels: for the classifier heads, the class names in output order.
    source: the config's file, for messages.

  Raises:
    ValueError: the config uses what Hugging Face BERT cannot represent.
  """
  if config.position_embedding_type != "learned":
    raise refusal(source, "position_embedding_type", config.position_embedding_type,
                  'has no counterpart in Hugging Face BERT (only "learned", their "absolute")')
  values = {"architectures": [architecture], "model_type": "bert"}
  values.update({key: getattr(config, key) for key in HF_DEFAULTS})
  values.update(hidden_act=ACTIVATIONS_TO_HF[config.hidden_act], layer_norm_eps=LAYER_NORM_EPS,
                position_embedding_type="absolute", tie_word_embeddings=True)
  if labels is not None:
    values["id2label"] = {str(i): label for i, label in enumerate(labels)}
    values["label2id"] = {label: i for i, label in enumerate(labels)}
  return values


# ----------------------------------------------------------------------------
# Which class.

def infer_architecture(keys):
  """The transformers class whose heads a set of keys holds."""
  has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
  if has("qa_outputs."):
    return "BertForQuestionAnswering"
  if has("classifier."):  # BertForTokenClassification has no pooler.
    return ("BertForSequenceClassification" if has("bert.pooler.") or has("pooler.")
            else "BertForTokenClassification")
  if has("cls.predictions."):
    return "BertForPreTraining" if has("cls.seq_relationship.") else "BertForMaskedLM"
  if has("cls.seq_relationship."):
    return "BertForNextSentencePrediction"
  return "BertModel"


def architecture_of(hf_config, keys, source):
  names = hf_config.get("architectures") or [infer_architecture(keys)]
  unknown = [name for name in names if name not in ARCHITECTURES]
  if unknown:
    raise refusal(source, "architectures", names,
                  "names a class with no counterpart in the original layout (convertible: "
                  + ", ".join(ARCHITECTURES) + ")")
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


def architecture_for(task, names):
  if task == "pretraining":
    mlm, nsp = "cls/predictions/output_bias" in names, "cls/seq_relationship/output_bias" in names
    if not (mlm or nsp):
      raise ValueError("task pretraining: the checkpoint has neither cls/predictions nor "
                       "cls/seq_relationship")
    return ("BertForPreTraining" if mlm and nsp else
            "BertForMaskedLM" if mlm else "BertForNextSentencePrediction")
  return next(a.name for a in ARCHITECTURES.values() if a.task == task)
