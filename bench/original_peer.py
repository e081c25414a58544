"""The original BERT's side of the benchmarks, run in its own process (TF1 mode).

Usage: python bench/original_peer.py {inference|pretraining} '<json settings>'
Prints one JSON line: {"seconds_per_step": ...}.
"""

import json
import sys

import original_bert  # tests/original_bert.py: sets the original up on TF 2.
from bert import run_pretraining

import common

tf, modeling, optimization = original_bert.tf, original_bert.modeling, original_bert.optimization


def main(mode, settings):
  config = modeling.BertConfig.from_dict(common.CONFIGS[settings["config"]])
  batch = common.pretraining_batch(settings["batch_size"], settings["seq_length"],
                                   settings["max_predictions"], config.vocab_size)
  tensors = {k: tf.constant(v) for k, v in batch.items()}
  training = mode == "pretraining"
  model = modeling.BertModel(config, is_training=training, input_ids=tensors["input_ids"],
                             input_mask=tensors["input_mask"],
                             token_type_ids=tensors["segment_ids"])
  if training:
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
