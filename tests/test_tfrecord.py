"""TFRecord writing and reading without TensorFlow, checked against TensorFlow."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from modeling.data import tfrecord

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_example(index):
  return tf.train.Example(features=tf.train.Features(feature={
      "ids": tf.train.Feature(int64_list=tf.train.Int64List(value=[index, 0, -7, 2**40])),
      "weights": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5, -1.25, index])),
      "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a", "é".encode()])),
      "empty": tf.train.Feature(int64_list=tf.train.Int64List(value=[])),
  })).SerializeToString()


def test_tensorflow_reads_what_we_write(tmp_path):
  records = [make_example(i) for i in range(5)] + [b"", b"x" * 100000]
  with tfrecord.TFRecordWriter(str(tmp_path / "ours.tfrecord")) as writer:
    for record in records:
      writer.write(record)
  assert [r.numpy() for r in tf.data.TFRecordDataset(str(tmp_path / "ours.tfrecord"))] == records
  assert os.listdir(tmp_path) == ["ours.tfrecord"]


def test_we_read_what_tensorflow_writes(tmp_path):
  records = [make_example(i) for i in range(5)]
  with tf.io.TFRecordWriter(str(tmp_path / "tf.tfrecord")) as writer:
    for record in records:
      writer.write(record)
  assert list(tfrecord.read_records(str(tmp_path / "tf.tfrecord"))) == records


def test_parse_example_matches_protobuf():
  parsed = tfrecord.parse_example(make_example(3))
  assert parsed == {"ids": [3, 0, -7, 2**40], "weights": [0.5, -1.25, 3.0],
                    "text": [b"a", "é".encode()], "empty": []}


def test_corruption_is_reported_with_the_offset(tmp_path):
  path = str(tmp_path / "data.tfrecord")
  with tfrecord.TFRecordWriter(path) as writer:
    writer.write(b"first")
    writer.write(b"second")
  data = bytearray(open(path, "rb").read())
  data[16 + 5 + 12] ^= 1  # A byte of the second record's data.
  open(path, "wb").write(bytes(data))
  with pytest.raises(ValueError, match=r"data.tfrecord: checksum mismatch .* byte 21"):
    list(tfrecord.read_records(path))
  open(path, "wb").write(bytes(data[:30]))
  with pytest.raises(ValueError, match="byte 21"):
    list(tfrecord.read_records(path))


def test_a_failed_write_keeps_the_previous_file(tmp_path):
  path = str(tmp_path / "data.tfrecord")
  with tfrecord.TFRecordWriter(path) as writer:
    writer.write(b"good")
  with pytest.raises(RuntimeError):
    with tfrecord.TFRecordWriter(path) as writer:
      writer.write(b"partial")
      raise RuntimeError("crash while writing")
  assert list(tfrecord.read_records(path)) == [b"good"]
  assert os.listdir(tmp_path) == ["data.tfrecord"]


def test_data_tools_do_not_import_tensorflow():
  """create_pretraining_data starts without TensorFlow (it takes seconds to import)."""
  script = ("import sys, create_pretraining_data, modeling\n"
            "modeling.BertConfig\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'tensorflow_text')))")
  result = subprocess.run([sys.executable, "-c", script], cwd=REPO_DIR, capture_output=True,
                          text=True, check=True, timeout=60)
  assert result.stdout.strip() == "[]"
