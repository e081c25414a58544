"""Choosing the tf.distribute strategy, as the original scripts choose their devices.

- `--use_tpu`: TPUStrategy on the TPU named by `tpu_name` (or the `master` URL),
  with `num_tpu_cores` checked against the replicas found.
- `TF_CONFIG` naming more than one task: MultiWorkerMirroredStrategy (all-reduce
  over the workers; each worker uses its local GPUs, or its CPU).
- Several local GPUs: MirroredStrategy over them.
- Otherwise the default strategy: one device, no replication overhead.
"""

import json
import logging
import os

import tensorflow as tf

logger = logging.getLogger(__name__)


def _cluster_size(tf_config):
  """Number of tasks (chief and workers) in a TF_CONFIG JSON string; 0 without one."""
  if not tf_config:
    return 0
  try:
    cluster = json.loads(tf_config).get("cluster", {})
  except (json.JSONDecodeError, AttributeError) as error:
    raise ValueError(f"TF_CONFIG is not a JSON object with a 'cluster': {error}") from None
  return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


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
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  return task_type == "chief" or (task_type == "worker" and task_id == 0 and
                                  "chief" not in resolver.cluster_spec().as_dict())
