"""BertConfig: original keys and defaults, unknown keys kept, bad values named."""

import json

import pytest

from modeling import BertConfig

GOOGLE_BASE = {
    "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
    "max_position_embeddings": 512, "num_attention_heads": 12, "num_hidden_layers": 12,
    "type_vocab_size": 2, "vocab_size": 30522,
}
# Google's multilingual and Chinese configs carry these extra keys.
GOOGLE_CHINESE_EXTRAS = {"directionality": "bidi", "pooler_fc_size": 768,
                         "pooler_num_attention_heads": 12, "pooler_num_fc_layers": 3,
                         "pooler_size_per_head": 128, "pooler_type": "first_token_transform"}


def test_defaults_are_the_originals():
  config = BertConfig(vocab_size=100)
  assert config.to_dict() == {
      "vocab_size": 100, "hidden_size": 768, "num_hidden_layers": 12,
      "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
      "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
      "max_position_embeddings": 512, "type_vocab_size": 16, "initializer_range": 0.02}
  assert config.attention_head_size == 64


def test_json_round_trip_keeps_unknown_keys(tmp_path, caplog):
  path = tmp_path / "bert_config.json"
  path.write_text(json.dumps({**GOOGLE_BASE, **GOOGLE_CHINESE_EXTRAS}))
  with caplog.at_level("INFO"):
    config = BertConfig.from_json_file(path)
  assert "pooler_type" in caplog.text
  assert config.directionality == "bidi"
  assert json.loads(config.to_json_string()) == {**GOOGLE_BASE, **GOOGLE_CHINESE_EXTRAS}
  assert BertConfig.from_dict(config.to_dict()) == config


def test_real_config_loads(minilm_dir):
  config = BertConfig.from_json_file(f"{minilm_dir}/bert_config.json")
  assert (config.hidden_size, config.hidden_act, config.vocab_size) == (384, "gelu_exact", 30522)


@pytest.mark.parametrize("act", ["gelu", "gelu_exact", "relu", "tanh", "linear"])
def test_every_activation_is_accepted(act):
  assert BertConfig(vocab_size=10, hidden_act=act).hidden_act == act


@pytest.mark.parametrize("changes, key", [
    ({"hidden_size": 100, "num_attention_heads": 12}, "not a multiple"),
    ({"hidden_size": 0}, "hidden_size=0"),
    ({"num_hidden_layers": -1}, "num_hidden_layers=-1"),
    ({"vocab_size": 12.5}, "vocab_size=12.5"),
    ({"intermediate_size": "3072"}, "intermediate_size='3072'"),
    ({"hidden_act": "swish"}, "hidden_act='swish'"),
    ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob=1.5"),
    ({"initializer_range": 0}, "initializer_range=0"),
])
def test_bad_values_name_file_and_key(tmp_path, changes, key):
  path = tmp_path / "bad_config.json"
  path.write_text(json.dumps({**GOOGLE_BASE, **changes}))
  with pytest.raises(ValueError, match=key) as error:
    BertConfig.from_json_file(path)
  assert str(path) in str(error.value)


def test_missing_vocab_size_is_named(tmp_path):
  path = tmp_path / "bert_config.json"
  path.write_text(json.dumps({"hidden_size": 768}))
  with pytest.raises(ValueError, match=r"bert_config.json: the required key vocab_size"):
    BertConfig.from_json_file(path)


def test_malformed_json_names_the_file(tmp_path):
  path = tmp_path / "broken.json"
  path.write_text('{"vocab_size": 10,')
  with pytest.raises(ValueError, match=r"broken.json: not valid JSON"):
    BertConfig.from_json_file(path)


def test_missing_file_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="nowhere.json"):
    BertConfig.from_json_file(tmp_path / "nowhere.json")


def test_replace_validates():
  config = BertConfig(vocab_size=10, hidden_size=64, num_attention_heads=4)
  assert config.replace(hidden_dropout_prob=0.0).hidden_dropout_prob == 0.0
  with pytest.raises(ValueError, match="num_attention_heads"):
    config.replace(num_attention_heads=5)


@pytest.mark.parametrize("typo, known", [("num_hiden_layers", "num_hidden_layers"),
                                         ("hidden_szie", "hidden_size"),
                                         ("intermediate_sizes", "intermediate_size"),
                                         ("type_vocab_szie", "type_vocab_size")])
def test_a_misspelled_key_is_an_error(tmp_path, typo, known):
  path = tmp_path / "bert_config.json"
  path.write_text(json.dumps({"vocab_size": 30, typo: 2}))
  with pytest.raises(ValueError, match=rf"bert_config.json: unknown key '{typo}'; did you "
                                       rf"mean '{known}'\?"):
    BertConfig.from_json_file(path)


def test_multilingual_keys_and_a_typo_beside_its_key_are_kept():
  extra = {"directionality": "bidi", "pooler_fc_size": 768, "pooler_num_attention_heads": 12,
           "pooler_num_fc_layers": 3, "pooler_size_per_head": 128,
           "pooler_type": "first_token_transform"}
  assert BertConfig.from_dict({"vocab_size": 9, **extra}).to_dict()["pooler_type"] == (
      "first_token_transform")
  config = BertConfig.from_dict({"vocab_size": 9, "num_hidden_layers": 2,
                                 "num_hiden_layers": 3})
  assert config.num_hidden_layers == 2


def test_a_vocabulary_larger_than_vocab_size_is_refused():
  config = BertConfig.from_dict({"vocab_size": 1000}, source="bert_config.json")
  config.check_vocab_size(1000, "vocab.txt")
  config.check_vocab_size(990, "vocab.txt")  # Configs may round vocab_size up.
  with pytest.raises(ValueError, match=r"--vocab_file=vocab.txt has 1010 entries but "
                                       r"bert_config.json has vocab_size=1000"):
    config.check_vocab_size(1010, "vocab.txt")
