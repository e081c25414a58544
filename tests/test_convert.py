"""modeling.checkpoint.formats and `python -m modeling.checkpoint convert`.

Every format recognised from its files and named by `inspect`; a chain through
every format and back bit-exact; refusals of flags that cannot take effect; a
Model Garden checkpoint fine-tuned and predicted with by run_classifier.py.
"""

import io
import os
import subprocess
import sys

import numpy as np
import pytest

from modeling.checkpoint import formats, inspection, model_garden
from modeling.checkpoint.__main__ import main
from test_hf_checkpoint import assert_same_bits, read_ckpt, save_ours
from test_keras_hub import UNEVEN, write_vocab

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "modeling.checkpoint", *map(str, args)],
                        capture_output=True, text=True, cwd=REPO_DIR)


def test_every_format_in_a_chain_and_back_is_bit_exact(tmp_path):
  prefix, config_file, tensors = save_ours(str(tmp_path / "release"), "classifier", **UNEVEN)
  write_vocab(tmp_path / "release" / "vocab.txt")
  assert formats.format_of(prefix) == formats.format_of(tmp_path / "release") == "original"
  # A release directory: its config and vocabulary are found beside the checkpoint.
  formats.convert(tmp_path / "release", tmp_path / "mg", "model-garden")
  formats.convert(tmp_path / "mg", tmp_path / "kh", "keras-hub", do_lower_case=False)
  steps = formats.convert(tmp_path / "kh", tmp_path / "hf", "hf")
  assert steps[1].source == f"{tmp_path / 'kh'} (through the original layout)"
  formats.convert(tmp_path / "hf", tmp_path / "back", "original")
  for path, name in ((tmp_path / "mg", "model-garden"), (tmp_path / "kh", "keras-hub"),
                     (tmp_path / "hf", "hf"), (tmp_path / "back", "original")):
    assert formats.format_of(path) == name, path
    out = io.StringIO()
    inspection.inspect_checkpoint(path, out)
    assert f"format: {name} ({formats.FORMATS[name].description})" in out.getvalue()
    assert "heads: classifier" in out.getvalue() and "num_labels: 3" in out.getvalue()
  assert_same_bits(read_ckpt(str(tmp_path / "back" / "bert_model.ckpt")), tensors)
  # The keras-hub preset's lowercase=False reached Hugging Face's tokenizer_config.json.
  assert '"do_lower_case": false' in (tmp_path / "hf" / "tokenizer_config.json").read_text()
  assert (tmp_path / "back" / "vocab.txt").read_text() == (
      tmp_path / "release" / "vocab.txt").read_text()
  out = io.StringIO()
  assert inspection.check_checkpoint(config_file, tmp_path / "kh", "classifier", out)
  assert "format: keras-hub" in out.getvalue()


@pytest.mark.slow
def test_tfhub_in_a_chain_through_the_cli_is_bit_exact(tmp_path):
  """original -> tfhub (encoder with .mlm, preprocessing) -> original and -> hf; the
  next-sentence head, which Hub's interface has no place for, is left out."""
  prefix, _, tensors = save_ours(str(tmp_path / "release"), "pretraining", **UNEVEN)
  write_vocab(tmp_path / "release" / "vocab.txt")
  written = _cli("convert", tmp_path / "release", tmp_path / "hub", "--to=tfhub",
                 "--do_lower_case=false", "--seq_length=32")
  assert written.returncode == 0, written.stderr[-3000:]
  encoder = tmp_path / "hub" / "encoder"
  assert formats.format_of(encoder) == "tfhub"
  assert (tmp_path / "hub" / "preprocess" / "saved_model.pb").is_file()
  out = io.StringIO()
  inspection.inspect_checkpoint(encoder, out)
  assert f"format: tfhub ({formats.FORMATS['tfhub'].description})" in out.getvalue()
  formats.convert(encoder, tmp_path / "hf", "hf")
  # The SavedModel's do_lower_case=False reached Hugging Face's tokenizer_config.json.
  assert '"do_lower_case": false' in (tmp_path / "hf" / "tokenizer_config.json").read_text()
  formats.convert(encoder, tmp_path / "back", "original")
  kept = {name: value for name, value in tensors.items() if "seq_relationship" not in name}
  assert len(kept) < len(tensors)
  assert_same_bits(read_ckpt(str(tmp_path / "back" / "bert_model.ckpt")), kept)


def test_cli_convert_and_refusals(tmp_path, capsys):
  prefix, config_file, tensors = save_ours(str(tmp_path / "ours"), "pretraining", **UNEVEN)
  result = _cli("convert", prefix, tmp_path / "mg", "--to=model-garden",
                "--bert_config_file", config_file)
  assert result.returncode == 0, result.stderr
  assert "(Model Garden BertEncoder, task pretraining): 46 tensors" in result.stdout
  assert main(["convert", str(tmp_path / "mg"), str(tmp_path / "back"), "--to=original",
               "--allow_unused", "^never$"]) == 0
  assert_same_bits(read_ckpt(str(tmp_path / "back" / "bert_model.ckpt")), tensors)

  capsys.readouterr()
  for args, message in (
      ((tmp_path / "mg", tmp_path / "x", "--to=model-garden", "--approximate_gelu"),
       "--approximate_gelu: converting model-garden to model-garden has no use for it"),
      ((tmp_path / "mg", tmp_path / "x", "--to=original", "--do_lower_case=False"),
       "--do_lower_case: converting model-garden to original has no use for it"),
      ((tmp_path / "mg", tmp_path / "mg", "--to=original"), "the destination is the source"),
      ((tmp_path / "nothing", tmp_path / "x", "--to=hf"),
       "not a checkpoint of any supported format"),
      ((prefix, tmp_path / "x", "--to=keras-hub", "--bert_config_file", config_file),
       "a keras-hub preset holds its tokenizer's vocabulary"),
      ((tmp_path / "mg", tmp_path / "x", "--to=keras-hub"),
       "a keras-hub preset holds its tokenizer's vocabulary")):
    assert main(["convert", *map(str, args)]) == 1
    assert message in capsys.readouterr().err, args
    assert not (tmp_path / "x").exists()
  with pytest.raises(SystemExit):
    main(["convert", prefix, str(tmp_path / "x"), "--to=tensorflow"])
  assert "invalid choice: 'tensorflow'" in capsys.readouterr().err


def test_sources_that_hold_their_config_refuse_the_flag(tmp_path):
  prefix, config_file, _ = save_ours(str(tmp_path / "ours"), "encoder")
  vocab = write_vocab(tmp_path / "vocab.txt")
  formats.convert(prefix, tmp_path / "kh", "keras-hub", config_file, vocab)
  formats.convert(prefix, tmp_path / "hf", "hf", config_file, vocab)
  for source in ("kh", "hf"):
    with pytest.raises(ValueError, match=r"--bert_config_file=.* holds its config"):
      formats.convert(tmp_path / source, tmp_path / "x", "original", config_file)
  (tmp_path / "bare").mkdir()
  os.link(prefix + ".index", tmp_path / "bare" / "bert_model.ckpt.index")
  for data in [p for p in os.listdir(tmp_path / "ours") if ".data-" in p]:
    os.link(tmp_path / "ours" / data, tmp_path / "bare" / data)
  with pytest.raises(ValueError, match=r"no bert_config.json beside the checkpoint; give "
                                       r"--bert_config_file"):
    formats.convert(tmp_path / "bare", tmp_path / "x", "model-garden")


@pytest.mark.slow
def test_model_garden_checkpoint_fine_tunes_and_predicts_with_run_classifier(tmp_path):
  prefix, config_file, _ = save_ours(str(tmp_path / "ours"), "encoder")
  vocab = write_vocab(tmp_path / "vocab.txt")
  formats.convert(prefix, tmp_path / "mg", "model-garden", config_file, vocab)
  assert model_garden.is_model_garden(tmp_path / "mg")
  formats.convert(tmp_path / "mg", tmp_path / "release", "original")
  data = tmp_path / "data"
  data.mkdir()
  rng = np.random.RandomState(0)
  rows = [(label, " ".join(f"w{i}" for i in rng.randint(0, 90, 6))) for label in "ab" * 8]
  (data / "train.tsv").write_text("label\ttext\n" + "".join(f"{l}\t{t}\n" for l, t in rows))
  (data / "test.tsv").write_text("text\n" + "".join(f"{t}\n" for _, t in rows[:5]))
  release = tmp_path / "release"
  result = subprocess.run(
      [sys.executable, os.path.join(REPO_DIR, "run_classifier.py"), "--task_name=tsv",
       "--do_train", "--do_predict", f"--data_dir={data}", f"--vocab_file={release / 'vocab.txt'}",
       f"--bert_config_file={release / 'bert_config.json'}",
       f"--init_checkpoint={release / 'bert_model.ckpt'}", f"--output_dir={tmp_path / 'out'}",
       "--max_seq_length=16", "--train_batch_size=4", "--predict_batch_size=4",
       "--num_train_epochs=1"], capture_output=True, text=True, cwd=REPO_DIR)
  assert result.returncode == 0, result.stderr[-5000:]
  probabilities = np.loadtxt(tmp_path / "out" / "test_results.tsv", delimiter="\t")
  assert probabilities.shape == (5, 2)
  np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)


def test_real_minilm_through_model_garden_and_keras_hub_is_bit_exact(minilm_dir, tmp_path):
  release = os.path.join(minilm_dir, "bert_model.ckpt")
  original = read_ckpt(release)
  formats.convert(minilm_dir, tmp_path / "mg", "model-garden")
  formats.convert(tmp_path / "mg", tmp_path / "from_mg", "original")
  assert_same_bits(read_ckpt(str(tmp_path / "from_mg" / "bert_model.ckpt")), original)
  # MiniLM's gelu_exact: keras-hub refuses it unless told to approximate.
  with pytest.raises(ValueError, match=r"hidden_act 'gelu_exact'"):
    formats.convert(minilm_dir, tmp_path / "kh", "keras-hub")
  formats.convert(minilm_dir, tmp_path / "kh", "keras-hub", approximate_gelu=True)
  steps = formats.convert(tmp_path / "kh", tmp_path / "from_kh", "original")
  assert_same_bits(read_ckpt(str(tmp_path / "from_kh" / "bert_model.ckpt")), original)
  assert "hidden_act 'gelu' (the tanh form keras-hub's BERT hard-codes)" in steps[0].notes
