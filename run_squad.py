"""Fine-tunes BERT on SQuAD 1.1 or 2.0 and predicts answers, as the original run_squad.py.

Same flags and defaults as the original (max_seq_length 384 here), plus ours of
shared_flags.py; each flag is defined once, in the *_flags.py module of its concern.
Writes checkpoints, predictions.json, nbest_predictions.json and, with
--version_2_with_negative, null_odds.json to --output_dir; ours in addition, when
--predict_file has answers: eval_results.txt with the official EM and F1.

  python run_squad.py --vocab_file=$BERT_DIR/vocab.txt \
    --bert_config_file=$BERT_DIR/bert_config.json \
    --init_checkpoint=$BERT_DIR/bert_model.ckpt --do_train --do_predict \
    --train_file=$SQUAD_DIR/train-v1.1.json --predict_file=$SQUAD_DIR/dev-v1.1.json \
    --train_batch_size=12 --learning_rate=3e-5 --num_train_epochs=2.0 \
    --max_seq_length=384 --doc_stride=128 --output_dir=/tmp/squad_base
"""

import logging as python_logging
import os

from absl import app, flags, logging

import bucket_flags
import example_file_flags  # noqa: F401  (defines the flags)
import fine_tuning_flags
import finite_flags
import model_flags  # noqa: F401  (defines the flags)
import predict_flags  # noqa: F401  (defines the flags)
import shared_flags
import tokenizer_flags
import tpu_flags
from modeling.data import files, squad_data
from modeling.data.tokenization import validate_case_matches_checkpoint
from modeling.model.config import BertConfig
from modeling.tasks import squad, squad_metrics, squad_predictions
from modeling.training import array_predictor

flags.DEFINE_integer("max_query_length", 64, "The maximum number of tokens for the question; "
                     "longer questions are truncated to this length.")
flags.DEFINE_integer("n_best_size", 20, "The total number of n-best predictions to generate "
                     "in the nbest_predictions.json output file.")
flags.DEFINE_integer("max_answer_length", 30, "The maximum length of an answer that can be "
                     "generated (start and end are predicted independently).")
flags.DEFINE_bool("verbose_logging", False, "Log every answer whose text could not be mapped "
                  "back to the context.")
flags.DEFINE_bool("version_2_with_negative", False,
                  "If true, the SQuAD examples contain some that do not have an answer.")
flags.DEFINE_float("null_score_diff_threshold", 0.0,
                   "If null_score - best_non_null is greater than the threshold predict null.")
# The original's default; tokenizer_flags' is run_classifier's and run_pretraining's 128.
flags.FLAGS.set_default("max_seq_length", 384)

FLAGS = flags.FLAGS
finite_flags.require_finite_floats()


def check_flags(config):
  """The original's `validate_flags_or_throw`, plus ours; messages name the flags."""
  validate_case_matches_checkpoint(FLAGS.do_lower_case, FLAGS.init_checkpoint)
  shared_flags.refuse_flags(["remove_padding"], "the span loss's softmax reads every "
                            "position, the padded ones too, whose values it would change")
  if not FLAGS.do_train and not FLAGS.do_predict:
    raise ValueError("At least one of `do_train` or `do_predict` must be True.")
  if FLAGS.do_eval:
    raise ValueError("run_squad.py has no --do_eval: --do_predict writes the predictions and, "
                     "when --predict_file has answers, eval_results.txt")
  if FLAGS.do_train and not FLAGS.train_file:
    raise ValueError("If `do_train` is True, then `train_file` must be specified.")
  if FLAGS.do_predict and not FLAGS.predict_file:
    raise ValueError("If `do_predict` is True, then `predict_file` must be specified.")
  config.check_sequence_length(FLAGS.max_seq_length, name="--max_seq_length")
  if FLAGS.max_seq_length <= FLAGS.max_query_length + 3:
    raise ValueError(f"--max_seq_length={FLAGS.max_seq_length} must be greater than "
                     f"--max_query_length={FLAGS.max_query_length} + 3")
  for name in ("doc_stride", "n_best_size", "max_answer_length"):
    if FLAGS[name].value < 1:
      raise ValueError(f"--{name}={FLAGS[name].value} must be positive")


def read_examples(input_file, is_training):
  return squad_data.read_squad_examples(input_file, is_training, FLAGS.version_2_with_negative)


def to_features(examples, is_training, tokenizer):
  """The features of the examples, one at a time."""
  return squad_data.iter_features(
      examples, tokenizer, FLAGS.max_seq_length, FLAGS.doc_stride, FLAGS.max_query_length,
      is_training)


def evaluate(predictions, null_odds):
  """Official EM/F1 of the predictions on --predict_file's answers, or None without them."""
  gold = squad_data.read_gold_answers(FLAGS.predict_file)
  answered = [question_id for question_id, answers in gold.items() if answers]
  if not answered:
    logging.info("%s has no answers: nothing to evaluate", FLAGS.predict_file)
    return None
  if FLAGS.version_2_with_negative:
    return squad_metrics.evaluate_v2(gold, predictions, null_odds)
  if len(answered) < len(gold):
    unanswered = next(q for q, answers in gold.items() if not answers)
    logging.warning("Not evaluating: question %s of %s has no answers (SQuAD 2.0 data? pass "
                    "--version_2_with_negative)", unanswered, FLAGS.predict_file)
    return None
  return squad_metrics.evaluate_v1(gold, predictions)


def predict(strategy, model, tokenizer, examples, global_step, is_chief):
  """Writes the answers to --predict_file's questions, and their EM/F1 if it has answers."""
  features = list(to_features(examples, False, tokenizer))
  logging.info("***** Running predictions: %d questions, %d features, batch size %d *****",
               len(examples), len(features), FLAGS.predict_batch_size)
  outputs = array_predictor.predict(strategy, model.predict_step,
                               squad_data.feature_arrays(features, False),
                               FLAGS.predict_batch_size,
                               jit_compile=tpu_flags.jit_whole_step_from_flags())
  results = [squad_predictions.RawResult(f.unique_id, start, end) for f, start, end in
             zip(features, outputs["start_logits"], outputs["end_logits"])]
  predictions, nbest, null_odds = squad_predictions.predict_answers(
      examples, features, results, FLAGS.n_best_size, FLAGS.max_answer_length,
      FLAGS.do_lower_case, FLAGS.version_2_with_negative, FLAGS.null_score_diff_threshold)
  if not is_chief:
    return
  for path in squad_predictions.write_predictions(FLAGS.output_dir, predictions, nbest, null_odds):
    logging.info("Wrote %s", path)
  results = evaluate(predictions, null_odds)
  if results is not None:
    results["global_step"] = global_step
    logging.info("***** Eval results (%d questions) *****\n%s", len(examples),
                 "\n".join(f"  {k} = {results[k]}" for k in sorted(results)))
    files.write_eval_results(os.path.join(FLAGS.output_dir, "eval_results.txt"), results)


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  if FLAGS.verbose_logging:
    python_logging.getLogger(squad_predictions.__name__).setLevel(python_logging.DEBUG)
  config = BertConfig.from_json_file(FLAGS.bert_config_file)
  check_flags(config)
  buckets = bucket_flags.buckets_from_flags(FLAGS.max_seq_length)
  tokenizer, tokenizer_files = tokenizer_flags.tokenizer_from_flags(config)
  shared_flags.check_outputs(
      [*squad_predictions.PREDICTION_FILES, "eval_results.txt"],
      [("--train_file", FLAGS.train_file if FLAGS.do_train else None),
       ("--predict_file", FLAGS.predict_file if FLAGS.do_predict else None),
       *tokenizer_files, ("--bert_config_file", FLAGS.bert_config_file)])
  # Both files are read first, so that a bad one fails before training, not after.
  train_examples = read_examples(FLAGS.train_file, True) if FLAGS.do_train else None
  predict_examples = read_examples(FLAGS.predict_file, False) if FLAGS.do_predict else None
  for flag, examples in (("train_file", train_examples), ("predict_file", predict_examples)):
    if examples == []:
      raise ValueError(f"--{flag}={FLAGS[flag].value} has no question to use")

  if FLAGS.do_train:
    # Only the inputs are kept: the features' token maps would take several GB for SQuAD.
    train_arrays = squad_data.feature_arrays(to_features(train_examples, True, tokenizer), True)
  compute_dtype = shared_flags.compute_dtype_from_flags(FLAGS.use_tpu)
  strategy = tpu_flags.strategy_from_flags()
  is_chief, model, optimizer, trainer, checkpoints, num_train_steps = (
      fine_tuning_flags.set_up_fine_tuning(
          strategy, len(train_examples or ()),
          lambda: squad.SquadModel(config, FLAGS.use_tpu, compute_dtype),
          squad.FRESH_HEAD, FLAGS.init_checkpoint, "predict with"))

  if FLAGS.do_train:
    logging.info("***** Running training: %d questions, %d features, batch size %d, %d steps "
                 "*****", len(train_examples), len(train_arrays["input_ids"]),
                 FLAGS.train_batch_size, num_train_steps)
    status = shared_flags.train_on_bucketed_arrays(trainer, train_arrays, buckets,
                                                   num_train_steps, checkpoints)
    if status is not None:
      return status

  if FLAGS.do_predict:
    predict(strategy, model, tokenizer, predict_examples, int(optimizer.global_step.numpy()),
            is_chief)
  return 0


if __name__ == "__main__":
  for name in ("bert_config_file", "output_dir"):  # and --vocab_file or --spm_model_file
    flags.mark_flag_as_required(name)
  app.run(main)
