"""Ours against an original (BERT or ALBERT) on the pretraining model, both ways.

Shared by test_parity.py and test_albert.py. Each case is a dict with `direction`
("original_to_ours": the oracle initialises and saves its model, we load it;
"ours_to_original": we save perturbed weights, the oracle restores them),
`use_one_hot_embeddings` and `config` (changes to the base config). One oracle process
runs every case and saves its outputs on the same inputs; the encoder outputs, every
layer, and both heads' losses and log-probabilities are compared.
"""

import json

import numpy as np

import oracle
from modeling import BertModel, MaskedLMHead, NextSentenceHead, checkpoint
from tiny import tiny_inputs


def build(config, use_one_hot_embeddings):
  """(BertModel, MaskedLMHead, NextSentenceHead) of `config`."""
  model = BertModel(config, use_one_hot_embeddings=use_one_hot_embeddings)
  return model, MaskedLMHead(config, model.embedding_table), NextSentenceHead(config)


def perturb(modules, seed):
  """Adds noise to every variable, so that biases, gammas and betas are non-trivial."""
  rng = np.random.RandomState(seed)
  for variable in checkpoint.named_variables(modules).values():
    variable.assign_add(rng.normal(0.0, 0.2, size=variable.shape).astype(np.float32))


def our_outputs(modules, data, sentence_head="nsp"):
  """{name: np.ndarray}: the encoder's outputs and layers, the heads' losses and
  log-probabilities (the second head's keys prefixed `sentence_head`: nsp or sop)."""
  model, mlm, sentence = modules
  outputs = model(data["input_ids"], data["input_mask"], data["segment_ids"])
  mlm_loss, _, mlm_log_probs = mlm(outputs["sequence_output"], data["masked_lm_positions"],
                                   data["masked_lm_ids"], data["masked_lm_weights"])
  sentence_loss, _, sentence_log_probs = sentence(outputs["pooled_output"],
                                                  data["next_sentence_labels"])
  result = {key: outputs[key] for key in ("sequence_output", "pooled_output",
                                          "embedding_output")}
  result.update({f"layer_{i}": layer for i, layer in enumerate(outputs["all_encoder_layers"])})
  result.update({"mlm_loss": mlm_loss, "mlm_log_probs": mlm_log_probs,
                 f"{sentence_head}_loss": sentence_loss,
                 f"{sentence_head}_log_probs": sentence_log_probs})
  return {key: np.asarray(value) for key, value in result.items()}


def run_cases(cases, base_config, make_config, oracle_script, tmp, sentence_head="nsp",
              **spec_fields):
  """Runs every case in one oracle process.

  Args:
    cases: {name: case dict}.
    base_config: the config dict the cases' `config` changes.
    make_config: **changes -> our config object (tiny_config, albert_config).
    oracle_script: the oracle's source; it reads the list of specs at sys.argv[1].
    tmp: a pathlib.Path to work in.
    sentence_head: "nsp" or "sop", the second head's output keys.
    **spec_fields: more fields of every spec for the oracle.

  Returns:
    {name: (ours, original, spec)}: our and the oracle's outputs, and the spec
    (with its `checkpoint`).
  """
  data = tiny_inputs(batch_size=3, seq_length=16)  # 16 < max_position_embeddings=64
  np.savez(tmp / "inputs.npz", **data)
  specs, ours = [], {}
  for name, case in cases.items():
    spec = dict(case, **spec_fields, name=name, config={**base_config, **case["config"]},
                inputs=str(tmp / "inputs.npz"), checkpoint=str(tmp / name / "model.ckpt"),
                outputs=str(tmp / f"{name}.npz"))
    if case["direction"] == "ours_to_original":
      modules = build(make_config(**case["config"]), case["use_one_hot_embeddings"])
      perturb(modules, seed=7)
      checkpoint.save(spec["checkpoint"], modules)
      ours[name] = our_outputs(modules, data, sentence_head)
    specs.append(spec)
  (tmp / "cases.json").write_text(json.dumps(specs))
  oracle.run(oracle_script, tmp / "cases.json")
  results = {}
  for spec in specs:
    name = spec["name"]
    if name not in ours:
      modules = build(make_config(**cases[name]["config"]), spec["use_one_hot_embeddings"])
      report = checkpoint.load(spec["checkpoint"], modules)
      assert not report.missing and not report.unexpected, report
      ours[name] = our_outputs(modules, data, sentence_head)
    results[name] = (ours[name], dict(np.load(spec["outputs"])), spec)
  return results
