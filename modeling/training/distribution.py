"""Choosing the tf.distribute strategy, as the original scripts choose their devices.

- `--use_tpu`: TPUStrategy on the TPU named by `tpu_name` (or the `master` URL),
  with `num_tpu_cores` checked against the replicas found.
- `TF_CONFIG` naming more than one task: MultiWorkerMirroredStrategy (all-reduce
  over the workers; each worker uses its local GPUs, or its CPU).
- Several local GPUs: MirroredStrategy over them.
- Otherwise the default strategy: one device, no replication overhead.

With several workers, a stop request (SIGTERM, SIGINT) that reaches one worker is
agreed by all before they stop (`StopVote`), so all stop at the same step
and the chief saves it; a worker lost mid-step fails the others' next collective,
which `WorkerLostError` names (`lost_tasks`).
"""

import json
import logging
import os
import re

import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)


def _training_tasks(cluster):
  """Number of tasks that train (chief and workers) in a cluster {job: [addresses]}."""
  return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


def _cluster_size(tf_config):
  """Number of tasks (chief and workers) in a TF_CONFIG JSON string; 0 without one."""
  if not tf_config:
    return 0
  try:
    cluster = json.loads(tf_config).get("cluster", {})
  except (json.JSONDecodeError, AttributeError) as error:
    raise ValueError(f"TF_CONFIG is not a JSON object with a 'cluster': {error}") from None
  return _training_tasks(cluster)


def _multi_worker_resolver(strategy):
  """The cluster resolver of a MultiWorkerMirroredStrategy, else None."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return None
  return getattr(strategy, "cluster_resolver", None)


def get_strategy(use_tpu=False, tpu_name=None, tpu_zone=None, gcp_project=None, master=None,
                 num_tpu_cores=8):
  """Returns the strategy for this machine and these (original) TPU settings.

  Raises:
    ValueError: `use_tpu` without a TPU name or master, or `num_tpu_cores` not
      matching the TPU found.
  """
  if use_tpu:
    tpu = tpu_name or master
    if not tpu:
      raise ValueError("--use_tpu needs --tpu_name (or --master grpc://address:8470)")
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu=tpu, zone=tpu_zone, project=gcp_project)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    strategy = tf.distribute.TPUStrategy(resolver)
    if strategy.num_replicas_in_sync != num_tpu_cores:
      raise ValueError(f"--num_tpu_cores={num_tpu_cores} but TPU {tpu} has "
                       f"{strategy.num_replicas_in_sync} cores")
  elif _cluster_size(os.environ.get("TF_CONFIG")) > 1:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
  elif len(tf.config.list_logical_devices("GPU")) > 1:
    strategy = tf.distribute.MirroredStrategy()
  else:
    strategy = tf.distribute.get_strategy()
  logger.info("Strategy %s with %d replicas", type(strategy).__name__,
              strategy.num_replicas_in_sync)
  return strategy


def is_chief(strategy):
  """Whether this process writes checkpoints, summaries and results.

  True except on the non-chief workers of a multi-worker strategy (the chief is
  the "chief" task, or worker 0 when the cluster has none).
  """
  resolver = _multi_worker_resolver(strategy)
  if resolver is None:
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  return task_type == "chief" or (task_type == "worker" and task_id == 0 and
                                  "chief" not in resolver.cluster_spec().as_dict())


class WorkerLostError(RuntimeError):
  """Another task of a multi-worker run stopped (killed, preempted, crashed) mid-run."""


def _task_count(strategy):
  """Tasks (chief and workers) of a multi-worker strategy's cluster; 1 otherwise."""
  resolver = _multi_worker_resolver(strategy)
  if resolver is None:
    return 1
  return max(1, _training_tasks(resolver.cluster_spec().as_dict()))


class StopVote:
  """Agrees, among the tasks of a multi-worker run, on the stop signal any received.

  Every task must call it at the same point of its loop (it is one small
  all-reduce); without several tasks it returns its argument at no cost.
  """

  _SIGNALS = 65  # Signal numbers a vote can carry (POSIX signals are below 65).

  def __init__(self, strategy):
    self._voting = _task_count(strategy) > 1
    if self._voting:
      @tf.function
      def counts(signum):  # int32 scalar -> float32 [65], each signal's number of votes
        votes = strategy.run(lambda s: tf.one_hot(s, self._SIGNALS), args=(signum,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)
      self._counts = counts

  def __call__(self, signum):
    """Args: the signal this task received, or None.

    Returns:
      The largest signal number any task received, or None when none did.
    """
    if not self._voting:
      return signum
    received = np.flatnonzero(self._counts(tf.constant(signum or 0)).numpy()[1:]) + 1
    return int(received.max()) if received.size else None


_TASK_NAME = re.compile(r"/job:(\w+)/replica:\d+/task:(\d+)")


def lost_tasks(strategy, error):
  """The other tasks a collective's error names, as ["worker 1", ...].

  Returns:
    The names (empty when the error names none), or None when `error` is not
    the failure of a multi-worker collective, i.e. not a lost task.
  """
  if _task_count(strategy) < 2 or not isinstance(
      error, (tf.errors.UnavailableError, tf.errors.AbortedError,
              tf.errors.DeadlineExceededError, tf.errors.CancelledError,
              tf.errors.InternalError)):
    return None
  message = str(error)
  if "Collective ops is aborted" not in message and "unhealthy" not in message:
    return None
  resolver = strategy.cluster_resolver
  own = (resolver.task_type, str(resolver.task_id))
  return sorted({f"{job} {task}" for job, task in _TASK_NAME.findall(message)
                 if (job, task) != own})
