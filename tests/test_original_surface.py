"""The original's own tests, run against our modules: the surface downstream code imports.

`tokenization_test.py` and the config test of `modeling_test.py` are read from the
installed bert-tensorflow 1.0.4 wheel, unchanged but for the import line, which is
swapped at run time to bind the name the file uses to our module. The original's
preserve-unused test sets its absl flag with `flagsaver`; our library reads no flag,
so the test-side stand-in passes that flag's value to our constructor argument.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from modeling import tokenization

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RUN_ORIGINAL_TESTS = """
import json, os, sys, types, unittest
from absl import flags
import modeling
from modeling import tokenization as ours

flags.DEFINE_bool("preserve_unused_tokens", False, "the original's flag, for its test")
flags.FLAGS(["original_tests"])


def full_tokenizer(vocab_file, do_lower_case=True):
  return ours.FullTokenizer(vocab_file, do_lower_case,
                            preserve_unused_tokens=flags.FLAGS.preserve_unused_tokens)


stand_in = types.ModuleType("tokenization")
stand_in.__dict__.update(vars(ours))
stand_in.FullTokenizer = full_tokenizer


def load(path, swaps, names):
  source = open(path, encoding="utf-8").read()
  for line, name in swaps:
    assert source.count(line) == 1, (path, line)
    source = source.replace(line, f"{name} = __swapped__[{name!r}]")
  module = types.ModuleType(os.path.basename(path)[:-3])
  module.__swapped__ = names
  exec(compile(source, path, "exec"), module.__dict__)
  return module


package_dir = sys.argv[1]
tokenization_test = load(os.path.join(package_dir, "tokenization_test.py"),
                         [("from bert import tokenization", "tokenization")],
                         {"tokenization": stand_in})
modeling_test = load(os.path.join(package_dir, "modeling_test.py"),
                     [("from bert import modeling", "modeling")], {"modeling": modeling})
# The tests the file defines (tf.test.TestCase adds a `test_session` that is not one).
test_case = tokenization_test.TokenizationTest
suite = unittest.TestSuite(
    [test_case(name) for name in vars(test_case) if name.startswith("test_")]
    + [modeling_test.BertModelTest("test_config_to_json_string")])
result = unittest.TextTestRunner(stream=sys.stderr, verbosity=2).run(suite)
print(json.dumps({"run": result.testsRun, "failures": len(result.failures),
                  "errors": len(result.errors), "skipped": len(result.skipped)}))
"""


def run_python(script, *args):
  env = dict(os.environ, PYTHONPATH=REPO_DIR)
  result = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args],
                          capture_output=True, text=True, env=env, timeout=600)
  assert result.returncode == 0, result.stderr[-6000:]
  return result


def test_original_tokenization_and_config_tests_pass_on_ours():
  spec = importlib.util.find_spec("bert")
  if spec is None or not spec.submodule_search_locations:
    pytest.skip("the original's tests ship in bert-tensorflow==1.0.4 (pip install it)")
  package_dir = list(spec.submodule_search_locations)[0]
  result = run_python(RUN_ORIGINAL_TESTS, package_dir)
  summary = result.stdout.strip().splitlines()[-1]
  # The 10 tests of tokenization_test.py and modeling_test's test_config_to_json_string.
  assert summary == '{"run": 11, "failures": 0, "errors": 0, "skipped": 0}', result.stderr


def test_preserve_unused_tokens_needs_no_flag_parsing(tmp_path):
  """In a fresh process with absl flags never parsed, the constructor argument works."""
  vocab_file = tmp_path / "vocab.txt"
  vocab_file.write_text("[UNK]\n[CLS]\nwant\n##ed\n[unused0]\n", encoding="utf-8")
  result = run_python("""
import sys
from absl import flags
from modeling import tokenization
assert not flags.FLAGS.is_parsed()
for preserve in (False, True):
  tokenizer = tokenization.FullTokenizer(sys.argv[1], preserve_unused_tokens=preserve)
  print(tokenizer.tokenize("WANTed [unused0] [UNUSED0] [unused1]"))
""", str(vocab_file))
  # "[" and "]" are not in the vocabulary: each split word is 3 [UNK]s.
  assert result.stdout.splitlines() == [
      str(["want", "##ed"] + ["[UNK]"] * 9),
      str(["want", "##ed", "[unused0]"] + ["[UNK]"] * 6)]


def test_private_and_vocab_helpers_are_ours():
  """The original's names are aliases of our functions, not second copies."""
  assert tokenization._is_whitespace is tokenization.is_whitespace
  assert tokenization._is_control is tokenization.is_control
  assert tokenization._is_punctuation is tokenization.is_punctuation
  assert tokenization.printable_text(b"caf\xc3\xa9") == "caf\u00e9"
  vocab = {"a": 0, "b": 1}
  assert tokenization.convert_tokens_to_ids(vocab, ["b", "a"]) == [1, 0]
  assert tokenization.convert_ids_to_tokens({0: "a", 1: "b"}, [1]) == ["b"]
  basic = tokenization.BasicTokenizer()
  assert basic._run_strip_accents("H\u00e9llo") == "Hello"
  assert basic._run_split_on_punc("a,b!") == ["a", ",", "b", "!"]
  assert basic._is_chinese_char(0x4E2D) and not basic._is_chinese_char(ord("a"))


def test_model_helpers_under_the_original_names():
  """`modeling.<name>` as the original's modeling.py, loaded lazily (PEP 562), and the
  original's tokenization and optimization modules under their names."""
  result = run_python("""
import sys
import modeling
from modeling import tokenization
assert "tensorflow" not in sys.modules, "modeling or its tokenization imported TensorFlow"
from modeling.data import tokenization as grouped_tokenization
assert tokenization is grouped_tokenization
from modeling import optimization
from modeling.training import optimization as grouped_optimization
assert optimization is grouped_optimization and optimization.create_optimizer
import tensorflow as tf
x = tf.ones([2, 3, 4])
assert modeling.get_shape_list(x, expected_rank=3) == [2, 3, 4]
try:
  modeling.assert_rank(x, [2, 4], name="x")
  raise SystemExit("assert_rank accepted rank 3")
except ValueError as e:
  assert "`x`" in str(e) and "rank `3`" in str(e), e
matrix = modeling.reshape_to_matrix(x)
assert matrix.shape == (6, 4)
assert modeling.reshape_from_matrix(matrix[:, :2], [2, 3, 4]).shape == (2, 3, 2)
assert modeling.get_activation("GELU") is modeling.gelu
assert modeling.get_activation("linear") is None and modeling.get_activation("") is None
assert modeling.get_activation(tf.nn.relu) is tf.nn.relu
assert abs(float(modeling.gelu(tf.constant(1.0))) - 0.841192) < 1e-6
init = modeling.create_initializer(0.5)([1000])
assert float(tf.reduce_max(tf.abs(init))) <= 1.0
assert modeling.BertConfig(vocab_size=99).hidden_size == 768
print("ok")
""")
  assert result.stdout.strip() == "ok"
