"""The Hugging Face bridge against transformers itself (PyTorch on CPU).

Random-weight transformers models converted to the original layout give their
outputs from our model, and our checkpoints exported to Hugging Face load into
transformers with no missing or unexpected keys and give ours. Needs the optional
`hf` extra (make test tries to install it); skipped without it.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import load_file

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # Nothing from a model hub, ever.
torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed (optional: pip install -e '.[hf]' "
    "torch==2.13.0+cpu, as make test tries)")
transformers = pytest.importorskip(
    "transformers", reason="transformers is not installed (optional: pip install -e '.[hf]')")

# pylint: disable=wrong-import-position
from modeling import BertModel, checkpoint  # noqa: E402
from modeling.data.classifier_data import InputExample, convert_example  # noqa: E402
from modeling.data.tokenization import FullTokenizer  # noqa: E402
from modeling.model.config import BertConfig  # noqa: E402
from modeling.model.heads import (  # noqa: E402
    ClassifierHead, MaskedLMHead, NextSentenceHead, SquadHead)
from test_hf_checkpoint import (  # noqa: E402
    assert_same_bits, perturbed_hf_model, save_ours, their_outputs)
from tiny import TINY_CONFIG, tiny_inputs  # noqa: E402

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-5

# transformers class -> (our task, the hidden_act it is tested with, classes).
CLASSES = {
    "BertForPreTraining": ("pretraining", "gelu_new", 2),
    "BertForSequenceClassification": ("classifier", "gelu", 3),
    "BertForQuestionAnswering": ("squad", "relu", 2),
    "BertForTokenClassification": ("ner", "gelu_pytorch_tanh", 5),
}


def hf_model(name, hidden_act, num_labels, seed=0, **changes):
  """A random-weight transformers model of the tiny dimensions, every parameter
  perturbed (LayerNorms and biases too), in eval mode."""
  config = transformers.BertConfig(**{**TINY_CONFIG, "hidden_act": hidden_act,
                                      "num_labels": num_labels, **changes})
  return perturbed_hf_model(name, config, seed)


def our_outputs(prefix, config_file, task, inputs):
  """The same outputs from our model loaded (strictly) from a converted checkpoint."""
  config = BertConfig.from_json_file(config_file)
  model = BertModel(config)
  num_labels = tf.train.load_checkpoint(prefix).get_tensor("output_bias").shape[0] \
      if task in ("classifier", "ner") else None
  heads = {"pretraining": lambda: [MaskedLMHead(config, model.embedding_table),
                                   NextSentenceHead(config)],
           "classifier": lambda: [ClassifierHead(config, num_labels)],
           "ner": lambda: [ClassifierHead(config, num_labels)],
           "squad": lambda: [SquadHead(config)]}[task]()
  # Their question-answering and token classes have no pooler, and do not read it.
  no_pooler = (r"^bert/pooler/",) if task in ("squad", "ner") else ()
  report = checkpoint.load(prefix, [model] + heads, allow_missing=no_pooler)
  assert not [n for n in report.unexpected  # Only training state is left unused.
              if n != "global_step" and not n.startswith("bert_tf2/")
              and not n.endswith(("/adam_m", "/adam_v"))]
  bert = model(inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"])
  sequence = bert["sequence_output"]
  outputs = {"sequence_output": sequence.numpy()}
  if task == "pretraining":
    outputs["mlm_log_probs"] = heads[0].log_probs(sequence, inputs["masked_lm_positions"]).numpy()
    outputs["nsp_logits"] = heads[1].logits(bert["pooled_output"]).numpy()
  elif task == "classifier":
    labels = np.zeros(len(inputs["input_ids"]), np.int32)
    outputs["probabilities"] = heads[0](bert["pooled_output"], labels)[3].numpy()
  elif task == "squad":
    start, end = heads[0](sequence)
    outputs["start_logits"], outputs["end_logits"] = start.numpy(), end.numpy()
  else:
    batch_size, seq_length, width = sequence.shape
    logits = heads[0].logits(tf.reshape(sequence, [-1, width]))  # [B*S, C]
    outputs["token_logits"] = tf.reshape(logits, [batch_size, seq_length, -1]).numpy()
  return outputs


def assert_close(ours, theirs):
  assert sorted(ours) == sorted(theirs)
  for name in theirs:
    np.testing.assert_allclose(ours[name], theirs[name], rtol=0, atol=TOLERANCE, err_msg=name)


def loaded_without_warnings(name, directory):
  """from_pretrained of our export, checked to load every key and nothing else."""
  model, info = getattr(transformers, name).from_pretrained(directory, output_loading_info=True)
  assert not info["missing_keys"], info
  assert not info["unexpected_keys"] and not info["mismatched_keys"], info
  assert not info.get("error_msgs"), info
  return model.eval()


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_hugging_face_model_converts_both_ways(tmp_path, name):
  task, hidden_act, num_labels = CLASSES[name]
  inputs = tiny_inputs(batch_size=3, seq_length=16, vocab_size=99)
  theirs = hf_model(name, hidden_act, num_labels)
  theirs.save_pretrained(tmp_path / "hf")
  expected = their_outputs(theirs, inputs)

  conversion = checkpoint.from_hf(tmp_path / "hf", tmp_path / "ours")
  assert (conversion.architecture, conversion.task) == (name, task)
  prefix = tmp_path / "ours" / "bert_model.ckpt"
  config_file = tmp_path / "ours" / "bert_config.json"
  assert_close(our_outputs(str(prefix), config_file, task, inputs), expected)

  # Back to Hugging Face: the same keys and bits, and transformers loads it whole.
  checkpoint.to_hf(prefix, config_file, tmp_path / "back", task=task)
  assert_same_bits(load_file(tmp_path / "back" / "model.safetensors"),
                   load_file(tmp_path / "hf" / "model.safetensors"))
  reloaded = loaded_without_warnings(name, tmp_path / "back")
  assert reloaded.config.hidden_act == hidden_act.replace("gelu_pytorch_tanh", "gelu_new")
  assert_close(their_outputs(reloaded, inputs), expected)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_our_checkpoint_loads_into_transformers(tmp_path, name):
  task, _, _ = CLASSES[name]
  inputs = tiny_inputs(batch_size=3, seq_length=16, vocab_size=99)
  prefix, config_file, _ = save_ours(str(tmp_path / "ours"), task, seed=3, training_state=True,
                                     hidden_act="gelu_exact" if task == "classifier" else "gelu")
  conversion = checkpoint.to_hf(prefix, config_file, tmp_path / "hf", task=task)
  assert conversion.architecture == name
  theirs = loaded_without_warnings(name, tmp_path / "hf")
  assert_close(their_outputs(theirs, inputs), our_outputs(prefix, config_file, task, inputs))


def test_exported_tokenizer_tokenizes_as_ours(tmp_path, minilm_dir):
  prefix, config_file = (os.path.join(minilm_dir, "bert_model.ckpt"),
                         os.path.join(minilm_dir, "bert_config.json"))
  vocab_file = os.path.join(minilm_dir, "vocab.txt")
  checkpoint.to_hf(prefix, config_file, tmp_path / "hf", vocab_file=vocab_file)
  tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
  ours = FullTokenizer(vocab_file, do_lower_case=True)
  text = "Hello, World! Tokenizers split unaffable words: naïve café."
  assert tokenizer.tokenize(text) == ours.tokenize(text)
  model = transformers.BertModel.from_pretrained(tmp_path / "hf").eval()
  encoded = tokenizer(text, return_tensors="pt")
  with torch.no_grad():
    theirs = model(**encoded).last_hidden_state.numpy()
  bert = BertModel(BertConfig.from_json_file(config_file))
  checkpoint.load(prefix, bert)
  ids = encoded["input_ids"].numpy().astype(np.int32)
  ours_out = bert(ids, np.ones_like(ids), np.zeros_like(ids))["sequence_output"].numpy()
  np.testing.assert_allclose(ours_out, theirs, rtol=0, atol=1e-4)


WORDS = ["the", "cat", "sat", "on", "mat", "computer", "program", "code", "vote", "law",
         "paint", "art", "atom", "star"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
TOPICS = ["art", "computers", "politics", "science"]  # tsv labels: sorted, as train.tsv's


def test_run_classifier_predicts_a_converted_hugging_face_classifier(tmp_path):
  theirs = hf_model("BertForSequenceClassification", "gelu", len(TOPICS), seed=5,
                    vocab_size=len(VOCAB), id2label=dict(enumerate(TOPICS)))
  theirs.save_pretrained(tmp_path / "hf")
  (tmp_path / "hf" / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
  checkpoint.from_hf(tmp_path / "hf", tmp_path / "ours")
  assert (tmp_path / "ours" / "labels.txt").read_text().split() == TOPICS

  data = tmp_path / "data"
  data.mkdir()
  rng = np.random.RandomState(0)
  texts = [" ".join(rng.choice(WORDS, rng.randint(2, 12))) for _ in range(11)]
  (data / "train.tsv").write_text("label\ttext\n" + "".join(f"{t}\tthe cat\n" for t in TOPICS))
  (data / "test.tsv").write_text("text\n" + "".join(f"{t}\n" for t in texts))
  output_dir = tmp_path / "output"
  result = subprocess.run(
      [sys.executable, os.path.join(REPO_DIR, "run_classifier.py"), "--task_name=tsv",
       "--do_predict", f"--data_dir={data}", f"--vocab_file={tmp_path / 'ours' / 'vocab.txt'}",
       f"--bert_config_file={tmp_path / 'ours' / 'bert_config.json'}",
       f"--init_checkpoint={tmp_path / 'ours' / 'bert_model.ckpt'}",
       f"--output_dir={output_dir}", "--max_seq_length=16", "--predict_batch_size=4"],
      capture_output=True, text=True, cwd=REPO_DIR)
  assert result.returncode == 0, result.stderr[-5000:]
  assert (output_dir / "labels.txt").read_text().split() == TOPICS
  ours = np.loadtxt(output_dir / "test_results.tsv", delimiter="\t")

  tokenizer = FullTokenizer(str(tmp_path / "ours" / "vocab.txt"), do_lower_case=True)
  features = [convert_example(InputExample(str(i), text), TOPICS, 16, tokenizer)
              for i, text in enumerate(texts)]
  with torch.no_grad():
    logits = theirs(input_ids=torch.tensor([f.input_ids for f in features]),
                    attention_mask=torch.tensor([f.input_mask for f in features]),
                    token_type_ids=torch.tensor([f.segment_ids for f in features])).logits
  np.testing.assert_allclose(ours, torch.softmax(logits, -1).numpy(), rtol=0, atol=TOLERANCE)
