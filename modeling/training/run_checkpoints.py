"""A run's checkpoints: `model.ckpt-<step>` with retention, resume, and initialisation.

Checkpoints are name-based, `model.ckpt-<step>` in the output directory with a
`checkpoint` state file, as the original Estimator writes them; they hold the
model, `global_step` and the Adam slots, so the original code can read them and
original training checkpoints resume here, plus the `steps.TrainingState`
(dropout random state, loss scale) under `bert_tf2/` names the original ignores.
"""

import logging
import os
import re

import tensorflow as tf

from modeling import checkpoint
from modeling.data import files

logger = logging.getLogger(__name__)

STATE_FILE = "checkpoint"


class CheckpointManager:
  """Training checkpoints `<directory>/<basename>-<step>` with retention.

  A checkpoint becomes visible only once complete: `checkpoint.save` writes
  under a temporary name and renames, then the `checkpoint` state file (what
  `tf.train.latest_checkpoint` reads) is replaced atomically. A crash at any
  moment leaves the last good checkpoint in place and named by the state file.

  The files decide, not the state file: a run resumes from the newest complete
  checkpoint in the directory (index and every data shard present) even when
  the state file is missing or names a checkpoint that is gone, and it never
  starts afresh over `<basename>-*` files nor writes over an existing
  checkpoint.
  """

  def __init__(self, directory, variables, keep_checkpoint_max=5, is_chief=True,
               basename="model.ckpt"):
    """Args:
      directory: the output directory; created if absent.
      variables: a tf.Module, tf.Variables or a list of them (everything saved).
      keep_checkpoint_max: how many recent checkpoints to keep (0 or None: all).
      is_chief: only the chief writes; other workers of a multi-worker run
        read only.
      basename: file name prefix, "model.ckpt" as the original.

    Raises:
      PermissionError: the directory cannot be created or written.
      FileExistsError: the directory holds `<basename>-*` files but no complete
        checkpoint (a fresh start would overwrite them).
    """
    self.directory = os.fspath(directory)
    self.variables = variables
    self.keep_checkpoint_max = keep_checkpoint_max
    self.is_chief = is_chief
    self.basename = basename
    if is_chief:
      _check_writable(self.directory)
      for stale in tf.io.gfile.glob(os.path.join(self.directory, f".{basename}-*.tmp-*")):
        tf.io.gfile.remove(stale)  # Left by a crash (or a full disk) during a save.
    complete = self.complete_checkpoints()
    state = tf.train.get_checkpoint_state(self.directory)
    recorded = [os.path.basename(p) for p in state.all_model_checkpoint_paths] if state else []
    latest_recorded = os.path.basename(state.model_checkpoint_path) if state else None
    newest = max(complete) if complete else None
    if newest is None:
      leftovers = tf.io.gfile.glob(os.path.join(self.directory, f"{basename}-*"))
      if leftovers:
        raise FileExistsError(
            f"{self.directory} holds {len(leftovers)} {basename}-* files (e.g. "
            f"{os.path.basename(sorted(leftovers)[0])}) but no complete checkpoint to "
            "resume from (an index and all its data files); starting afresh would overwrite "
            "them: move them away or choose another --output_dir")
    elif latest_recorded != complete[newest]:
      logger.warning(
          "%s: %s; resuming from the newest complete checkpoint, %s", self.directory,
          f"the state file names {latest_recorded}, which is missing or incomplete"
          if latest_recorded and latest_recorded not in complete.values()
          else "the state file is missing" if state is None
          else f"the state file names {latest_recorded}, older than the files",
          complete[newest])
    # Retention goes on with the state file's list (those still there) and any
    # newer complete checkpoint it does not know; older unknown ones are left alone.
    known = {os.path.basename(p) for p in recorded}
    since = max((s for s, n in complete.items() if n in known), default=-1)
    self._kept = [complete[s] for s in sorted(complete) if complete[s] in known or s > since]
    self._latest = newest

  def complete_checkpoints(self):
    """{step: basename} of the complete checkpoints in the directory."""
    found = {}
    prefix = os.path.join(self.directory, f"{self.basename}-")
    for index in tf.io.gfile.glob(prefix + "*.index"):
      step = index[len(prefix):-len(".index")]
      if not step.isdigit():
        continue
      shards = tf.io.gfile.glob(f"{index[:-len('.index')]}.data-*-of-*")
      if shards and len(shards) == int(shards[0].rsplit("-of-", 1)[1]):
        found[int(step)] = f"{self.basename}-{step}"
    return found

  @property
  def latest(self):
    """The newest complete checkpoint prefix, or None."""
    if self._latest is None:
      return None
    return os.path.join(self.directory, f"{self.basename}-{self._latest}")

  def restore(self, prefix):
    """Loads every variable from `prefix`; returns the LoadReport.

    Strict except for the `TrainingState` variables (OPTIONAL_STATE), which the
    original's checkpoints lack: those stay as initialised.
    """
    return checkpoint.load(prefix, self.variables, allow_missing=checkpoint.OPTIONAL_STATE)

  def save(self, step):
    """Writes `<basename>-<step>` and makes it the latest; returns its prefix.

    Returns None, writing nothing, on a worker that is not the chief.

    Raises:
      FloatingPointError: a variable holds NaN or Inf (nothing is written).
      FileExistsError: a checkpoint of that step exists already (it is kept).
      OSError: the disk is full or not writable (the path and cause named; the
        last good checkpoint stays the latest).
    """
    if not self.is_chief:
      return None
    prefix = os.path.join(self.directory, f"{self.basename}-{step}")
    if tf.io.gfile.glob(prefix + ".*"):
      raise FileExistsError(
          f"not saving step {step}: {prefix} exists already and is not overwritten; the last "
          f"checkpoint of this run is {self.latest}")
    for name, variable in checkpoint.named_variables(self.variables).items():
      if variable.dtype.is_floating and not bool(tf.reduce_all(tf.math.is_finite(variable))):
        raise FloatingPointError(
            f"not saving step {step}: variable {name} holds NaN or Inf; the last good "
            f"checkpoint is {self.latest}")
    checkpoint.save(prefix, self.variables)
    name = os.path.basename(prefix)
    self._kept = [p for p in self._kept if p != name] + [name]
    self._latest = step
    dropped = []
    if self.keep_checkpoint_max:
      dropped = self._kept[:-self.keep_checkpoint_max]
      self._kept = self._kept[-self.keep_checkpoint_max:]
    self._write_state()
    for old in dropped:
      for path in tf.io.gfile.glob(os.path.join(self.directory, old) + ".*"):
        tf.io.gfile.remove(path)
    return prefix

  def _write_state(self):
    """Replaces the `checkpoint` file atomically, paths relative as the Estimator's."""
    lines = [f'model_checkpoint_path: "{self._kept[-1]}"']
    lines += [f'all_model_checkpoint_paths: "{p}"' for p in self._kept]
    files.write_atomically(os.path.join(self.directory, STATE_FILE), "\n".join(lines) + "\n")


def _check_writable(directory):
  """Creates `directory` and checks a file can be written there."""
  try:
    tf.io.gfile.makedirs(directory)
    probe = os.path.join(directory, f".write-test-{os.getpid()}")
    with tf.io.gfile.GFile(probe, "w") as writer:
      writer.write("")
    tf.io.gfile.remove(probe)
  except (tf.errors.OpError, OSError) as error:
    raise PermissionError(f"--output_dir={directory} is not writable: "
                          f"{getattr(error, 'message', error)}") from None


def restore_or_initialize(checkpoints, init_checkpoint=None, init_variables=None,
                          allow_missing=(), training=True, unused=()):
  """Resumes from the latest checkpoint of a run, else starts from `init_checkpoint`.

  Args:
    checkpoints: the run's CheckpointManager. When it has a checkpoint (ours or
      one the original code wrote in the same directory), every variable is
      loaded from it, `global_step` and the Adam slots included.
    init_checkpoint: a pretrained checkpoint (prefix or directory) or None.
    init_variables: what to fill from `init_checkpoint` (the model; the optimizer
      starts fresh, as the original's `init_from_checkpoint`).
    allow_missing: regexes of `init_variables` that may be absent from
      `init_checkpoint` and start freshly initialised (e.g. `^cls/`).
    training: whether the run trains. Without training, a variable absent from
      `init_checkpoint` would stay random in every result: refused.
    unused: names of `init_variables` the task never reads (the pooler under a
      span or per-token head): they may be absent, training or not (a Hugging
      Face `BertForQuestionAnswering` has no pooler).

  Returns:
    "resumed", "initialized" or "fresh".

  Raises:
    ValueError: not training, and `init_checkpoint` lacks variables (named).
  """
  latest = checkpoints.latest
  if latest:
    report = checkpoints.restore(latest)
    logger.info("Resuming from %s: %d variables", latest, len(report.loaded))
    return "resumed"
  if init_checkpoint:
    allow_missing = tuple(allow_missing) + tuple(f"^{re.escape(name)}$" for name in unused)
    report = checkpoint.load(init_checkpoint, init_variables, allow_missing=allow_missing)
    logger.info("Initialised from %s", report)
    needed = [name for name in report.missing if name not in unused]
    if needed and not training:
      raise ValueError(
          f"--init_checkpoint={init_checkpoint} has no {', '.join(needed)}: without "
          "training (--do_train) they would stay random and every result would be noise. "
          "Train first, or give a fine-tuned checkpoint (or an --output_dir holding one)")
    if report.missing:
      logger.info("Freshly initialised (absent from %s): %s", init_checkpoint,
                  ", ".join(report.missing))
    return "initialized"
  return "fresh"
