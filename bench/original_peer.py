"""The original BERT's side of the benchmarks, run in its own process (TF1 mode).

Usage: python bench/original_peer.py {inference|pretraining|classifier} '<json settings>'
Prints one JSON line: {"seconds_per_step": ...} for inference and pretraining (a
fixed random batch), {"accuracy": ..., "train_seconds": ...} for classifier.
"""

import json
import os
import sys
import time

import original_bert  # tests/original_bert.py: sets the original up on TF 2.

import common

tf, modeling, optimization = original_bert.tf, original_bert.modeling, original_bert.optimization


def topics_examples(run_classifier, data_dir, split):
  """The InputExamples of `label<TAB>text` files with a header (../shared/data/topics),
  read by the original's DataProcessor._read_tsv."""
  lines = run_classifier.DataProcessor._read_tsv(  # pylint: disable=protected-access
      os.path.join(data_dir, f"{split}.tsv"))[1:]
  return [run_classifier.InputExample(
      f"{split}-{i}", original_bert.tokenization.convert_to_unicode(text), label=label)
          for i, (label, text) in enumerate(lines)]


def fine_tune_classifier(settings):
  """What the original run_classifier.py --do_train --do_eval runs, without its Estimator
  (gone from TF 2): the same TFRecords and input_fn, `create_model`, the checkpoint
  restored by `init_from_checkpoint` and `create_optimizer`'s train op, stepped in a
  session; the final checkpoint saved as the Estimator does; then the dev set.

  Returns:
    {"accuracy": dev accuracy, "train_seconds": seconds of the training steps}.
  """
  from bert import run_classifier  # pylint: disable=import-outside-toplevel
  bert_dir, output_dir = settings["bert_dir"], settings["output_dir"]
  batch_size, seq_length = settings["batch_size"], settings["max_seq_length"]
  config = modeling.BertConfig.from_json_file(os.path.join(bert_dir, "bert_config.json"))
  tokenizer = original_bert.tokenization.FullTokenizer(os.path.join(bert_dir, "vocab.txt"),
                                                       do_lower_case=True)
  train = topics_examples(run_classifier, settings["data_dir"], "train")
  dev = topics_examples(run_classifier, settings["data_dir"], "dev")
  labels = sorted({e.label for e in train})
  files = {}
  for name, examples in (("train", train), ("eval", dev)):
    files[name] = os.path.join(output_dir, f"{name}.tf_record")
    run_classifier.file_based_convert_examples_to_features(examples, labels, seq_length,
                                                           tokenizer, files[name])
  num_train_steps = int(len(train) / batch_size * settings["epochs"])

  def model(split, is_training):
    input_fn = run_classifier.file_based_input_fn_builder(files[split], seq_length, is_training,
                                                          drop_remainder=is_training)
    features = tf.data.make_one_shot_iterator(input_fn({"batch_size": batch_size})).get_next()
    loss, _, logits, _ = run_classifier.create_model(
        config, is_training, features["input_ids"], features["input_mask"],
        features["segment_ids"], features["label_ids"], len(labels), False)
    return loss, logits, features["label_ids"]

  checkpoint = os.path.join(output_dir, f"model.ckpt-{num_train_steps}")
  with tf.Graph().as_default():
    loss, _, _ = model("train", True)
    init_checkpoint = os.path.join(bert_dir, "bert_model.ckpt")
    assignment_map, _ = modeling.get_assignment_map_from_checkpoint(tf.trainable_variables(),
                                                                    init_checkpoint)
    tf.train.init_from_checkpoint(init_checkpoint, assignment_map)
    train_op = optimization.create_optimizer(loss, settings["learning_rate"], num_train_steps,
                                             int(0.1 * num_train_steps), False)
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      start = time.perf_counter()
      for _ in range(num_train_steps):
        sess.run(train_op)
      train_seconds = time.perf_counter() - start
      tf.train.Saver().save(sess, checkpoint)
  with tf.Graph().as_default():  # The Estimator's evaluation: a new graph, restored.
    _, logits, label_ids = model("eval", False)
    predictions = tf.argmax(logits, -1, output_type=tf.int32)
    with tf.Session() as sess:
      tf.train.Saver().restore(sess, checkpoint)
      correct = total = 0
      while True:
        try:
          predicted, expected = sess.run([predictions, label_ids])
        except tf.errors.OutOfRangeError:
          break
        correct += int((predicted == expected).sum())
        total += len(expected)
  return {"accuracy": correct / total, "train_seconds": train_seconds}


def main(mode, settings):
  if mode == "classifier":
    print(json.dumps(fine_tune_classifier(settings)))
    return
  config = modeling.BertConfig.from_dict(common.CONFIGS[settings["config"]])
  batch = common.pretraining_batch(settings["batch_size"], settings["seq_length"],
                                   settings["max_predictions"], config.vocab_size)
  tensors = {k: tf.constant(v) for k, v in batch.items()}
  training = mode == "pretraining"
  model = modeling.BertModel(config, is_training=training, input_ids=tensors["input_ids"],
                             input_mask=tensors["input_mask"],
                             token_type_ids=tensors["segment_ids"])
  if training:
    from bert import run_pretraining  # pylint: disable=import-outside-toplevel
    mlm_loss, _, _ = run_pretraining.get_masked_lm_output(
        config, model.get_sequence_output(), model.get_embedding_table(),
        tensors["masked_lm_positions"], tensors["masked_lm_ids"], tensors["masked_lm_weights"])
    nsp_loss, _, _ = run_pretraining.get_next_sentence_output(
        config, model.get_pooled_output(), tensors["next_sentence_labels"])
    fetch = optimization.create_optimizer(mlm_loss + nsp_loss, 5e-5, 100000, 10000, False)
  else:
    fetch = model.get_pooled_output()
  with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    seconds = common.time_calls(lambda: sess.run(fetch), settings["warmup"],
                                settings["iterations"])
  print(json.dumps({"seconds_per_step": seconds}))


if __name__ == "__main__":
  main(sys.argv[1], json.loads(sys.argv[2]))
