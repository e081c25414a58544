"""Shared fixtures: paths to ../shared and tiny configs."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DIR = os.path.join(os.path.dirname(REPO_DIR), "shared")
MINILM_DIR = os.path.join(SHARED_DIR, "models", "minilm-l6-h384-uncased")


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: end-to-end tests that take a minute or more")


@pytest.fixture
def minilm_dir():
  """The real pretrained checkpoint in ../shared, or a clean skip without it."""
  if not os.path.isfile(os.path.join(MINILM_DIR, "bert_model.ckpt.index")):
    pytest.skip(f"../shared is absent: no pretrained checkpoint at {MINILM_DIR}")
  return MINILM_DIR


@pytest.fixture
def shared_dir():
  """../shared, or a clean skip without it."""
  if not os.path.isdir(SHARED_DIR):
    pytest.skip(f"../shared is absent: {SHARED_DIR}")
  return SHARED_DIR
