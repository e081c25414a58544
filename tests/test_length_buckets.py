"""Length buckets: the batch plan, bucketed prediction and training against unbucketed."""

import numpy as np
import pytest
import tensorflow as tf

from modeling.data import graph_packing, length_buckets
from modeling.tasks import classifier
from modeling.training import array_predictor
from tiny import tiny_config


def test_parse_buckets():
  assert length_buckets.parse_buckets("auto", 128) == [32, 64, 96, 128]
  assert length_buckets.parse_buckets("auto", 100) == [32, 64, 96, 100]
  assert length_buckets.parse_buckets("none", 128) == [128]
  assert length_buckets.parse_buckets("64, 16", 128) == [16, 64, 128]
  with pytest.raises(ValueError, match=r"--length_buckets=16,200: 200 is not in \[1, "
                                       r"--max_seq_length=128\]"):
    length_buckets.parse_buckets("16,200", 128)
  with pytest.raises(ValueError, match="'short' is not a length"):
    length_buckets.parse_buckets("short", 128)


def _masks(lengths, width):
  return (np.arange(width)[None, :] < np.asarray(lengths)[:, None]).astype(np.int32)


@pytest.mark.parametrize("count, batch_size", [(103, 8), (64, 8), (7, 4)])
def test_batch_plan_sees_every_example_once_per_pass(count, batch_size):
  rng = np.random.default_rng(count)
  lengths = rng.integers(3, 128, count)
  buckets = [32, 64, 96, 128]
  ids = length_buckets.bucket_ids(_masks(lengths, 128), buckets)
  passes = 5
  num_batches = passes * count // batch_size
  plan_buckets, plan = length_buckets.batch_plan(ids, batch_size, 3, num_batches)
  assert plan.shape == (num_batches, batch_size)
  # Each batch fits its bucket; most batches are a single bucket.
  for bucket, batch in zip(plan_buckets, plan):
    assert lengths[batch].max() <= buckets[bucket]
  # The stream is passes over the data: at any point, no example has been seen more
  # than twice as often as another (once per pass, plus the carried last few).
  stream = plan.reshape(-1)
  for end in range(batch_size, len(stream) + 1, batch_size):
    counts = np.bincount(stream[:end], minlength=count)
    assert counts.max() - counts.min() <= 2
    if end >= count:
      assert counts.min() >= end // count - 1
  assert np.bincount(stream, minlength=count).min() >= passes - 1
  # A function of the seed alone; a longer plan starts with the shorter one.
  again_buckets, again = length_buckets.batch_plan(ids, batch_size, 3, num_batches + 9)
  np.testing.assert_array_equal(again[:num_batches], plan)
  np.testing.assert_array_equal(again_buckets[:num_batches], plan_buckets)
  assert not np.array_equal(length_buckets.batch_plan(ids, batch_size, 4, num_batches)[1], plan)


def test_ungrouped_plan_is_the_unbucketed_plan_at_each_batch_longest_bucket():
  rng = np.random.default_rng(5)
  lengths = rng.integers(3, 128, 103)
  buckets = [32, 64, 96, 128]
  ids = length_buckets.bucket_ids(_masks(lengths, 128), buckets)
  plan_buckets, plan = length_buckets.batch_plan(ids, 8, 3, 60, group_by_length=False)
  _, unbucketed = length_buckets.batch_plan(np.zeros_like(ids), 8, 3, 60)
  np.testing.assert_array_equal(plan, unbucketed)
  np.testing.assert_array_equal(plan_buckets, [ids[batch].max() for batch in plan])
  # Grouped, most batches hold one bucket; ungrouped, most mix several.
  grouped = length_buckets.batch_plan(ids, 8, 3, 60)[1]
  assert np.mean([len(set(ids[b])) == 1 for b in grouped]) > 0.8
  assert np.mean([len(set(ids[b])) == 1 for b in plan]) < 0.2


def test_auto_ungrouped_uncompiled_training_pads_to_multiples_of_8():
  auto = length_buckets.parse_buckets("auto", 100)
  fine = length_buckets.training_buckets(auto, "auto", group_by_length=False, compiled=False)
  assert fine == list(range(8, 100, 8)) + [100]
  # Grouped (the buckets choose the batches), compiled (a program per length) or given.
  assert length_buckets.training_buckets(auto, "auto", True, False) == auto
  assert length_buckets.training_buckets(auto, "auto", False, True) == auto
  assert length_buckets.training_buckets([16, 100], "16", False, False) == [16, 100]
  # The batches stay the unbucketed ones; only their padding shrinks, to within 8.
  rng = np.random.default_rng(5)
  masks = _masks(rng.integers(3, 100, 103), 100)
  plans = [length_buckets.batch_plan(length_buckets.bucket_ids(masks, b), 8, 3, 40, False)
           for b in (auto, fine)]
  np.testing.assert_array_equal(plans[0][1], plans[1][1])
  longest = masks[plans[0][1]].sum(axis=2).max(axis=1)
  padded = np.asarray(fine)[plans[1][0]]
  assert np.all((longest <= padded) & ((padded < longest + 8) | (padded == 100)))
  assert np.asarray(auto)[plans[0][0]].mean() > padded.mean() + 4


def test_ungrouped_training_equals_unbucketed_training(tmp_path):
  arrays = _arrays(40)
  initial = classifier.ClassifierModel(tiny_config(max_position_embeddings=64), 3)

  def train(buckets, group_by_length):
    # pylint: disable=import-outside-toplevel
    from modeling.training import optimization, run_checkpoints
    from tiny import make_trainer
    model = classifier.ClassifierModel(tiny_config(max_position_embeddings=64), 3)
    model.head.dropout_rate = 0.0
    for target, source in zip(model.variables, initial.variables):
      target.assign(source)
    opt = optimization.create_optimizer("adamw", model.trainable_variables, 1e-3, 6, 1)
    trainer = make_trainer(tf.distribute.get_strategy(), model.loss, opt, 4,
                           totals_fn=model.loss_totals)
    checkpoints = run_checkpoints.CheckpointManager(
        tmp_path / f"{len(buckets)}-{group_by_length}", [model, opt, trainer.state])
    trainer.train(length_buckets.training_batches(arrays, buckets, 4, 2, 6,
                                                  group_by_length=group_by_length),
                  6, checkpoints, save_checkpoints_steps=6)
    return [v.numpy() for v in model.trainable_variables]

  unbucketed = train([64], True)
  ungrouped = train([16, 32, 64], False)
  grouped = train([16, 32, 64], True)
  for a, b in zip(unbucketed, ungrouped):
    np.testing.assert_allclose(b, a, atol=1e-5)
  assert max(np.max(np.abs(a - b)) for a, b in zip(unbucketed, grouped)) > 1e-4


def _arrays(count, width=64, seed=0, vocab_size=99):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(3, width + 1, count)
  mask = _masks(lengths, width)
  return {"input_ids": (rng.integers(1, vocab_size, (count, width)) * mask).astype(np.int32),
          "input_mask": mask,
          "segment_ids": (_masks(lengths // 2, width) ^ mask).astype(np.int32),
          "label_ids": rng.integers(0, 3, count).astype(np.int32)}


def test_training_batches_are_cut_to_their_bucket_and_resume_exactly():
  arrays = _arrays(50)
  buckets = [16, 32, 64]
  dataset = length_buckets.training_batches(arrays, buckets, 4, seed=1, num_batches=30)
  batches = [{k: v.numpy() for k, v in b.items()} for b in dataset]
  assert len(batches) == 30
  assert {b["input_ids"].shape[1] for b in batches} <= set(buckets)
  for batch in batches:
    width = batch["input_ids"].shape[1]
    assert batch["input_mask"].sum(1).max() <= width
    if width > 16:
      assert batch["input_mask"].sum(1).max() > buckets[buckets.index(width) - 1]
  resumed = [{k: v.numpy() for k, v in b.items()} for b in length_buckets.training_batches(
      arrays, buckets, 4, seed=1, num_batches=30, skip_batches=12)]
  for a, b in zip(batches[12:], resumed):
    for name in a:
      np.testing.assert_array_equal(a[name], b[name])


def test_bucketed_predictions_equal_unbucketed():
  model = classifier.ClassifierModel(tiny_config(max_position_embeddings=64), 3)
  arrays = _arrays(37)
  strategy = tf.distribute.get_strategy()
  plain = array_predictor.predict(strategy, model.predict_step, arrays, 5)
  bucketed = array_predictor.predict(strategy, model.predict_step, arrays, 5,
                                buckets=length_buckets.parse_buckets("auto", 64))
  assert set(plain) == set(bucketed)
  for name in plain:
    np.testing.assert_allclose(bucketed[name], plain[name], atol=1e-5, rtol=0)


def test_prediction_batches_sorted_rows_at_the_bucket_of_their_longest():
  arrays = _arrays(37)
  batches = tf.Variable(0)

  def width(batch):
    batches.assign_add(1)
    return {"width": tf.fill(tf.shape(batch["input_ids"])[:1], tf.shape(batch["input_ids"])[1])}

  widths = array_predictor.predict(tf.distribute.get_strategy(), width, arrays, 5,
                              buckets=[16, 32, 64])["width"]
  assert int(batches.numpy()) == 8  # ceil(37 / 5): only the last batch has padding rows.
  lengths = arrays["input_mask"].sum(1)
  order = np.argsort(lengths, kind="stable")
  for start in range(0, 37, 5):
    rows = order[start:start + 5]
    longest = lengths[rows].max()
    assert set(widths[rows]) == {min(b for b in (16, 32, 64) if b >= longest)}


def test_a_second_prediction_runs_the_graphs_traced_already():
  model = classifier.ClassifierModel(tiny_config(max_position_embeddings=64), 3)
  strategy = tf.distribute.get_strategy()
  buckets = length_buckets.parse_buckets("auto", 64)
  first = array_predictor.predict(strategy, model.predict_step, _arrays(37), 5, buckets)
  traced = array_predictor._gathering_step(  # pylint: disable=protected-access
      strategy, model.predict_step, False).experimental_get_tracing_count()
  assert traced >= 1
  again = array_predictor.predict(strategy, model.predict_step, _arrays(37), 5, buckets)
  assert array_predictor._gathering_step(  # pylint: disable=protected-access
      strategy, model.predict_step, False).experimental_get_tracing_count() == traced
  np.testing.assert_array_equal(again["predictions"], first["predictions"])


def test_sequence_outputs_come_back_at_full_width():
  model = classifier.ClassifierModel(tiny_config(max_position_embeddings=64), 3)

  def per_token(batch):
    return {"hidden": model.bert(batch["input_ids"], batch["input_mask"],
                                 batch["segment_ids"])["sequence_output"]}

  arrays = _arrays(11)
  strategy = tf.distribute.get_strategy()
  plain = array_predictor.predict(strategy, per_token, arrays, 4)["hidden"]
  bucketed = array_predictor.predict(strategy, per_token, arrays, 4, buckets=[16, 32, 64],
                                sequence_outputs=("hidden",))["hidden"]
  assert bucketed.shape == plain.shape == (11, 64, 32)
  real = arrays["input_mask"].astype(bool)
  np.testing.assert_allclose(bucketed[real], plain[real], atol=1e-5, rtol=0)


def test_serving_pads_each_request_to_its_bucket(tmp_path):
  from modeling.tasks import serving  # pylint: disable=import-outside-toplevel
  words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away"]
  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
  vocab_file = tmp_path / "vocab.txt"
  vocab_file.write_text("\n".join(vocab) + "\n")
  model = classifier.ClassifierModel(tiny_config(vocab_size=len(vocab),
                                                 max_position_embeddings=64), 3)
  plain = serving.ClassifierServer(model, str(vocab_file), True, 64, ["x", "y", "z"])
  bucketed = serving.ClassifierServer(model, str(vocab_file), True, 64, ["x", "y", "z"],
                                      buckets=[16, 32, 64])
  rng = np.random.default_rng(0)
  for lengths in ([3], [5, 12, 2], [20, 4], [70]):
    texts = tf.constant([" ".join(rng.choice(words, n)) for n in lengths])
    ids = bucketed.tokenizer(texts)
    widths = {}
    for name, server in (("plain", plain), ("bucketed", bucketed)):
      widths[name] = graph_packing.pack_inputs(ids, None, 64, 2, 3, server.buckets)[0].shape[1]
    expected = next(b for b in (16, 32, 64) if b >= min(max(lengths) + 2, 64))
    assert (widths["plain"], widths["bucketed"]) == (64, expected)
    np.testing.assert_allclose(bucketed.classify(texts)["probabilities"],
                               plain.classify(texts)["probabilities"], atol=1e-5, rtol=0)


def test_an_unknown_length_within_the_position_table_traces_full_attention_only():
  """Bucketed batches trace with the length unknown; a tf.cond to chunked attention
  would also build that branch and its gradient (16 GB for MiniLM's training step)."""
  from modeling import BertModel  # pylint: disable=import-outside-toplevel
  model = BertModel(tiny_config(max_position_embeddings=64))
  spec = tf.TensorSpec([2, None], tf.int32)
  graph = tf.function(lambda ids, mask: model(ids, mask)["sequence_output"]).get_concrete_function(
      spec, spec).graph
  assert not [op.type for op in graph.get_operations() if op.type in ("If", "StatelessIf")]
  sinusoidal = BertModel(tiny_config(position_embedding_type="sinusoidal"))
  graph = tf.function(lambda ids, mask: sinusoidal(ids, mask)["sequence_output"]
                      ).get_concrete_function(spec, spec).graph
  assert [op.type for op in graph.get_operations() if op.type in ("If", "StatelessIf")]
