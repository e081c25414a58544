"""DistilBERT-style knowledge distillation (Sanh et al. 2019) into a smaller BERT.

A distillation module holds a student, which is trained, and a teacher, which
only runs: without dropout, its outputs behind `tf.stop_gradient`. The teacher is
not a tracked part of the module (`_TF_MODULE_IGNORED_PROPERTIES`), so the
module's `variables`, the optimizer and the run's checkpoints hold the student
alone, under the original's names: a checkpoint is the student's, in the layout
every script reads. The teacher is loaded from its own checkpoint at each start
(`load_teacher`).

- `MaskedLMDistillation` (general distillation, on the masked-LM records of
  run_pretraining.py): student and teacher are `PretrainingModel`s without the
  next-sentence head. With M = B*P masked positions of weights w and the real
  tokens (input_mask) of the batch, the loss is
    alpha_ce * T^2 * sum_m w_m KL(softmax(t_m / T) || softmax(s_m / T)) / (sum w + 1e-5)
    + alpha_mlm * sum_m w_m nll_m / (sum w + 1e-5)      (the original masked-LM loss)
    + alpha_cos * sum_real (1 - cos(h_s, h_t)) / (number of real tokens)
  t_m, s_m the teacher's and student's vocabulary logits at position m, h the
  last layer's hidden states of a token; sums over the whole global batch.
- `ClassifierDistillation` (task-specific, on run_classifier.py's data): student
  and teacher are `ClassifierModel`s; over the B examples,
    alpha_ce * T^2 * sum_b KL(softmax(t_b / T) || softmax(s_b / T)) / B
    + alpha_label * sum_b nll(label_b) / B.

`init_from_teacher_layers` starts a student as DistilBERT did: the teacher's
embeddings, pooler and heads, and student layer i from teacher layer
`layers[i]` (by default every other layer, `default_student_layers`).

Shape legend: B batch, S sequence, P masked positions per sequence, M = B*P,
H hidden, V vocabulary, C classes.
"""

import dataclasses
import re

import tensorflow as tf

from modeling import checkpoint
from modeling.tasks import pretraining
from modeling.tasks.classifier import ClassifierModel
from modeling.tasks.pretraining import PretrainingModel
from modeling.training import steps

# Config keys that must agree for the teacher's weights to compute the same
# function in the student.
_SHAPE_KEYS = ("vocab_size", "hidden_size", "num_attention_heads", "intermediate_size",
               "hidden_act", "type_vocab_size", "max_position_embeddings",
               "position_embedding_type")
_LAYER_NAME = re.compile(r"^bert/encoder/layer_(\d+)/(.+)$")


@dataclasses.dataclass(frozen=True)
class Objective:
  """The weights of the distillation loss and the temperature T.

  alpha_ce: the soft-target term (KL at temperature T, times T^2).
  alpha_mlm: the masked-LM loss against the true ids (general distillation).
  alpha_cos: the cosine loss of the last hidden states (general distillation).
  alpha_label: the cross-entropy with the labels (task-specific distillation),
    the hard-target term as alpha_mlm is in general distillation.
  """
  alpha_ce: float = 5.0
  alpha_mlm: float = 2.0
  alpha_cos: float = 1.0
  alpha_label: float = 2.0
  temperature: float = 2.0

  def check(self, task_specific):
    """Raises ValueError (naming the flag) for a negative weight, T <= 0, or no
    term that learns from the teacher."""
    for name in ("alpha_ce", "alpha_mlm", "alpha_cos", "alpha_label"):
      if not getattr(self, name) >= 0:
        raise ValueError(f"--{name}={getattr(self, name)} must not be negative")
    if not self.temperature > 0:
      raise ValueError(f"--temperature={self.temperature} must be positive")
    if task_specific and not self.alpha_ce:
      raise ValueError("--alpha_ce=0 leaves nothing to learn from the teacher: that is "
                       "plain fine-tuning (run_classifier.py)")
    if not task_specific and not (self.alpha_ce or self.alpha_cos):
      raise ValueError("--alpha_ce=0 and --alpha_cos=0 leave nothing to learn from the "
                       "teacher: that is masked-LM training (run_pretraining.py "
                       "--next_sentence=false)")


def soft_target_kl(teacher_logits, student_logits, temperature):
  """KL(softmax(teacher / T) || softmax(student / T)) of each row.

  Logits may be given as log-probabilities: a per-row shift does not change a
  softmax.

  Args:
    teacher_logits, student_logits: float [N, K].
    temperature: T, a positive Python float.

  Returns:
    float32 [N].
  """
  teacher = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / temperature, axis=-1)
  student = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / temperature, axis=-1)
  return tf.reduce_sum(tf.exp(teacher) * (teacher - student), axis=-1)


def cosine_distance(student_hidden, teacher_hidden):
  """1 - cos(student, teacher) of each token.

  Args:
    student_hidden, teacher_hidden: float [B, S, H].

  Returns:
    float32 [B, S].
  """
  student = tf.math.l2_normalize(tf.cast(student_hidden, tf.float32), axis=-1)
  teacher = tf.math.l2_normalize(tf.cast(teacher_hidden, tf.float32), axis=-1)
  return 1.0 - tf.reduce_sum(student * teacher, axis=-1)


def masked_lm_sums(objective, student_logits, teacher_logits, label_ids, label_weights,
                   student_hidden, teacher_hidden, input_mask):
  """The general-distillation terms of a batch as (sum, count) pairs.

  The teacher's term with weight 0 in `objective` is left out (its teacher
  input may be None); the masked-LM loss is always there.

  Args:
    objective: an Objective.
    student_logits, teacher_logits: float [M, V] vocabulary logits (or
      log-probabilities) at the masked positions.
    label_ids: int [B, P] the true ids; label_weights: float [B, P].
    student_hidden, teacher_hidden: float [B, S, H] last-layer hidden states.
    input_mask: int [B, S], 1 for real tokens.

  Returns:
    {"distill_ce": (sum_m w_m T^2 KL_m, sum w), "masked_lm_loss": (sum_m w_m nll_m,
    sum w), "cosine_loss": (sum_real (1 - cos), real tokens)}, float32 scalars.
  """
  weights = tf.reshape(tf.cast(label_weights, tf.float32), [-1])  # [M]
  total_weight = tf.reduce_sum(weights)
  sums = {}
  if objective.alpha_ce:
    kl = soft_target_kl(teacher_logits, student_logits, objective.temperature)  # [M]
    sums["distill_ce"] = (objective.temperature ** 2 * tf.reduce_sum(weights * kl),
                          total_weight)
  log_probs = tf.nn.log_softmax(tf.cast(student_logits, tf.float32), axis=-1)  # [M, V]
  ids = tf.reshape(tf.cast(label_ids, tf.int32), [-1, 1])  # [M, 1]
  nll = -tf.gather(log_probs, ids, axis=1, batch_dims=1)[:, 0]  # [M]
  sums["masked_lm_loss"] = (tf.reduce_sum(weights * nll), total_weight)
  if objective.alpha_cos:
    real = tf.cast(input_mask, tf.float32)  # [B, S]
    distance = cosine_distance(student_hidden, teacher_hidden)  # [B, S]
    sums["cosine_loss"] = (tf.reduce_sum(real * distance), tf.reduce_sum(real))
  return sums


# Term: (weight attribute of Objective, totals key the loss divides by, epsilon).
_MASKED_LM_TERMS = {"distill_ce": ("alpha_ce", "masked_lm_weight", 1e-5),
                    "masked_lm_loss": ("alpha_mlm", "masked_lm_weight", 1e-5),
                    "cosine_loss": ("alpha_cos", "tokens", 0.0)}
_CLASSIFIER_TERMS = {"distill_ce": ("alpha_ce", "examples", 0.0),
                     "label_loss": ("alpha_label", "examples", 0.0)}


def loss_share(objective, sums, totals, terms):
  """This batch's share of the update's weighted loss, float32 scalar.

  Args:
    objective: an Objective.
    sums: {term: (sum, count)} of this batch.
    totals: the counts summed over the global batch (`loss_totals`).
    terms: {term: (Objective attribute, totals key, epsilon)}.
  """
  loss = tf.constant(0.0)
  for name, (total, _) in sums.items():
    weight, key, epsilon = terms[name]
    loss += getattr(objective, weight) * total / (totals[key] + epsilon)
  return loss


class _Distillation(tf.Module):
  """A student (tracked: variables, optimizer, checkpoints) and a teacher (not tracked)."""

  _TF_MODULE_IGNORED_PROPERTIES = tf.Module._TF_MODULE_IGNORED_PROPERTIES | {"teacher"}

  def __init__(self, student, teacher, objective):
    super().__init__()
    self.student = student
    self.teacher = teacher
    self.objective = objective

  @property
  def trained_variables(self):
    """What the optimizer updates: the student's trained variables, never the teacher's."""
    return getattr(self.student, "trained_variables", self.student.trainable_variables)

  def _load_teacher(self, ckpt_path, allow_missing):
    """Reads the teacher's variables (strict but for `allow_missing`); returns the LoadReport."""
    return checkpoint.load(ckpt_path, self.teacher, allow_missing=allow_missing)


class MaskedLMDistillation(_Distillation):
  """General distillation of a `PretrainingModel` (masked LM only) into a smaller one."""

  def __init__(self, student_config, teacher_config, objective=Objective(),
               use_one_hot_embeddings=False, compute_dtype=tf.float32, remove_padding=False):
    """Args:
      student_config, teacher_config: BertConfigs (same vocabulary; the same
        hidden_size when alpha_cos > 0).
      objective: an Objective.
      use_one_hot_embeddings, compute_dtype, remove_padding: as BertModel, for both
        models (the losses weigh real tokens only).

    Raises:
      ValueError: the vocabularies differ, or the widths with alpha_cos > 0.
    """
    check_distillable(student_config, teacher_config, objective, task_specific=False)
    super().__init__(
        PretrainingModel(student_config, use_one_hot_embeddings, compute_dtype,
                         next_sentence=False, remove_padding=remove_padding),
        PretrainingModel(teacher_config, use_one_hot_embeddings, compute_dtype,
                         next_sentence=False, remove_padding=remove_padding),
        objective)

  def load_teacher(self, ckpt_path):
    """Loads the teacher from a checkpoint; returns the LoadReport.

    The pooler is optional (nothing here reads it); the masked-LM head
    `cls/predictions` is needed when alpha_ce > 0.

    Raises:
      ValueError: the head is absent though needed, or the checkpoint does not
        fit the teacher's config (variables named).
    """
    _, _, entries = checkpoint.open_checkpoint(ckpt_path)
    if self.objective.alpha_ce and "cls/predictions/output_bias" not in entries:
      raise ValueError(
          f"--teacher_checkpoint={ckpt_path} has no masked-LM head (cls/predictions/...): "
          "the vocabulary logits that --alpha_ce distils would be random. Train the head "
          "first (run_pretraining.py --next_sentence=false --init_checkpoint=...) or pass "
          "--alpha_ce=0")
    return self._load_teacher(ckpt_path, (r"^bert/pooler/",) + (
        () if self.objective.alpha_ce else pretraining.FRESH_HEADS))

  @staticmethod
  def loss_totals(batch):
    """What the loss divides by, summed over this batch: {name: float32 scalar}."""
    return {"masked_lm_weight": tf.reduce_sum(batch["masked_lm_weights"]),
            "tokens": tf.reduce_sum(tf.cast(batch["input_mask"], tf.float32))}

  def _outputs(self, batch, training):
    """(sums of `masked_lm_sums`, student log-probs [M, V], teacher log-probs [M, V] or None)."""
    objective = self.objective
    inputs = (batch["input_ids"], batch["input_mask"], batch["segment_ids"])
    positions = batch["masked_lm_positions"]
    student_hidden = self.student.bert(*inputs, training=training)["sequence_output"]
    student_log_probs = self.student.masked_lm.log_probs(student_hidden, positions)
    teacher_hidden = teacher_log_probs = None
    if objective.alpha_ce or objective.alpha_cos:
      teacher_hidden = tf.stop_gradient(
          self.teacher.bert(*inputs, training=False)["sequence_output"])
    if objective.alpha_ce:
      teacher_log_probs = tf.stop_gradient(
          self.teacher.masked_lm.log_probs(teacher_hidden, positions))
    sums = masked_lm_sums(objective, student_log_probs, teacher_log_probs,
                          batch["masked_lm_ids"], batch["masked_lm_weights"], student_hidden,
                          teacher_hidden, batch["input_mask"])
    return sums, student_log_probs, teacher_log_probs

  def loss(self, batch, totals):
    """Training loss share (student dropout on), float32 scalar.

    Args:
      batch: a (micro-)batch of `pretraining_input.pretraining_dataset`.
      totals: `loss_totals` summed over every batch of the update.
    """
    sums, _, _ = self._outputs(batch, training=True)
    return loss_share(self.objective, sums, totals, _MASKED_LM_TERMS)

  def eval_metrics(self, batch):
    """{name: (numerator, denominator)} on one replica: the student's masked-LM
    accuracy and loss, the teacher's accuracy (with alpha_ce), each term and the loss."""
    sums, student_log_probs, teacher_log_probs = self._outputs(batch, training=False)
    context = tf.distribute.get_replica_context()
    totals = context.all_reduce(tf.distribute.ReduceOp.SUM, self.loss_totals(batch))
    metrics = dict(sums)
    # The mean over steps of each global batch's loss.
    metrics["loss"] = (loss_share(self.objective, sums, totals, _MASKED_LM_TERMS),
                       tf.constant(1.0 / context.num_replicas_in_sync))
    weights = tf.reshape(batch["masked_lm_weights"], [-1])  # [M]
    ids = tf.reshape(batch["masked_lm_ids"], [-1])  # [M]

    def accuracy(log_probs):
      correct = tf.equal(tf.argmax(log_probs, -1, output_type=tf.int32), ids)
      return tf.reduce_sum(weights * tf.cast(correct, tf.float32)), tf.reduce_sum(weights)

    metrics["masked_lm_accuracy"] = accuracy(student_log_probs)
    if teacher_log_probs is not None:
      metrics["teacher_masked_lm_accuracy"] = accuracy(teacher_log_probs)
    return metrics


class ClassifierDistillation(_Distillation):
  """Task-specific distillation of a fine-tuned `ClassifierModel` into a smaller one."""

  def __init__(self, student_config, teacher_config, num_labels, objective=Objective(),
               use_one_hot_embeddings=False, compute_dtype=tf.float32, remove_padding=False):
    """Args:
      student_config, teacher_config: BertConfigs (same vocabulary).
      num_labels: C, the classes of the task (the teacher's too).
      objective: an Objective (alpha_ce, alpha_label, temperature).
      use_one_hot_embeddings, compute_dtype, remove_padding: as BertModel, for both
        models (the losses weigh real tokens only).
    """
    check_distillable(student_config, teacher_config, objective, task_specific=True)
    super().__init__(
        ClassifierModel(student_config, num_labels, False, use_one_hot_embeddings,
                        compute_dtype, remove_padding=remove_padding),
        ClassifierModel(teacher_config, num_labels, False, use_one_hot_embeddings,
                        compute_dtype, remove_padding=remove_padding),
        objective)

  def load_teacher(self, ckpt_path):
    """Loads the fine-tuned teacher classifier (every variable); returns the LoadReport.

    Raises:
      ValueError: the checkpoint has no classifier head, another number of
        classes, or does not fit the teacher's config.
    """
    _, _, entries = checkpoint.open_checkpoint(ckpt_path)
    num_labels = self.student.head.num_outputs
    if "output_bias" not in entries:
      raise ValueError(f"--teacher_checkpoint={ckpt_path} has no classifier head "
                       "(output_weights, output_bias): give a fine-tuned classifier, e.g. "
                       "the --output_dir of run_classifier.py --do_train")
    if tuple(entries["output_bias"][0]) != (num_labels,):
      raise ValueError(f"--teacher_checkpoint={ckpt_path} classifies into "
                       f"{entries['output_bias'][0][0]} classes, the task has {num_labels}: "
                       "was the teacher fine-tuned on this task?")
    return self._load_teacher(ckpt_path, ())

  loss_totals = staticmethod(steps.example_totals)

  def _sums(self, batch, training):
    inputs = (batch["input_ids"], batch["input_mask"], batch["segment_ids"])
    pooled = self.student.bert(*inputs, training=training)["pooled_output"]  # [B, H]
    _, label_loss, student_logits, _ = self.student.head(pooled, batch["label_ids"],
                                                         training)  # [B], [B, C]
    teacher_pooled = self.teacher.bert(*inputs, training=False)["pooled_output"]
    teacher_logits = tf.stop_gradient(self.teacher.head.logits(teacher_pooled))  # [B, C]
    return classifier_sums(self.objective, student_logits, teacher_logits, label_loss)

  def loss(self, batch, totals):
    """Training loss share (student dropout on), float32 scalar.

    Args:
      batch: a (micro-)batch of `length_buckets.training_batches`.
      totals: `loss_totals` summed over every batch of the update.
    """
    return loss_share(self.objective, self._sums(batch, training=True), totals,
                      _CLASSIFIER_TERMS)

  def predict_step(self, batch):
    """The student's `ClassifierModel.predict_step`."""
    return self.student.predict_step(batch)

  def teacher_predict_step(self, batch):
    """The teacher's `ClassifierModel.predict_step`."""
    return self.teacher.predict_step(batch)


def classifier_sums(objective, student_logits, teacher_logits, label_loss):
  """The task-specific terms of a batch as (sum, count) pairs.

  Args:
    objective: an Objective.
    student_logits, teacher_logits: float [B, C].
    label_loss: float32 [B], the student's cross-entropy with the labels.

  Returns:
    {"distill_ce": (sum_b T^2 KL_b, B), "label_loss": (sum_b nll_b, B)} (a term
    of weight 0 left out), float32 scalars.
  """
  count = tf.cast(tf.shape(label_loss)[0], tf.float32)
  sums = {"distill_ce": (objective.temperature ** 2 * tf.reduce_sum(
      soft_target_kl(teacher_logits, student_logits, objective.temperature)), count)}
  if objective.alpha_label:
    sums["label_loss"] = (tf.reduce_sum(label_loss), count)
  return sums


def check_distillable(student_config, teacher_config, objective, task_specific):
  """Raises ValueError when student and teacher cannot read the same inputs or their
  outputs cannot be compared."""
  if student_config.vocab_size != teacher_config.vocab_size:
    raise ValueError(f"the student's vocab_size={student_config.vocab_size} differs from the "
                     f"teacher's {teacher_config.vocab_size}: both read the same word ids "
                     "(and the masked-LM logits cover the vocabulary)")
  if (not task_specific and objective.alpha_cos
      and student_config.hidden_size != teacher_config.hidden_size):
    raise ValueError(f"--alpha_cos compares hidden states, but the student's hidden_size="
                     f"{student_config.hidden_size} differs from the teacher's "
                     f"{teacher_config.hidden_size}: pass --alpha_cos=0 or use the teacher's "
                     "width")


def check_same_widths(student_config, teacher_config):
  """Raises ValueError, listing the differences, unless the teacher's weights fit the student.

  Everything but the number of layers (and dropout, initializer) must agree.
  """
  differences = [f"{key} {getattr(student_config, key)!r} (student) vs "
                 f"{getattr(teacher_config, key)!r} (teacher)" for key in _SHAPE_KEYS
                 if getattr(student_config, key) != getattr(teacher_config, key)]
  if student_config.is_albert or teacher_config.is_albert:
    differences.append("an ALBERT config (shared layers have no layer to copy)")
  if differences:
    raise ValueError("--student_init=teacher_layers copies the teacher's weights, but the "
                     "student's config differs from the teacher's in "
                     + "; ".join(differences)
                     + ": use --student_init=random or a checkpoint of the student's size")


def default_student_layers(teacher_layers, student_layers):
  """Every other teacher layer for half as many, evenly spaced in general:
  student layer i from teacher layer floor(i * teacher_layers / student_layers).

  Raises:
    ValueError: the student has more layers than the teacher.
  """
  if student_layers > teacher_layers:
    raise ValueError(f"the student has {student_layers} layers, the teacher {teacher_layers}: "
                     "name the teacher layer of each with --student_layers")
  return [i * teacher_layers // student_layers for i in range(student_layers)]


def parse_student_layers(text, teacher_layers, student_layers):
  """The teacher layer of each student layer, from `--student_layers` ("0,2,4").

  Args:
    text: comma-separated teacher layer indexes, one per student layer; empty or
      None for `default_student_layers`.
    teacher_layers, student_layers: the configs' num_hidden_layers.

  Raises:
    ValueError: not integers, not one per student layer, or out of range.
  """
  if not text:
    return default_student_layers(teacher_layers, student_layers)
  try:
    layers = [int(part) for part in text.split(",")]
  except ValueError:
    raise ValueError(f"--student_layers={text!r} must be comma-separated layer indexes, "
                     "e.g. 0,2,4") from None
  if len(layers) != student_layers:
    raise ValueError(f"--student_layers={text!r} names {len(layers)} layers; the student "
                     f"config has num_hidden_layers={student_layers}")
  bad = [layer for layer in layers if not 0 <= layer < teacher_layers]
  if bad:
    raise ValueError(f"--student_layers={text!r}: layer {bad[0]} is not one of the teacher's "
                     f"0..{teacher_layers - 1}")
  return layers


def init_from_teacher_layers(student, teacher, layers, names=None):
  """Copies the teacher's weights into the student, DistilBERT's initialisation.

  Student layer i (`bert/encoder/layer_i/...`) gets teacher layer `layers[i]`;
  every other variable (embeddings, pooler, heads) the teacher's of the same name.

  Args:
    student, teacher: tf.Modules of the same architecture but for the number of
      layers (`check_same_widths`).
    layers: the teacher layer of each student layer.
    names: the teacher's names to copy (those read from its checkpoint); None:
      all. The student's others keep their values.

  Returns:
    The student names copied.
  """
  sources = checkpoint.named_variables(teacher)
  copied = []
  for name, variable in checkpoint.named_variables(student).items():
    match = _LAYER_NAME.match(name)
    source = f"bert/encoder/layer_{layers[int(match[1])]}/{match[2]}" if match else name
    if source in sources and (names is None or source in names):
      variable.assign(sources[source])
      copied.append(name)
  return copied
