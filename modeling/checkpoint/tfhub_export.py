"""Checkpoints in the original layout out to TF Hub BERT SavedModels (encoder, preprocess).

The inverse of `tfhub_import`, with TF Hub's interface, so that code written for
TF Hub BERT (`hub.KerasLayer(preprocess)` then `hub.KerasLayer(encoder)`) runs
on ours unchanged:

  DST/encoder/     `encoder(inputs, training=False)`: inputs {input_word_ids,
                   input_mask, input_type_ids} int32 [B, S] -> {pooled_output
                   [B, H], sequence_output [B, S, H], encoder_outputs (one
                   [B, S, H] per layer), default (= pooled_output)}; with the
                   checkpoint's masked-LM head, `encoder.mlm(inputs + {
                   masked_lm_positions int32 [B, P]})` adds mlm_logits [B, P, V];
                   the `vocab_file` asset and `do_lower_case` variable, as
                   Google's exports have, and `bert_config` (the config, for
                   `tfhub_import`); `variables`, `trainable_variables`,
                   `regularization_losses` (TF Hub's reusable SavedModel API).
  DST/preprocess/  `preprocess(sentences string [B])` -> the encoder's inputs,
                   [B, seq_length]; `preprocess.tokenize(sentences)` -> int32
                   [B, (words), (pieces)], with `get_special_tokens_dict()`;
                   `preprocess.bert_pack_inputs([a] or [a, b], seq_length=...)`
                   of int32 RaggedTensors [B, (pieces)] or [B, (words), (pieces)].

The encoder is our `BertModel` (the original's numerics), the preprocessing our
in-graph tokenizer (`graph_tokenization`, the original's tokens) and packing
(`graph_packing`, the original's truncation). Loading either needs
`import tensorflow_text` first (the tokenizer's ops).

  special_tokens(vocab_file)           -> {name: id}, TF Hub's special tokens
  read_checkpoint(ckpt_path, config)   -> (model, mlm_head or None, report, notes)
  to_tfhub(ckpt_path, bert_config_file, output_dir, vocab_file=None,
           do_lower_case=True, seq_length=128)                  -> Conversion
"""

import os
import re

import tensorflow as tf

from modeling.checkpoint.hf_import import Conversion, write_directory
from modeling.checkpoint.layout import checkpoint_name, is_training_state
from modeling.checkpoint.loader import load
from modeling.checkpoint.tfhub_import import CONFIG_ASSET, LOWER_CASE, VOCAB_ASSET
from modeling.data import files, tokenization
from modeling.data.graph_packing import pack_inputs
from modeling.data.graph_tokenization import InGraphTokenizer
from modeling.model.config import BertConfig
from modeling.model.heads import MaskedLMHead
from modeling.model.model import BertModel

ENCODER_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")


class _Attributes(tf.Module):
  """A SavedModel object to hang attributes on, TF Hub's lists among them."""

  # TF Hub reads plain lists under these names, where tf.Module has properties.
  variables = trainable_variables = None


def _reusable(call, variables):
  """An object with TF Hub's reusable SavedModel API around the tf.function `call`."""
  obj = _Attributes()
  obj.__call__ = call
  obj.variables = list(variables)
  obj.trainable_variables = [v for v in variables if v.trainable]
  obj.regularization_losses = []
  return obj


def _encoder_outputs(model, inputs, training):
  """TF Hub's encoder outputs of our BertModel on TF Hub's inputs (int32 [B, S] each)."""
  outputs = model(inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"],
                  training=training)
  return {"sequence_output": outputs["sequence_output"],  # [B, S, H]
          "pooled_output": outputs["pooled_output"],  # [B, H]
          "default": outputs["pooled_output"],
          "encoder_outputs": list(outputs["all_encoder_layers"])}  # L x [B, S, H]


def encoder_module(model, mlm_head=None):
  """TF Hub's BERT encoder object of a BertModel (and its MaskedLMHead, as `.mlm`)."""
  spec = {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in ENCODER_INPUTS}

  @tf.function(autograph=False)
  def encode(inputs, training=False):
    return _encoder_outputs(model, inputs, training)

  for training in (False, True):
    encode.get_concrete_function(spec, training=training)
  encoder = _reusable(encode, model.variables)
  if mlm_head is None:
    return encoder

  @tf.function(autograph=False)
  def encode_mlm(inputs, training=False):
    outputs = _encoder_outputs(model, inputs, training)
    outputs.pop("default")  # As Google's `.mlm`.
    positions = inputs["masked_lm_positions"]  # [B, P]
    logits = mlm_head.logits(outputs["sequence_output"], positions)  # [B*P, V]
    outputs["mlm_logits"] = tf.reshape(
        logits, tf.concat([tf.shape(positions), [mlm_head.vocab_size]], 0))  # [B, P, V]
    return outputs

  mlm_spec = {**spec, "masked_lm_positions": tf.TensorSpec([None, None], tf.int32,
                                                           name="masked_lm_positions")}
  for training in (False, True):
    encode_mlm.get_concrete_function(mlm_spec, training=training)
  encoder.mlm = _reusable(encode_mlm, model.variables + mlm_head.variables)
  return encoder


def special_tokens(vocab_file):
  """TF Hub's `get_special_tokens_dict()` of a vocabulary: {name: id}.

  Raises:
    ValueError: no [UNK], [CLS], [SEP] or [PAD], or [PAD] not 0 (the original's
      packing pads with 0).
  """
  vocab = tokenization.load_vocab(vocab_file)
  for token in ("[UNK]", "[CLS]", "[SEP]", "[PAD]"):
    if token not in vocab:
      raise ValueError(f"--vocab_file={vocab_file} has no {token} token, which BERT's "
                       "tokenization and packing need")
  if vocab["[PAD]"] != 0:
    raise ValueError(f"--vocab_file={vocab_file}: [PAD] has id {vocab['[PAD]']}; the "
                     "original's packing pads with id 0")
  special = {"vocab_size": len(vocab), "start_of_sequence_id": vocab["[CLS]"],
             "end_of_segment_id": vocab["[SEP]"], "padding_id": 0}
  if "[MASK]" in vocab:
    special["mask_id"] = vocab["[MASK]"]
  return special


def preprocess_module(vocab_file, do_lower_case, seq_length):
  """TF Hub's BERT preprocessing object on our in-graph tokenizer and packing."""
  special = special_tokens(vocab_file)
  cls_id, sep_id = special["start_of_sequence_id"], special["end_of_segment_id"]
  tokenizer = InGraphTokenizer(vocab_file, do_lower_case)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")],
               autograph=False)
  def tokenize(sentences):
    return tf.cast(tokenizer.word_pieces(sentences), tf.int32)  # [B, (words), (pieces)]

  def pack(segments, length):
    """1 or 2 int32 RaggedTensors [B, (pieces)] or [B, (words), (pieces)] -> int32 [B, S]."""
    if len(segments) not in (1, 2):
      raise ValueError(f"bert_pack_inputs takes 1 or 2 segments, got {len(segments)}")
    ids = [tf.cast(s if s.ragged_rank == 1 else s.merge_dims(1, -1), tf.int64)
           for s in segments]  # [B, (pieces)] each
    input_ids, input_mask, segment_ids = pack_inputs(
        ids[0], ids[1] if len(ids) == 2 else None, length, cls_id, sep_id)
    return {"input_word_ids": input_ids, "input_mask": input_mask,
            "input_type_ids": segment_ids}

  @tf.function(autograph=False)
  def bert_pack_inputs(inputs, seq_length=seq_length):
    return pack(list(inputs), seq_length)

  for ragged_rank in (1, 2):
    for count in (1, 2):
      bert_pack_inputs.get_concrete_function(
          [tf.RaggedTensorSpec([None] * (ragged_rank + 1), tf.int32)] * count,
          seq_length=tf.TensorSpec([], tf.int32))

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")],
               autograph=False)
  def preprocess(sentences):
    return pack([tokenize(sentences)], seq_length)

  root = _reusable(preprocess, [])
  root.tokenizer = tokenizer
  root.tokenize = _Attributes()
  root.tokenize.__call__ = tokenize
  root.tokenize.get_special_tokens_dict = _Attributes()
  root.tokenize.get_special_tokens_dict.__call__ = tf.function(
      lambda: {key: tf.constant(value, tf.int32) for key, value in special.items()},
      input_signature=[], autograph=False)
  root.bert_pack_inputs = _Attributes()
  root.bert_pack_inputs.__call__ = bert_pack_inputs
  return root


def _vocab_beside(ckpt_path):
  """The vocab.txt beside a checkpoint prefix (a Google release) or in its directory."""
  ckpt_path = os.fspath(ckpt_path)
  directory = ckpt_path if files.isdir(ckpt_path) else os.path.dirname(ckpt_path)
  path = os.path.join(directory, "vocab.txt")
  return path if files.exists(path) else None


def read_checkpoint(ckpt_path, config):
  """Our BertModel, and MaskedLMHead when the checkpoint has one, loaded from it.

  Returns:
    (model, mlm_head or None, the LoadReport, notes naming what was left out).

  Raises:
    ValueError: the checkpoint does not fit the config (`checkpoint.load`), or
      holds only part of the masked-LM head.
  """
  with tf.device("/cpu:0"):
    model = BertModel(config)
    mlm_head = MaskedLMHead(config, model.embedding_table)
  report = load(ckpt_path, [model, mlm_head], allow_missing=(MaskedLMHead.VARIABLES,))
  head_names = {name for name in map(checkpoint_name, mlm_head.variables)
                if re.search(MaskedLMHead.VARIABLES, name)}  # Not the shared embeddings.
  if head_names & set(report.missing):
    if head_names - set(report.missing):
      raise ValueError(f"checkpoint {report.checkpoint} holds only part of the masked-LM "
                       f"head (it lacks {', '.join(sorted(report.missing))}); refused")
    mlm_head = None
  left_out = [name for name in report.unexpected if not is_training_state(name)]
  notes = [f"left out {name} (TF Hub's BERT interface has no place for it)"
           for name in left_out]
  state = len(report.unexpected) - len(left_out)
  if state:
    notes.append(f"left out {state} training-state entries (global_step, Adam slots)")
  return model, mlm_head, report, notes


# What to_tfhub writes into its output directory.
_OUTPUTS = ("encoder", "preprocess")


def to_tfhub(ckpt_path, bert_config_file, output_dir, vocab_file=None, do_lower_case=True,
             seq_length=128):
  """Converts a checkpoint in the original layout to TF Hub's BERT SavedModels.

  Writes `output_dir/encoder/` and `output_dir/preprocess/` (see the module
  docstring), whole or not at all (`hf_import.write_directory`). The encoder
  holds the checkpoint's encoder and pooler and, when it has them,
  `cls/predictions/...` (as `.mlm`); the other heads (next sentence, a
  classifier) have no place in TF Hub's interface and are left out, each named
  in the notes.

  Args:
    ckpt_path: a checkpoint prefix, a directory with a `checkpoint` file, or a
      Hugging Face directory (`checkpoint.open_checkpoint`).
    bert_config_file: its bert_config.json (a BERT config: ALBERT is refused).
    output_dir: where to write: absent, empty, or an earlier to_tfhub output.
    vocab_file: the vocab.txt; None: the one beside the checkpoint (a Google
      release's directory), else refused.
    do_lower_case: the tokenizer's, stored as the encoder's `do_lower_case`.
    seq_length: the preprocessing's default length (its root call, and
      `bert_pack_inputs` without `seq_length=`).

  Returns:
    A Conversion.
  """
  bert_config_file, output_dir = os.fspath(bert_config_file), os.fspath(output_dir)
  config = BertConfig.from_json_file(bert_config_file)
  if config.is_albert:
    raise ValueError(f"{bert_config_file}: an ALBERT config; TF Hub's BERT interface is "
                     "written for BERT checkpoints only; refused")
  if not isinstance(seq_length, int) or seq_length < 3:
    raise ValueError(f"--seq_length={seq_length!r}: give an integer of at least 3 "
                     "([CLS] a [SEP] needs 3)")
  config.check_sequence_length(seq_length, "--seq_length")
  vocab_file = os.fspath(vocab_file) if vocab_file else _vocab_beside(ckpt_path)
  if vocab_file is None:
    raise ValueError(f"no --vocab_file, and no vocab.txt beside {ckpt_path}: TF Hub's "
                     "encoder (its vocab_file asset) and the preprocessing need the "
                     "vocabulary")
  config.check_vocab_size(special_tokens(vocab_file)["vocab_size"], vocab_file)
  files.check_replaceable_directory(output_dir, "encoder", "output_dir", _OUTPUTS)
  model, mlm_head, report, notes = read_checkpoint(ckpt_path, config)
  encoder = encoder_module(model, mlm_head)
  # The attributes Google's exports have, and the config `tfhub_import` reads back.
  setattr(encoder, VOCAB_ASSET, tf.saved_model.Asset(vocab_file))
  setattr(encoder, CONFIG_ASSET, tf.saved_model.Asset(bert_config_file))
  with tf.device("/cpu:0"):
    setattr(encoder, LOWER_CASE, tf.Variable(bool(do_lower_case), trainable=False,
                                             name=LOWER_CASE))
  preprocess = preprocess_module(vocab_file, do_lower_case, seq_length)
  writers = [("encoder", lambda path: tf.saved_model.save(encoder, path)),
             ("preprocess", lambda path: tf.saved_model.save(preprocess, path))]
  written = write_directory(output_dir, "encoder", _OUTPUTS, writers)
  task = "pretraining" if mlm_head else "encoder"
  return Conversion(report.checkpoint, "TF Hub BERT encoder" + (" with .mlm" if mlm_head
                                                                 else ""),
                    task, len(report.loaded), written, notes)

