"""The RoBERTa recipe: packing, unmasked records, dynamic masking, masked LM only."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from modeling.data import (pretraining_data, pretraining_input, pretraining_records, tfrecord,
                           tokenization)
from modeling.data.dynamic_masking import DynamicMasker
from modeling.data.pretraining_data import PretrainingRecipe
from modeling.tasks import pretraining
from test_create_pretraining_data import VOCAB, make_documents, write_corpus, write_vocab
from test_run_pretraining import _main, read_checkpoint, write_config

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEQ, PRED = 32, 5


def _ids_documents(seed=0, count=12):
  """Documents of sentences of distinct ids (each token appears once in the corpus)."""
  rng = np.random.default_rng(seed)
  next_id, documents = 1000, []
  for _ in range(count):
    document = []
    for _ in range(int(rng.integers(1, 6))):
      length = int(rng.integers(1, 70))  # Some longer than a whole sequence.
      document.append(list(range(next_id, next_id + length)))
      next_id += length
    documents.append(document)
  return documents


@pytest.mark.parametrize("cross_documents", [True, False])
def test_packing_keeps_every_token_in_order_within_the_limit(cross_documents):
  documents = _ids_documents()
  packed = list(pretraining_data.pack_sentences(documents, SEQ, cross_documents))
  corpus = [t for document in documents for sentence in document for t in sentence]
  assert [t for tokens in packed for t in tokens if t is not None] == corpus
  assert all(len(tokens) + 2 <= SEQ for tokens in packed)
  assert all(tokens and tokens[0] is not None and tokens[-1] is not None for tokens in packed)
  document_of = {t: d for d, document in enumerate(documents)
                 for sentence in document for t in sentence}
  crossing = [tokens for tokens in packed
              if len({document_of[t] for t in tokens if t is not None}) > 1]
  if not cross_documents:
    assert not crossing and not any(None in tokens for tokens in packed)
    return
  assert crossing
  for tokens in packed:  # Exactly one [SEP] between two documents' tokens.
    for before, after in zip(tokens, tokens[1:]):
      if before is not None and after is not None:
        assert document_of[before] == document_of[after]
    for i, token in enumerate(tokens):
      if token is None:
        assert document_of[tokens[i - 1]] != document_of[tokens[i + 1]]
  # Whole sentences fill a sequence: the next one would not have fitted.
  starts = {sentence[0] for document in documents for sentence in document}
  for tokens, following in zip(packed, packed[1:]):
    if following[0] in starts:
      sentence = next(s for d in documents for s in d if s[0] == following[0])
      assert len(tokens) + 1 + min(len(sentence), SEQ - 2) > SEQ - 2


def _records(path, **spec):
  return [tfrecord.parse_example(record) for record in tfrecord.read_records(str(path))]


@pytest.fixture
def corpus(tmp_path):
  """(corpus file, vocab file, tokenizer) of small random documents."""
  corpus_file = write_corpus(tmp_path / "corpus.txt", make_documents(40, seed=3, max_sentences=10))
  vocab_file = write_vocab(tmp_path)
  return corpus_file, vocab_file, tokenization.FullTokenizer(vocab_file)


@pytest.mark.parametrize("packing, next_sentence", [
    ("pairs", True), ("pairs", False), ("full_sentences", False), ("doc_sentences", False)])
def test_unmasked_records(tmp_path, corpus, packing, next_sentence):
  corpus_file, _, tokenizer = corpus
  out = tmp_path / "out.tfrecord"
  pretraining_records.create_pretraining_data(
      [corpus_file], [str(out)], tokenizer,
      PretrainingRecipe(max_seq_length=SEQ, max_predictions_per_seq=PRED, dupe_factor=1,
                        masking="dynamic", packing=packing, next_sentence=next_sentence))
  records = _records(out)
  expected = {"input_ids", "input_mask", "segment_ids"}
  if next_sentence:
    expected.add("next_sentence_labels")
  assert all(set(r) == expected for r in records)
  mask_id = tokenizer.vocab["[MASK]"]
  assert not any(mask_id in r["input_ids"] for r in records)
  if packing != "pairs":
    assert all(not any(r["segment_ids"]) for r in records)
  if packing == "pairs" and next_sentence:
    assert 0.3 < np.mean([r["next_sentence_labels"][0] for r in records]) < 0.7


def test_static_masking_of_packed_sequences_never_masks_a_separator(tmp_path, corpus):
  corpus_file, _, tokenizer = corpus
  out = tmp_path / "out.tfrecord"
  pretraining_records.create_pretraining_data(
      [corpus_file], [str(out)], tokenizer,
      PretrainingRecipe(max_seq_length=SEQ, max_predictions_per_seq=PRED, dupe_factor=2,
                        packing="full_sentences", next_sentence=False))
  sep = tokenizer.vocab["[SEP]"]
  for record in _records(out):
    assert "next_sentence_labels" not in record
    count = int(sum(record["masked_lm_weights"]))
    assert count >= 1
    assert sep not in record["masked_lm_ids"][:count]  # The ids before masking.


def test_recipe_errors_name_the_flag(tmp_path, corpus):
  corpus_file, _, tokenizer = corpus
  with pytest.raises(ValueError, match="packing=full_sentences makes one segment.*"
                                       "--next_sentence=false"):
    pretraining_records.create_pretraining_data([corpus_file], [str(tmp_path / "o")], tokenizer,
                                                PretrainingRecipe(packing="full_sentences"))
  with pytest.raises(ValueError, match="masking='random'"):
    pretraining_records.create_pretraining_data([corpus_file], [str(tmp_path / "o")], tokenizer,
                                                PretrainingRecipe(masking="random"))


def test_script_dynamic_masking_defaults_to_one_copy(tmp_path, corpus):
  corpus_file, vocab_file, _ = corpus
  outputs, logs = {}, {}
  for name, extra in (("dynamic", ["--masking=dynamic"]), ("static", [])):
    outputs[name] = tmp_path / f"{name}.tfrecord"
    logs[name] = subprocess.run(
        [sys.executable, "create_pretraining_data.py", f"--input_file={corpus_file}",
         f"--output_file={outputs[name]}", f"--vocab_file={vocab_file}",
         f"--max_seq_length={SEQ}", f"--max_predictions_per_seq={PRED}", *extra],
        capture_output=True, text=True, cwd=REPO_DIR, check=True).stderr
  assert "--masking=dynamic: --dupe_factor=1" in logs["dynamic"]
  assert "--dupe_factor=1" not in logs["static"]
  dynamic, static = (len(_records(outputs[n])) for n in ("dynamic", "static"))
  assert 8 * dynamic < static < 12 * dynamic  # dupe_factor 10 against 1


# ----------------------------------------------------------------------------
# Dynamic masking.

@pytest.fixture(scope="module")
def masker_vocab(tmp_path_factory):
  return write_vocab(tmp_path_factory.mktemp("vocab"))


def _record(words, vocab_file, seq=64):
  """An unmasked [CLS] A [SEP] B [SEP] record of `words` (ids from the vocabulary)."""
  vocab = tokenization.load_vocab(vocab_file)
  ids = [vocab["[CLS]"], *(vocab[w] for w in words[:len(words) // 2]), vocab["[SEP]"],
         *(vocab[w] for w in words[len(words) // 2:]), vocab["[SEP]"]]
  padding = seq - len(ids)
  return {"input_ids": tf.constant(ids + [0] * padding, tf.int64),
          "input_mask": tf.constant([1] * len(ids) + [0] * padding, tf.int64),
          "segment_ids": tf.constant([0] * seq, tf.int64)}


def _draws(masker, record, count, start=0):
  masked = tf.function(masker)
  return [{k: v.numpy() for k, v in masked(tf.constant(i, tf.int64), record).items()}
          for i in range(start, start + count)]


def test_dynamic_masks_follow_the_originals_rules(masker_vocab):
  words = [w for w in VOCAB[5:] if not w.startswith("##")] * 2  # 54 words
  record = _record(words, masker_vocab)
  masker = DynamicMasker(masker_vocab, max_predictions_per_seq=20, masked_lm_prob=0.15, seed=7)
  ids = record["input_ids"].numpy()
  length = int(record["input_mask"].numpy().sum())
  expected_count = min(20, max(1, round(length * 0.15)))
  kinds = {"mask": 0, "kept": 0, "random": 0}
  selected_per_position = np.zeros(len(ids))
  for draw in _draws(masker, record, 400):
    count = int(draw["masked_lm_weights"].sum())
    assert count == expected_count
    positions = draw["masked_lm_positions"][:count]
    assert list(positions) == sorted(set(positions))
    assert not draw["masked_lm_positions"][count:].any()
    special = {0, length - 1, 1 + len(words) // 2}
    assert not special & set(positions.tolist())
    np.testing.assert_array_equal(draw["masked_lm_ids"][:count], ids[positions])
    unchanged = np.delete(np.arange(len(ids)), positions)
    np.testing.assert_array_equal(draw["input_ids"][unchanged], ids[unchanged])
    for position in positions:
      new = draw["input_ids"][position]
      kinds["mask" if new == masker.mask_id else "kept" if new == ids[position]
            else "random"] += 1
    selected_per_position[positions] += 1
  total = sum(kinds.values())
  assert abs(kinds["mask"] / total - 0.8) < 0.03
  assert abs(kinds["kept"] / total - 0.1) < 0.03  # (a random id may equal the original)
  assert abs(kinds["random"] / total - 0.1) < 0.03
  # Every maskable position is chosen about equally often.
  maskable = selected_per_position[1:length - 1]
  maskable = maskable[maskable > 0]
  assert len(maskable) == length - 3
  assert maskable.max() < 2.5 * maskable.mean()


def test_dynamic_masks_are_a_function_of_seed_and_place(masker_vocab):
  record = _record([w for w in VOCAB[5:] if not w.startswith("##")], masker_vocab)
  first = _draws(DynamicMasker(masker_vocab, 10, seed=1), record, 5)
  again = _draws(DynamicMasker(masker_vocab, 10, seed=1), record, 5)
  other_seed = _draws(DynamicMasker(masker_vocab, 10, seed=2), record, 5)
  for a, b in zip(first, again):
    for name in a:
      np.testing.assert_array_equal(a[name], b[name])
  # Each read (a new epoch is a new place in the stream) and each seed: new masks.
  assert len({d["masked_lm_positions"].tobytes() for d in first}) == 5
  assert all(a["masked_lm_positions"].tobytes() != b["masked_lm_positions"].tobytes()
             for a, b in zip(first, other_seed))


def test_whole_word_dynamic_masks_take_every_piece(masker_vocab):
  words = ["jump", "##s", "the", "un", "##aff", "##able", "cat", "jump", "##ed", "red",
           "jump", "##ing", "fox", "un", "##aff", "##able", "mat", "blue"] * 2
  record = _record(words, masker_vocab)
  vocab = tokenization.load_vocab(masker_vocab)
  ids = record["input_ids"].numpy()
  is_piece = np.array([token.startswith("##") for token in vocab])[ids]
  masker = DynamicMasker(masker_vocab, 8, masked_lm_prob=0.2, whole_word=True, seed=3)
  for draw in _draws(masker, record, 200):
    count = int(draw["masked_lm_weights"].sum())
    assert 1 <= count <= 8
    chosen = set(draw["masked_lm_positions"][:count].tolist())
    for position in range(1, len(ids)):
      if is_piece[position] and ids[position - 1] not in (vocab["[SEP]"], vocab["[CLS]"]):
        # A piece is chosen exactly when the position before it is.
        assert (position in chosen) == (position - 1 in chosen)


def test_pipeline_masks_by_place_so_a_resumed_stream_matches(tmp_path, corpus):
  corpus_file, vocab_file, tokenizer = corpus
  out = tmp_path / "out.tfrecord"
  pretraining_records.create_pretraining_data(
      [corpus_file], [str(out)], tokenizer,
      PretrainingRecipe(max_seq_length=SEQ, max_predictions_per_seq=PRED, dupe_factor=1,
                        masking="dynamic", packing="full_sentences", next_sentence=False))
  masker = DynamicMasker(vocab_file, PRED, seed=5)

  def batches(skip, count):
    dataset = pretraining_input.pretraining_dataset(
        [str(out)], SEQ, PRED, 4, True, seed=5, skip_records=skip * 4, masker=masker,
        next_sentence=False)
    return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(count)]

  straight, resumed = batches(0, 30), batches(20, 10)
  assert set(straight[0]) == {"input_ids", "input_mask", "segment_ids", "masked_lm_positions",
                              "masked_lm_ids", "masked_lm_weights"}
  for a, b in zip(straight[20:], resumed):
    for name in a:
      np.testing.assert_array_equal(a[name], b[name])
  # Several passes over the data: the same record comes back with new masks.
  by_text = {}
  for batch in straight:
    for row in range(4):
      unmasked = batch["input_ids"][row].copy()
      count = int(batch["masked_lm_weights"][row].sum())
      unmasked[batch["masked_lm_positions"][row][:count]] = (
          batch["masked_lm_ids"][row][:count])
      by_text.setdefault(unmasked.tobytes(), set()).add(
          batch["masked_lm_positions"][row].tobytes())
  assert max(len(masks) for masks in by_text.values()) > 1


# ----------------------------------------------------------------------------
# run_pretraining: masked LM only, dynamic masking, resumption.

def test_masked_lm_only_model_has_no_next_sentence_head():
  from tiny import tiny_config  # pylint: disable=import-outside-toplevel
  model = pretraining.PretrainingModel(tiny_config(), next_sentence=False)
  assert not [v.name for v in model.variables if "seq_relationship" in v.name]
  from tiny import tiny_inputs  # pylint: disable=import-outside-toplevel
  batch = {k: v for k, v in tiny_inputs().items() if k != "next_sentence_labels"}
  totals = model.loss_totals(batch)
  with tf.GradientTape() as tape:
    loss = model.loss(batch, totals)
  gradients = tape.gradient(loss, model.trainable_variables)
  untrained = {v.name for v, g in zip(model.trainable_variables, gradients) if g is None}
  assert untrained == {"bert/pooler/dense/kernel:0", "bert/pooler/dense/bias:0"}
  assert {v.name for v in model.trained_variables} == (
      {v.name for v in model.trainable_variables} - untrained)
  metrics = tf.distribute.get_strategy().run(model.eval_metrics, (batch,))
  assert set(metrics) == {"masked_lm_accuracy", "masked_lm_loss", "loss"}


@pytest.fixture
def dynamic_run(tmp_path, corpus):
  """(config, unmasked packed records, vocab file) for run_pretraining."""
  corpus_file, vocab_file, tokenizer = corpus
  records = tmp_path / "unmasked.tfrecord"
  pretraining_records.create_pretraining_data(
      [corpus_file], [str(records)], tokenizer,
      PretrainingRecipe(max_seq_length=16, max_predictions_per_seq=4, dupe_factor=1,
                        masking="dynamic", packing="full_sentences", next_sentence=False))
  config = write_config(tmp_path / "bert_config.json", vocab_size=len(VOCAB),
                        hidden_dropout_prob=0.1)
  return config, str(records), vocab_file


def test_dynamic_masking_mlm_only_resumes_exactly(tmp_path, dynamic_run):
  """Dropout on; the run resumes from step 3 after its last checkpoint is deleted."""
  config, records, vocab_file = dynamic_run
  flags = dict(dynamic_masking=True, vocab_file=vocab_file, next_sentence=False,
               save_checkpoints_steps=3, num_train_steps=6, do_eval=True)
  out = tmp_path / "out"
  assert _main(config, records, str(out), **flags) == 0
  straight = read_checkpoint(out / "model.ckpt-6")
  results = (out / "eval_results.txt").read_text()
  for path in out.glob("model.ckpt-6.*"):
    path.unlink()
  assert _main(config, records, str(out), **flags) == 0
  resumed = read_checkpoint(out / "model.ckpt-6")
  assert set(straight) == set(resumed)
  assert not [name for name in straight if "seq_relationship" in name]
  for name in straight:
    np.testing.assert_allclose(straight[name], resumed[name], atol=1e-6, err_msg=name)
  assert "masked_lm_accuracy" in results and "next_sentence" not in results


def test_records_and_flags_must_agree(tmp_path, dynamic_run):
  config, records, vocab_file = dynamic_run
  out = str(tmp_path / "out")
  with pytest.raises(ValueError, match=r"unmasked.tfrecord: record 0 is not masked .*"
                                       r"--dynamic_masking"):
    _main(config, records, out, next_sentence=False)
  with pytest.raises(ValueError, match=r"record 0 has no next_sentence_labels .*"
                                       r"--next_sentence=false"):
    _main(config, records, out, dynamic_masking=True, vocab_file=vocab_file)
  with pytest.raises(ValueError, match="--dynamic_masking needs --vocab_file"):
    _main(config, records, out, dynamic_masking=True, next_sentence=False)


def test_dynamic_masking_refuses_static_records(tmp_path, corpus):
  corpus_file, vocab_file, tokenizer = corpus
  static = tmp_path / "static.tfrecord"
  pretraining_records.create_pretraining_data(
      [corpus_file], [str(static)], tokenizer,
      PretrainingRecipe(max_seq_length=16, max_predictions_per_seq=4, dupe_factor=1))
  config = write_config(tmp_path / "bert_config.json", vocab_size=len(VOCAB))
  with pytest.raises(ValueError, match=r"record 0 is already masked"):
    _main(config, str(static), str(tmp_path / "out"), dynamic_masking=True,
          vocab_file=vocab_file)
  # Static records hold their masks: the masking flags cannot take effect.
  for flags, named in ((dict(masked_lm_prob=0.9, do_whole_word_mask=True),
                        "--masked_lm_prob, --do_whole_word_mask"),
                       (dict(vocab_file=vocab_file), "--vocab_file")):
    with pytest.raises(ValueError, match=rf"^{named}: the records' masks were drawn by "
                                         r"create_pretraining_data.py; .*--dynamic_masking"):
      _main(config, str(static), str(tmp_path / "out"), **flags)
  assert not os.path.exists(tmp_path / "out")
  # MLM only on static records with next-sentence labels: the labels are not read.
  assert _main(config, str(static), str(tmp_path / "out"), next_sentence=False,
               num_train_steps=2) == 0


@pytest.mark.parametrize("whole_word", [False, True])
def test_dynamic_masking_refuses_ids_beyond_the_vocab_file(tmp_path, dynamic_run, whole_word):
  """A --vocab_file shorter than the records' ids is named, in the first record or
  the first one met while training (where the whole-word gather would fail raw)."""
  config, records, _ = dynamic_run
  ids = [list(r["input_ids"]) for r in _records(records)]
  flags = dict(dynamic_masking=True, next_sentence=False, do_whole_word_mask=whole_word,
               num_train_steps=len(ids))

  def vocab_of(size, name):
    os.makedirs(tmp_path / name)
    return write_vocab(tmp_path / name, VOCAB[:size])

  first = max(ids[0])
  with pytest.raises(ValueError, match=rf"unmasked.tfrecord: record 0 has input_ids "
                                       rf"{first}, outside \[0, {first}\) of "
                                       rf"--vocab_file=.*short.*another vocabulary"):
    _main(config, records, str(tmp_path / "out"), vocab_file=vocab_of(first, "short"), **flags)
  # Record 0 fits, a later one does not.
  later = next(i for i, record in enumerate(ids) if max(record) > first)
  bad = next(i for i in ids[later] if i > first)
  with pytest.raises(ValueError, match=rf"unmasked.tfrecord: record {later} has input_ids "
                                       rf"{bad}, outside \[0, {first + 1}\)"):
    _main(config, records, str(tmp_path / "out2"), vocab_file=vocab_of(first + 1, "later"),
          **flags)
