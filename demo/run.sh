#!/usr/bin/env bash
# The main job end to end on data the project makes itself (see demo/make_data.py):
# create pretraining data, pretrain a small BERT, fine-tune a classifier from it,
# evaluate, predict, export a SavedModel and classify raw sentences with it.
#   bash demo/run.sh [OUTPUT_DIR] (default demo_out; a rerun resumes or redoes each stage)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-demo_out}
export TF_CPP_MIN_LOG_LEVEL=2
stage() { printf '\n==== %s\n' "$*"; }
quiet() { "$@" 2>"$OUT/last_stage.log" || { tail -40 "$OUT/last_stage.log"; exit 1; }; }
mkdir -p "$OUT"

stage "1/5 data: the docstrings of Python's standard library -> $OUT/data"
quiet $PY demo/make_data.py "$OUT/data"
tail -1 "$OUT/last_stage.log"

stage "2/5 create_pretraining_data.py -> $OUT/pretraining_data.tfrecord"
quiet $PY create_pretraining_data.py --input_file="$OUT/data/corpus.txt" \
  --output_file="$OUT/pretraining_data.tfrecord" --vocab_file="$OUT/data/vocab.txt" \
  --max_seq_length=64 --max_predictions_per_seq=10 --dupe_factor=5
grep -E "Wrote|instances" "$OUT/last_stage.log" | tail -2

stage "3/5 run_pretraining.py: 300 steps of MLM + NSP from scratch -> $OUT/pretraining"
quiet $PY run_pretraining.py --input_file="$OUT/pretraining_data.tfrecord" \
  --output_dir="$OUT/pretraining" --bert_config_file="$OUT/data/bert_config.json" \
  --do_train --do_eval --train_batch_size=32 --max_seq_length=64 \
  --max_predictions_per_seq=10 --num_train_steps=300 --num_warmup_steps=30 \
  --learning_rate=2e-4 --save_checkpoints_steps=300 --log_steps=100 --max_eval_steps=20
grep -E "step [0-9]+/" "$OUT/last_stage.log" | sed 's/^.*\] //'
cat "$OUT/pretraining/eval_results.txt"

stage "4/5 run_classifier.py: fine-tune on topics, evaluate, predict, export -> $OUT/classifier"
quiet $PY run_classifier.py --task_name=tsv --data_dir="$OUT/data/topics" \
  --vocab_file="$OUT/data/vocab.txt" --bert_config_file="$OUT/data/bert_config.json" \
  --init_checkpoint="$OUT/pretraining" --output_dir="$OUT/classifier" \
  --do_train --do_eval --do_predict --max_seq_length=64 --train_batch_size=32 \
  --learning_rate=1e-3 --num_train_epochs=3 --log_steps=50 --export_dir="$OUT/saved_model"
cat "$OUT/classifier/eval_results.txt"
echo "test predictions: $(wc -l < "$OUT/classifier/test_results.tsv") rows in" \
  "$OUT/classifier/test_results.tsv (columns: $(paste -sd' ' "$OUT/classifier/labels.txt"))"

stage "5/5 the SavedModel ($OUT/saved_model) on raw sentences, in a fresh process"
quiet $PY demo/classify.py "$OUT/saved_model" \
  "Return the square root of x as a floating point number." \
  "Open a connection to the remote host on the given port." \
  "Remove the directory and every file under it." \
  "Replace every match of the pattern in the string."
cat "$OUT/last_stage.log" | grep -v "^[IWE]0000\|^WARNING" || true
printf '\nDone: everything is under %s\n' "$OUT"
