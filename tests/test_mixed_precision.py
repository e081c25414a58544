"""Mixed precision training: float32 state and checkpoints, fp16 dynamic loss scaling, flags."""

import numpy as np
import pytest
import tensorflow as tf

from modeling import checkpoint
from modeling.tasks import pretraining
from modeling.training import optimization, run_checkpoints
from tests.test_run_pretraining import (batch_of, random_examples, script_args, tiny,  # noqa: F401
                                        write_config, _main)
from modeling.model.config import BertConfig
from tiny import make_trainer


def _train(tmp_path, name, compute_dtype, steps=3, **trainer_args):
  """Trains a tiny PretrainingModel from fixed weights on fixed batches.

  Returns:
    (trainer, losses of the steps, the last checkpoint as {name: np.ndarray}).
  """
  config = BertConfig.from_json_file(write_config(tmp_path / "bert_config.json"))
  tf.random.set_seed(0)
  model = pretraining.PretrainingModel(config, compute_dtype=compute_dtype)
  opt = optimization.create_optimizer("adamw", model.trainable_variables, 1e-3, 10, 1)
  trainer = make_trainer(tf.distribute.get_strategy(), model.loss, opt, 8,
                         totals_fn=model.loss_totals, log_steps=1, **trainer_args)
  checkpoints = run_checkpoints.CheckpointManager(tmp_path / name, [model, opt, trainer.state])
  batches = [batch_of(random_examples(8, seed=s)) for s in range(4)]
  dataset = tf.data.Dataset.from_tensor_slices(
      {k: np.stack([b[k] for b in batches]) for k in batches[0]}).repeat()
  losses = [float(trainer.evaluate(dataset, model.eval_metrics, 1)["loss"])]
  trainer.train(dataset, steps, checkpoints, save_checkpoints_steps=steps)
  losses.append(float(trainer.evaluate(dataset, model.eval_metrics, 1)["loss"]))
  reader = tf.train.load_checkpoint(checkpoints.latest)
  saved = {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}
  return trainer, losses, saved


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float16], ids=["bf16", "fp16"])
def test_mixed_precision_trains_with_float32_state(tmp_path, dtype):
  _, fp32_losses, fp32_saved = _train(tmp_path, "fp32", tf.float32)
  fp16 = dtype == tf.float16
  trainer, losses, saved = _train(tmp_path, dtype.name, dtype, dynamic_loss_scale=fp16)
  # The same training, to the precision of the compute dtype.
  assert losses[1] < losses[0]
  np.testing.assert_allclose(losses, fp32_losses, rtol=2e-2)
  # Checkpoints in the original layout, float32 weights and slots; the loss scale
  # of fp16 under names the original ignores.
  extra = {"bert_tf2/loss_scale", "bert_tf2/loss_scale_good_steps",
           "bert_tf2/skipped_steps"} if fp16 else set()
  assert set(saved) == set(fp32_saved) | extra
  for name, value in saved.items():
    if name not in ("global_step", "bert_tf2/dropout_rng") and not name.endswith("_steps"):
      assert value.dtype == np.float32, name
      assert np.all(np.isfinite(value)), name
  assert all(v.dtype == tf.float32 for v in trainer.optimizer.trained_variables)
  assert int(saved["global_step"]) == 3


def test_fp16_overflow_skips_steps_and_lowers_the_scale(tmp_path, caplog):
  caplog.set_level("INFO")
  trainer, losses, saved = _train(tmp_path, "fp16", tf.float16, dynamic_loss_scale=True,
                                  initial_loss_scale=2.0 ** 40)
  skipped = int(saved["bert_tf2/skipped_steps"])
  # float16 overflows at 65504: a scale of 2^40 makes the gradients infinite.
  assert skipped >= 1
  assert saved["bert_tf2/loss_scale"] == 2.0 ** (40 - skipped)
  assert trainer.step == int(saved["global_step"]) == 3
  assert trainer.batches_done == 3 + skipped
  assert "for non-finite gradients" in caplog.text
  assert losses[1] < losses[0]


def test_script_flag_errors(tiny):
  with pytest.raises(ValueError, match="mixed_precision=fp16 is for GPUs.*bf16"):
    _main(*tiny, mixed_precision="fp16", use_tpu=True, tpu_name="x")
  with pytest.raises(ValueError, match=r"--num_accumulation_steps=3 must divide "
                                       r"--train_batch_size=8"):
    _main(*tiny, num_accumulation_steps=3)


def test_script_with_every_speed_option(tiny, tmp_path):
  config, data, out = tiny
  assert _main(config, data, out, mixed_precision="bf16", use_xla=True,
               num_accumulation_steps=2, optimizer="lamb", num_train_steps=2,
               save_checkpoints_steps=2, do_eval=True) == 0
  saved = checkpoint.open_checkpoint(out)[2]
  assert saved["global_step"][1] == tf.int64
  name = "bert/encoder/layer_1/output/dense/kernel"
  assert {f"{name}/adam_m", f"{name}/adam_v", "bert_tf2/dropout_rng"} <= set(saved)
  assert saved[name][1] == tf.float32
