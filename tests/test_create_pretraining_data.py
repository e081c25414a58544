"""create_pretraining_data: records against the original, sampling statistics, errors."""

import json
import os
import random
import subprocess
import sys

import numpy as np
import oracle
import pytest
import tensorflow as tf

from modeling.data import (pretraining_corpus, pretraining_data, pretraining_input,
                           pretraining_records, tfrecord, tokenization)

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "far", "away", "quick", "brown",
         "fox", "jump", "##s", "##ed", "##ing", "over", "lazy", "a", "big", "red", "house",
         "un", "##aff", "##able", "tree", "green", "blue", "sky", ",", ".", "!", "?"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
SENTENCE_WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "far", "away", "quick",
                  "brown", "fox", "jumps", "jumped", "jumping", "over", "lazy", "a", "big",
                  "red", "house", "unaffable", "tree", "green", "blue", "sky", "zebra"]


def write_vocab(directory, tokens=VOCAB):
  path = os.path.join(str(directory), "vocab.txt")
  with open(path, "w", encoding="utf-8") as f:
    f.write("".join(token + "\n" for token in tokens))
  return path


def make_documents(num_documents, seed=0, max_sentences=8, min_sentences=1):
  """Random documents of random sentences over SENTENCE_WORDS."""
  rng = random.Random(seed)
  documents = []
  for _ in range(num_documents):
    sentences = []
    for _ in range(rng.randint(min_sentences, max_sentences)):
      words = [rng.choice(SENTENCE_WORDS) for _ in range(rng.randint(1, 14))]
      sentences.append(" ".join(words).capitalize() + rng.choice([".", "!", "?", ""]))
    documents.append(sentences)
  return documents


def write_corpus(path, documents, trailing_blank=True):
  text = "\n\n".join("\n".join(sentences) for sentences in documents)
  with open(path, "w", encoding="utf-8") as f:
    f.write(text + ("\n\n" if trailing_blank else "\n"))
  return str(path)


def read_records(path):
  return [record.numpy() for record in tf.data.TFRecordDataset(str(path))]


def parse_records(path, max_seq_length, max_predictions_per_seq):
  """{feature: np.array [records, ...]} with the original feature spec."""
  spec = pretraining_input.feature_spec(max_seq_length, max_predictions_per_seq)
  examples = [tf.io.parse_single_example(r, spec) for r in read_records(path)]
  return {name: np.stack([e[name].numpy() for e in examples]) for name in spec}


def run_ours(input_files, output_files, vocab_file, lower=True, random_seed=12345, **options):
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=lower)
  return pretraining_records.create_pretraining_data(
      [str(f) for f in input_files], [str(f) for f in output_files], tokenizer,
      pretraining_data.PretrainingRecipe(**options), random_seed)


ORACLE_CREATE = """
import json, random, sys
import original_bert
from bert import create_pretraining_data as cpd, tokenization
import tensorflow.compat.v1 as tf
tf.logging.set_verbosity(tf.logging.ERROR)
for run in json.loads(sys.argv[1]):
  tokenizer = tokenization.FullTokenizer(run["vocab_file"], do_lower_case=run["lower"])
  instances = cpd.create_training_instances(
      run["input_files"], tokenizer, run["max_seq_length"], run["dupe_factor"],
      run["short_seq_prob"], run["masked_lm_prob"], run["max_predictions_per_seq"],
      random.Random(run["random_seed"]))
  cpd.write_instance_to_example_files(instances, tokenizer, run["max_seq_length"],
                                      run["max_predictions_per_seq"], [run["output_file"]])
"""


def run_original(runs):
  oracle.run(ORACLE_CREATE, json.dumps(runs))


OPTION_SETS = [
    dict(max_seq_length=128, max_predictions_per_seq=20, random_seed=12345, dupe_factor=3,
         masked_lm_prob=0.15, short_seq_prob=0.1),
    dict(max_seq_length=24, max_predictions_per_seq=6, random_seed=7, dupe_factor=2,
         masked_lm_prob=0.2, short_seq_prob=0.5),
    dict(max_seq_length=9, max_predictions_per_seq=3, random_seed=1, dupe_factor=1,
         masked_lm_prob=0.3, short_seq_prob=1.0),
]


def test_records_equal_the_originals(tmp_path):
  """One output file: every record is the original's, in order, for several option
  sets, both casings, several input files (a document running across a file
  boundary), blank-line runs and a line of control characters only."""
  vocab_file = write_vocab(tmp_path)
  documents = make_documents(60, seed=3)
  first = write_corpus(tmp_path / "a.txt", documents[:25], trailing_blank=False)
  second = tmp_path / "b.txt"
  second.write_text("\x07\x01\n\n\n" + "\n\n\n".join("\n".join(d) for d in documents[25:]),
                    encoding="utf-8")
  runs = []
  for index, options in enumerate(OPTION_SETS):
    for lower in (True, False):
      name = f"run{index}_{lower}"
      runs.append(dict(options, vocab_file=vocab_file, lower=lower,
                       input_files=[first, str(second)], output_file=str(tmp_path / name)))
      run_ours([first, second], [tmp_path / f"{name}.ours"], vocab_file,
               lower=lower, **options)
  run_original(runs)
  for run in runs:
    theirs = [tf.train.Example.FromString(r) for r in read_records(run["output_file"])]
    ours = [tf.train.Example.FromString(r) for r in read_records(run["output_file"] + ".ours")]
    assert len(ours) == len(theirs) > 0
    assert ours == theirs, run["output_file"]


def test_shards_equal_the_original_on_each_chunk(tmp_path):
  """Several output files: file k is the original run on the k-th consecutive chunk
  of documents with seed random_seed + k."""
  vocab_file = write_vocab(tmp_path)
  documents = make_documents(31, seed=4)
  corpus = write_corpus(tmp_path / "corpus.txt", documents)
  options = dict(OPTION_SETS[1])
  outputs = [tmp_path / f"shard{k}.ours" for k in range(3)]
  run_ours([corpus], outputs, vocab_file, **options)
  runs = []
  for k, (start, end) in enumerate([(0, 10), (10, 20), (20, 31)]):
    chunk = write_corpus(tmp_path / f"chunk{k}.txt", documents[start:end])
    runs.append(dict(options, vocab_file=vocab_file, lower=True, input_files=[chunk],
                     output_file=str(tmp_path / f"shard{k}"),
                     random_seed=options["random_seed"] + k))
  run_original(runs)
  for k in range(3):
    assert read_records(outputs[k]) and (
        [tf.train.Example.FromString(r) for r in read_records(outputs[k])]
        == [tf.train.Example.FromString(r) for r in read_records(tmp_path / f"shard{k}")])


def test_original_run_pretraining_reads_our_records(tmp_path):
  """The original run_pretraining input_fn parses our file; values match ours."""
  vocab_file = write_vocab(tmp_path)
  corpus = write_corpus(tmp_path / "corpus.txt", make_documents(20, seed=5))
  output = tmp_path / "data.tfrecord"
  run_ours([corpus], [output], vocab_file, max_seq_length=32,
           max_predictions_per_seq=5, dupe_factor=1)
  script = """
import json, sys
import numpy as np
import original_bert
from bert import run_pretraining
import tensorflow.compat.v1 as tf
path, count = sys.argv[1], int(sys.argv[2])
input_fn = run_pretraining.input_fn_builder([path], 32, 5, is_training=False)
batch = tf.data.make_one_shot_iterator(input_fn({"batch_size": count})).get_next()
with tf.Session() as session:
  values = session.run(batch)
print(json.dumps({k: np.asarray(v).tolist() for k, v in values.items()}))
"""
  ours = parse_records(output, 32, 5)
  count = len(ours["input_ids"])
  theirs = json.loads(oracle.run(script, output, count).strip().splitlines()[-1])
  assert sorted(theirs) == sorted(ours)
  for name, values in ours.items():
    np.testing.assert_array_equal(np.asarray(theirs[name]), values, name)


def original_tokens(features):
  """input_ids with the masked positions restored to their original ids."""
  tokens = features["input_ids"].copy()
  for row, (positions, ids, weights) in enumerate(zip(
      features["masked_lm_positions"], features["masked_lm_ids"],
      features["masked_lm_weights"])):
    count = int(weights.sum())
    tokens[row, positions[:count]] = ids[:count]
  return tokens


def test_sampling_statistics(tmp_path):
  """Masked fraction ~ masked_lm_prob, 80/10/10, ~50% random next, lengths in bounds,
  [CLS]/[SEP] in place and never masked, short sequences ~ short_seq_prob."""
  vocab_file = write_vocab(tmp_path)
  vocab = tokenization.load_vocab(vocab_file)
  corpus = write_corpus(tmp_path / "corpus.txt", make_documents(150, seed=6, max_sentences=40,
                                                                   min_sentences=20))
  output = tmp_path / "data.tfrecord"
  run_ours([corpus], [output], vocab_file, max_seq_length=64,
           max_predictions_per_seq=10, dupe_factor=5)
  f = parse_records(output, 64, 10)
  lengths = f["input_mask"].sum(axis=1)
  num_masked = f["masked_lm_weights"].sum(axis=1)
  assert len(lengths) > 1000
  assert lengths.max() <= 64 and lengths.min() >= 5
  np.testing.assert_array_equal(num_masked, np.minimum(10, np.maximum(1, np.round(
      lengths * 0.15))))
  assert abs(num_masked.sum() / lengths.sum() - 0.15) < 0.01
  # 50%, plus the chunks of a single sentence (often a document's last), always random;
  # test_next_sentence_is_random_half_the_time checks the 50% itself.
  assert 0.5 < f["next_sentence_labels"].mean() < 0.6

  tokens = original_tokens(f)
  assert (tokens[:, 0] == vocab["[CLS]"]).all()
  assert (tokens[np.arange(len(tokens)), lengths - 1] == vocab["[SEP]"]).all()
  assert ((tokens == vocab["[SEP]"]).sum(axis=1) == 2).all()
  assert (f["segment_ids"].sum(axis=1) == lengths - np.argmax(tokens == vocab["[SEP]"], axis=1)
          - 1).all()
  weights = f["masked_lm_weights"] > 0
  masked_ids = f["masked_lm_ids"][weights]
  assert not np.isin(masked_ids, [vocab["[CLS]"], vocab["[SEP]"]]).any()
  rows = np.repeat(np.arange(len(tokens)), num_masked.astype(int))
  replaced = f["input_ids"][rows, f["masked_lm_positions"][weights]]
  as_mask = (replaced == vocab["[MASK]"]).mean()
  kept = (replaced == masked_ids).mean()
  assert 0.77 < as_mask < 0.83
  # Random replacements sometimes draw the original token (1 in len(vocab)).
  assert 0.08 < kept < 0.13 and 0.08 < 1 - as_mask - kept < 0.12
  # Short sequences: about short_seq_prob of documents get a target below the maximum.
  assert 0.03 < (lengths < 40).mean() < 0.2


def test_next_sentence_is_random_half_the_time(tmp_path):
  """Documents of one-token sentences: every chunk but a document's last has several
  sentences, so B is random about half of the time."""
  vocab = pretraining_data.Vocabulary(tokenization.load_vocab(write_vocab(tmp_path)))
  documents = [[[5 + (d + i) % 20] for i in range(400)] for d in range(30)]
  recipe = pretraining_data.PretrainingRecipe(
      max_seq_length=10, dupe_factor=2, short_seq_prob=0.0, masked_lm_prob=0.15,
      max_predictions_per_seq=2, do_whole_word_mask=False)
  instances = pretraining_data.create_training_instances(documents, recipe, vocab,
                                                         random.Random(3))
  assert len(instances) > 3000
  assert 0.47 < np.mean([instance.is_random_next for instance in instances]) < 0.53


def test_whole_word_masking_masks_all_pieces_of_a_word(tmp_path):
  vocab_file = write_vocab(tmp_path)
  vocab = tokenization.load_vocab(vocab_file)
  subword = np.array([token.startswith("##") for token in vocab])
  documents = [[" ".join(["unaffable jumping jumped"] * 3) + " the cat."] * 4] * 40
  corpus = write_corpus(tmp_path / "corpus.txt", documents)
  output = tmp_path / "data.tfrecord"
  run_ours([corpus], [output], vocab_file, max_seq_length=48,
           max_predictions_per_seq=8, dupe_factor=3, do_whole_word_mask=True)
  f = parse_records(output, 48, 8)
  tokens = original_tokens(f)
  whole_words_masked = 0
  for row in range(len(tokens)):
    count = int(f["masked_lm_weights"][row].sum())
    assert 1 <= count <= 8
    masked = set(f["masked_lm_positions"][row, :count].tolist())
    for position in masked:
      # A masked piece's neighbours in the same word are masked too.
      if subword[tokens[row, position]] and tokens[row, position - 1] not in (
          vocab["[CLS]"], vocab["[SEP]"]):
        assert position - 1 in masked
      if subword[tokens[row, position + 1]]:
        assert position + 1 in masked
        whole_words_masked += 1
  assert whole_words_masked > 100


def test_deterministic_per_seed(tmp_path):
  vocab_file = write_vocab(tmp_path)
  corpus = write_corpus(tmp_path / "corpus.txt", make_documents(40, seed=8))
  options = dict(max_seq_length=32, max_predictions_per_seq=5, dupe_factor=2)
  outputs = {}
  for name, seed in [("a", 1), ("b", 1), ("c", 2)]:
    outputs[name] = [tmp_path / f"{name}{k}.tfrecord" for k in range(2)]
    run_ours([corpus], outputs[name], vocab_file, random_seed=seed, **options)

  def read(name):
    return [f.read_bytes() for f in outputs[name]]

  assert read("a") == read("b")
  assert read("a") != read("c")
  assert all(read("a"))


@pytest.mark.parametrize("length", [0, 1, 2, 3, 17, 200])
def test_random_helpers_draw_as_random_random(length):
  ours, theirs = random.Random(length), random.Random(length)
  items_ours, items_theirs = list(range(length)), list(range(length))
  for _ in range(50):
    pretraining_data.shuffle(items_ours, ours)
    theirs.shuffle(items_theirs)
    assert items_ours == items_theirs
    assert pretraining_data.randint(ours, 3, 3 + length) == theirs.randint(3, 3 + length)
  assert ours.random() == theirs.random()


def test_encoder_matches_protobuf(tmp_path):
  encoder = tfrecord.ExampleEncoder(vocab_size=300000, max_seq_length=200,
                                    max_predictions_per_seq=30)
  instance = pretraining_data.TrainingInstance(
      [2, 129, 16384, 299999, 3, 7, 3], 5, [1, 3, 5], [5, 6, 299999], True)
  features = {
      "input_ids": [2, 129, 16384, 299999, 3, 7, 3] + [0] * 193,
      "input_mask": [1] * 7 + [0] * 193,
      "segment_ids": [0] * 5 + [1] * 2 + [0] * 193,
      "masked_lm_positions": [1, 3, 5] + [0] * 27,
      "masked_lm_ids": [5, 6, 299999] + [0] * 27,
      "next_sentence_labels": [1],
  }
  expected = tf.train.Example(features=tf.train.Features(feature={
      **{name: tf.train.Feature(int64_list=tf.train.Int64List(value=values))
         for name, values in features.items()},
      "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(
          value=[1.0] * 3 + [0.0] * 27))}))
  assert tf.train.Example.FromString(encoder.encode(instance)) == expected
  # A record longer than the varint table (vocab_size 8 < 200 tokens).
  small = tfrecord.ExampleEncoder(vocab_size=8, max_seq_length=200,
                                  max_predictions_per_seq=30)
  parsed = tf.io.parse_single_example(
      small.encode(instance._replace(input_ids=[2] + [5] * 197 + [3, 3], masked_lm_ids=[5] * 3)),
      pretraining_input.feature_spec(200, 30))
  assert parsed["input_ids"].numpy().tolist() == [2] + [5] * 197 + [3, 3]
  assert parsed["masked_lm_weights"].numpy().sum() == 3.0
  with pytest.raises(ValueError, match="max_seq_length=200"):
    encoder.encode(instance._replace(input_ids=[1] * 201))


def test_streams_one_chunk_at_a_time(tmp_path, monkeypatch):
  """With several output files, each chunk is made into instances before the next
  chunk's documents are read."""
  vocab_file = write_vocab(tmp_path)
  corpus = write_corpus(tmp_path / "corpus.txt", make_documents(12, seed=9))
  events = []
  read = pretraining_records.read_raw_documents
  generate = pretraining_records.generate_instances

  def logged_read(input_files):
    for document in read(input_files):
      events.append("read")
      yield document

  def logged_generate(all_documents, *args):
    events.append(f"generate {len(all_documents)}")
    return generate(all_documents, *args)

  monkeypatch.setattr(pretraining_records, "read_raw_documents", logged_read)
  monkeypatch.setattr(pretraining_records, "generate_instances", logged_generate)
  run_ours([corpus], [tmp_path / f"s{k}" for k in range(3)], vocab_file,
           max_seq_length=32, max_predictions_per_seq=5, dupe_factor=1)
  # A counting pass, then 4 documents per chunk, each chunk used before the next.
  assert events == ["read"] * 12 + (["read"] * 4 + ["generate 4"]) * 3


@pytest.mark.parametrize("change,error,message", [
    (dict(input_files=["missing.txt"]), FileNotFoundError, "missing.txt"),
    (dict(corpus_text="\n\n \n\x07\n"), ValueError, "no text in input_file"),
    (dict(corpus_text="caf\xe9\n".encode("latin-1")), ValueError, r"corpus.txt:1: not valid"),
    (dict(vocab=[t for t in VOCAB if t != "[MASK]"]), ValueError, r"vocab.txt lacks.*\[MASK\]"),
    (dict(max_predictions_per_seq=10), ValueError, "max_predictions_per_seq=10 is too small"),
    (dict(max_seq_length=4), ValueError, "max_seq_length=4"),
    (dict(dupe_factor=0), ValueError, "dupe_factor=0"),
    (dict(masked_lm_prob=0.0), ValueError, "masked_lm_prob=0.0"),
    (dict(short_seq_prob=1.5), ValueError, "short_seq_prob=1.5"),
    (dict(output_files=["nodir/out.tfrecord"]), FileNotFoundError, "nodir"),
    (dict(output_files=[f"o{k}" for k in range(5)]), ValueError, "only 3 documents"),
    # An output that is an input would replace the corpus with records.
    (dict(output_files=["corpus.txt"]), ValueError, "--input_file=.*corpus.txt is also an output"),
    (dict(output_files=["vocab.txt"]), ValueError, "--vocab_file=.*vocab.txt is also an output"),
    # The same file twice would write one shard over the other.
    (dict(output_files=["a.tfrecord", "b.tfrecord", "a.tfrecord"]), ValueError,
     "a.tfrecord is listed twice"),
    (dict(output_files=["."]), ValueError, "is an existing directory"),
])
def test_bad_input_gets_a_clear_error(tmp_path, change, error, message):
  corpus = tmp_path / "corpus.txt"
  text = change.get("corpus_text", "A cat sat.\nThe dog ran.\n\nRed sky.\n\nBlue tree.\n")
  corpus.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
  vocab_file = write_vocab(tmp_path, change.get("vocab", VOCAB))
  options = {k: v for k, v in change.items()
             if k in ("max_predictions_per_seq", "max_seq_length", "dupe_factor",
                      "masked_lm_prob", "short_seq_prob")}
  inputs = [tmp_path / f for f in change.get("input_files", ["corpus.txt"])]
  outputs = [tmp_path / f for f in change.get("output_files", ["out.tfrecord"])]
  with pytest.raises(error, match=message):
    run_ours(inputs, outputs, vocab_file, **{"max_seq_length": 128, **options})


def test_refusals_leave_the_input_as_it_was(tmp_path):
  corpus = write_corpus(tmp_path / "corpus.txt", make_documents(5))
  before = open(corpus, "rb").read()
  os.symlink(corpus, tmp_path / "link.txt")
  with pytest.raises(ValueError, match="is also an output"):
    run_ours([corpus], [tmp_path / "link.txt"], write_vocab(tmp_path))
  assert open(corpus, "rb").read() == before


def test_a_killed_writers_temporary_file_is_never_read_and_is_removed(tmp_path):
  """A writer killed mid-file leaves `.out.tfrecord.tmp-<pid>`: no `out.tfrecord*` glob
  matches it, and the next run removes it (not a live writer's)."""
  corpus = write_corpus(tmp_path / "corpus.txt", make_documents(5))
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True).stdout.strip()
  stale = tmp_path / f".out.tfrecord.tmp-{dead}"
  live = tmp_path / f".out.tfrecord.tmp-{os.getppid()}"
  stale.write_bytes(b"half a record")
  live.write_bytes(b"another writer's")
  with pytest.raises(FileNotFoundError, match="out.tfrecord"):
    pretraining_corpus.expand_input_patterns(f"{tmp_path}/out.tfrecord*")
  run_ours([corpus], [tmp_path / "out.tfrecord"], write_vocab(tmp_path), dupe_factor=1)
  assert not stale.exists() and live.exists()
  assert pretraining_corpus.expand_input_patterns(f"{tmp_path}/out.tfrecord*") == [
      str(tmp_path / "out.tfrecord")]


@pytest.mark.parametrize("seed", range(20))
def test_truncate_seq_pair_cuts_as_the_original(seed):
  """The same random draws and the same cuts as deleting one token at a time."""
  rng = random.Random(seed)
  a = list(range(rng.randint(0, 300)))
  b = list(range(1000, 1000 + rng.randint(0, 300)))
  limit = rng.randint(1, 400)
  expected_a, expected_b = list(a), list(b)
  theirs, ours = random.Random(seed), random.Random(seed)
  while len(expected_a) + len(expected_b) > limit:  # The original's loop.
    longer = expected_a if len(expected_a) > len(expected_b) else expected_b
    if theirs.random() < 0.5:
      del longer[0]
    else:
      longer.pop()
  pretraining_data.truncate_seq_pair(a, b, limit, ours)
  assert (a, b) == (expected_a, expected_b)
  assert ours.random() == theirs.random()


class _CountingList(list):
  """A list that counts the calls that change it."""
  mutations = 0

  def _count(name):  # pylint: disable=no-self-argument
    def method(self, *args):
      self.mutations += 1
      return getattr(list, name)(self, *args)
    return method

  __delitem__ = _count("__delitem__")
  __setitem__ = _count("__setitem__")
  pop = _count("pop")


def test_truncate_seq_pair_is_linear():
  """A 200,000-token sentence is cut in one slice, not one deletion per token (the
  original's quadratic loop: 370 s for a 5 MB line)."""
  tokens_a = _CountingList(range(200_000))
  tokens_b = _CountingList(range(10))
  pretraining_data.truncate_seq_pair(tokens_a, tokens_b, 125, random.Random(0))
  assert len(tokens_a) + len(tokens_b) == 125
  assert tokens_a.mutations + tokens_b.mutations <= 2


def test_glob_expansion(tmp_path):
  for name in ("b.txt", "a.txt", "c.dat"):
    (tmp_path / name).write_text("x\n", encoding="utf-8")
  pattern = f"{tmp_path}/*.txt,{tmp_path}/c.dat"
  files = pretraining_corpus.expand_input_patterns(pattern)
  # Patterns in order; within a glob, tf.io.gfile.glob's order, as the original.
  assert sorted(files[:2]) == [f"{tmp_path}/a.txt", f"{tmp_path}/b.txt"]
  assert files[2:] == [f"{tmp_path}/c.dat"]
  with pytest.raises(FileNotFoundError, match=r"\*.md"):
    pretraining_corpus.expand_input_patterns(f"{tmp_path}/*.md")


FLAG_DEFAULTS = """
import sys
from absl import flags
{imports}
for name in sys.argv[1:]:
  print(name, repr(flags.FLAGS[name].default))
"""
ORIGINAL_FLAGS = ["input_file", "output_file", "vocab_file", "do_lower_case", "max_seq_length",
                  "max_predictions_per_seq", "random_seed", "dupe_factor", "masked_lm_prob",
                  "short_seq_prob"]


def test_script_flags_and_defaults(tmp_path):
  """Every flag of the original, with its default; do_whole_word_mask as at HEAD."""
  theirs = oracle.run(FLAG_DEFAULTS.format(
      imports="import original_bert\nfrom bert import create_pretraining_data"),
      *ORIGINAL_FLAGS)
  ours = subprocess.run(
      [sys.executable, "-c", FLAG_DEFAULTS.format(imports="import create_pretraining_data"),
       *ORIGINAL_FLAGS, "do_whole_word_mask"],
      capture_output=True, text=True, cwd=REPO_DIR, timeout=120, check=True).stdout
  assert ours.splitlines()[:-1] == theirs.splitlines()[-len(ORIGINAL_FLAGS):]
  assert ours.splitlines()[-1] == "do_whole_word_mask False"


def test_script_runs_and_logs_a_summary(tmp_path):
  vocab_file = write_vocab(tmp_path)
  write_corpus(tmp_path / "corpus.txt", make_documents(10, seed=10))
  result = subprocess.run(
      [sys.executable, os.path.join(REPO_DIR, "create_pretraining_data.py"),
       f"--input_file={tmp_path}/*.txt", f"--output_file={tmp_path}/out.tfrecord",
       f"--vocab_file={vocab_file}", "--dupe_factor=2", "--max_seq_length=32",
       "--max_predictions_per_seq=5"],
      capture_output=True, text=True, cwd=REPO_DIR, timeout=120)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "*** Example ***" in result.stderr
  assert "10 documents ->" in result.stderr and "random next" in result.stderr
  assert len(read_records(tmp_path / "out.tfrecord")) > 0
