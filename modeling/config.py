"""BertConfig: the hyper-parameters of a BERT model, read from `bert_config.json`.

The keys and defaults are those of the original `modeling.BertConfig`, so any
`bert_config.json` published with Google's checkpoints loads unchanged. Keys the
original does not know (multilingual and Chinese configs carry `directionality`,
`pooler_fc_size`, ...) are kept, so `to_dict()` gives them back, and logged by name
so that a typo is visible.
"""

import copy
import json
import logging
import os

logger = logging.getLogger(__name__)

ACTIVATIONS = ("gelu", "gelu_exact", "relu", "tanh", "linear")

# Keys of the original BertConfig, in its constructor order, with its defaults.
_DEFAULTS = {
    "vocab_size": None,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 16,
    "initializer_range": 0.02,
}

_POSITIVE_INTS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                  "intermediate_size", "max_position_embeddings", "type_vocab_size")
_PROBABILITIES = ("hidden_dropout_prob", "attention_probs_dropout_prob")


class BertConfig:
  """Configuration of a `BertModel`, with the original's attribute names.

  Attributes:
    vocab_size: rows of `bert/embeddings/word_embeddings`.
    hidden_size: width H of every encoder layer.
    num_hidden_layers: number of encoder layers.
    num_attention_heads: heads N per layer; H must be a multiple of N.
    intermediate_size: width I of the feed-forward layer.
    hidden_act: "gelu" (tanh approximation, as the original at HEAD), "gelu_exact"
      (erf, as the 2018 release and Hugging Face "gelu"), "relu", "tanh" or "linear".
    hidden_dropout_prob: dropout on embeddings and on every residual branch.
    attention_probs_dropout_prob: dropout on the attention probabilities.
    max_position_embeddings: rows of `bert/embeddings/position_embeddings`, the
      longest sequence the model accepts.
    type_vocab_size: rows of `bert/embeddings/token_type_embeddings`.
    initializer_range: stddev of the truncated-normal initializer.
  """

  def __init__(self, vocab_size, source="<arguments>", **kwargs):
    """Builds and validates a config.

    Args:
      vocab_size: int, size of the wordpiece vocabulary.
      source: where the values came from (a file name), quoted in error messages.
      **kwargs: any other key of the original BertConfig; unknown keys are kept.

    Raises:
      ValueError: a value is out of range, naming `source` and the key.
    """
    values = dict(_DEFAULTS)
    values.update(kwargs)
    values["vocab_size"] = vocab_size
    self._source = source
    self._extra_keys = sorted(set(kwargs) - set(_DEFAULTS))
    for key, value in values.items():
      setattr(self, key, value)
    self._validate()
    if self._extra_keys:
      logger.info("%s: keeping keys unknown to BertConfig: %s", source,
                  ", ".join(self._extra_keys))

  def _error(self, key, message):
    return ValueError(f"{self._source}: {key}={getattr(self, key)!r} {message}")

  def _validate(self):
    for key in _POSITIVE_INTS:
      value = getattr(self, key)
      if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise self._error(key, "must be a positive integer")
    for key in _PROBABILITIES:
      value = getattr(self, key)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise self._error(key, "must be a probability in [0, 1)")
    value = self.initializer_range
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
      raise self._error("initializer_range", "must be a positive number")
    if self.hidden_act not in ACTIVATIONS:
      raise self._error("hidden_act", f"is not one of {', '.join(ACTIVATIONS)}")
    if self.hidden_size % self.num_attention_heads:
      raise ValueError(
          f"{self._source}: the hidden size (hidden_size={self.hidden_size}) is not a "
          f"multiple of the number of attention heads "
          f"(num_attention_heads={self.num_attention_heads})")

  @property
  def attention_head_size(self):
    """Width of one attention head, hidden_size / num_attention_heads."""
    return self.hidden_size // self.num_attention_heads

  @classmethod
  def from_dict(cls, json_object, source="<dict>"):
    """Builds a config from a dict such as the contents of `bert_config.json`."""
    if not isinstance(json_object, dict):
      raise ValueError(f"{source}: a BERT config must be a JSON object, got "
                       f"{type(json_object).__name__}")
    if "vocab_size" not in json_object:
      raise ValueError(f"{source}: the required key vocab_size is missing")
    values = dict(json_object)
    return cls(values.pop("vocab_size"), source=source, **values)

  @classmethod
  def from_json_file(cls, json_file):
    """Reads a `bert_config.json` file.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: the file is not valid JSON or holds a bad value (named).
    """
    json_file = os.fspath(json_file)
    if not os.path.isfile(json_file):
      raise FileNotFoundError(f"BERT config file not found: {json_file}")
    with open(json_file, encoding="utf-8") as reader:
      text = reader.read()
    try:
      json_object = json.loads(text)
    except json.JSONDecodeError as error:
      raise ValueError(f"{json_file}: not valid JSON ({error})") from None
    return cls.from_dict(json_object, source=json_file)

  def to_dict(self):
    """Returns every key, the original ones first, then the kept unknown ones."""
    return {key: copy.deepcopy(getattr(self, key))
            for key in list(_DEFAULTS) + self._extra_keys}

  def to_json_string(self):
    """Returns the config as the original writes it: indented, keys sorted."""
    return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

  def to_json_file(self, json_file):
    """Writes `to_json_string()` to `json_file`."""
    with open(json_file, "w", encoding="utf-8") as writer:
      writer.write(self.to_json_string())

  def replace(self, **changes):
    """Returns a copy with some keys changed (validated like the original)."""
    values = self.to_dict()
    values.update(changes)
    return BertConfig.from_dict(values, source=self._source)

  def __eq__(self, other):
    return isinstance(other, BertConfig) and self.to_dict() == other.to_dict()

  def __repr__(self):
    return f"BertConfig({self.to_dict()})"
