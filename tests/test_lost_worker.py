"""A two-worker loopback run_pretraining losing a worker: preempted (SIGTERM), then killed
(kill -9), then rerun to the end, ending where an uninterrupted two-worker run ends."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from tests.test_run_pretraining import (REPO_DIR, _assert_same_checkpoints, _free_ports,
                                        script_args, write_config, write_records)

# Every phase runs to the same schedule; the workers stop it early.
FLAGS = dict(num_train_steps=100, save_checkpoints_steps=5, keep_checkpoint_max=0, seed=3)
# The survivor's bound: on loopback a killed worker's connections reset at once; a
# machine that vanishes is noticed by the coordination service's heartbeats (about 20 s).
SURVIVOR_SECONDS = 60


def _start_workers(tmp_path, name, config, files):
  """Two workers of one run, each logging to tmp_path/name-<index>.log, both given
  --output_dir=tmp_path/name (a shared directory, where the chief writes and every
  worker resumes from)."""
  workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
  processes, logs = [], []
  for index in range(2):
    tf_config = json.dumps({"cluster": {"worker": workers},
                            "task": {"type": "worker", "index": index}})
    logs.append(tmp_path / f"{name}-{index}.log")
    with open(logs[-1], "w", encoding="utf-8") as log:
      processes.append(subprocess.Popen(
          [sys.executable, "run_pretraining.py", *script_args(
              config, files, tmp_path / name, **FLAGS)],
          cwd=REPO_DIR, env=dict(os.environ, TF_CONFIG=tf_config, TF_CPP_MIN_LOG_LEVEL="2"),
          stdout=subprocess.DEVNULL, stderr=log))
  return processes, logs


def _wait_for(predicate, processes, timeout=240):
  deadline = time.time() + timeout
  while not predicate():
    if any(p.poll() is not None for p in processes) or time.time() > deadline:
      for p in processes:
        p.kill()
      raise AssertionError(f"the run ended or timed out first: {[p.poll() for p in processes]}")
    time.sleep(0.02)


def _latest_step(directory):
  latest = tf.train.latest_checkpoint(str(directory))
  return int(latest.rsplit("-", 1)[1]) if latest else 0


def _read(path):
  return path.read_text(encoding="utf-8")


@pytest.mark.slow
def test_preempted_then_killed_worker_resumes_to_the_uninterrupted_end(tmp_path):
  files = ",".join(write_records(tmp_path / f"data-{i}.tfrecord", 24, seed=i) for i in range(2))
  config = write_config(tmp_path / "bert_config.json")
  straight, _ = _start_workers(tmp_path, "straight", config, files)
  for process in straight:
    assert process.wait(timeout=300) == 0
  run = tmp_path / "run"

  # Preemption: SIGTERM reaches worker 1 only; both stop at one step, the chief saves it.
  processes, logs = _start_workers(tmp_path, "run", config, files)
  _wait_for(lambda: "step 3/100" in _read(logs[0]), processes)
  processes[1].send_signal(signal.SIGTERM)
  assert [p.wait(timeout=SURVIVOR_SECONDS) for p in processes] == [128 + signal.SIGTERM] * 2
  preempted_at = _latest_step(run)
  assert 3 <= preempted_at < 100
  for log in logs:
    assert f"Stopped by signal 15 at step {preempted_at}" in _read(log), _read(log)[-3000:]

  # kill -9 of worker 1 after a later checkpoint: the chief names it and exits, bounded.
  processes, logs = _start_workers(tmp_path, "run", config, files)
  _wait_for(lambda: _latest_step(run) > preempted_at, processes)
  processes[1].send_signal(signal.SIGKILL)
  # wait() raises TimeoutExpired past the bound.
  assert processes[0].wait(timeout=SURVIVOR_SECONDS) not in (0, None)
  killed_at = _latest_step(run)
  chief_log = _read(logs[0])
  assert f"Resuming from {run}/model.ckpt-{preempted_at}" in chief_log
  assert ("WorkerLostError: worker 1 of this multi-worker run stopped in step" in chief_log
          and f"resumes from {run}/model.ckpt-{killed_at}" in chief_log), chief_log[-3000:]

  # Rerun both: they end where the uninterrupted run ended.
  processes, logs = _start_workers(tmp_path, "run", config, files)
  for process, log in zip(processes, logs):
    assert process.wait(timeout=300) == 0, _read(log)[-3000:]
  assert f"Resuming from {run}/model.ckpt-{killed_at}" in _read(logs[0])
  _assert_same_checkpoints(tmp_path / "straight" / "model.ckpt-100", run / "model.ckpt-100",
                           tolerance=1e-6)
