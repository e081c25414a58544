"""TFRecord files of `tf.train.Example`s, written and read without TensorFlow.

The format is TensorFlow's (tf.io.TFRecordWriter, uncompressed): each record is
its length as a little-endian uint64, the masked CRC32C of those 8 bytes, the data,
and the masked CRC32C of the data. `tf.data.TFRecordDataset` reads these files, and
`read_records` reads TensorFlow's, checking both checksums.
"""

import struct

import google_crc32c

from modeling.data import files

_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data):
  """TFRecord's checksum of `data`: CRC32C rotated right by 15 bits, plus a constant."""
  crc = google_crc32c.value(data)
  return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(record):
  """The bytes of one record (bytes) in a TFRecord file."""
  length = struct.pack("<Q", len(record))
  return b"".join((length, struct.pack("<I", masked_crc32c(length)), record,
                   struct.pack("<I", masked_crc32c(record))))


class TFRecordWriter:
  """Writes records to `path` atomically (`files.atomic_open`): a context manager.

  If the block raises, no file is written and a file already at `path` is left as
  it was.
  """

  def __init__(self, path):
    self._opener = files.atomic_open(path, "wb")
    self._file = None

  def __enter__(self):
    self._file = self._opener.__enter__()
    return self

  def write(self, record):
    """Appends one record (bytes)."""
    self._file.write(frame(record))

  def __exit__(self, *exc_info):
    return self._opener.__exit__(*exc_info)


def read_records(path):
  """Yields the records (bytes) of a TFRecord file.

  Raises:
    ValueError: the file is truncated or a checksum does not match (the file and
      the record's offset are named).
  """
  with files.open(path, "rb") as reader:
    data = reader.read()
  offset = 0
  while offset < len(data):
    header = data[offset:offset + 12]
    if len(header) < 12:
      raise ValueError(f"{path}: truncated record header at byte {offset}")
    length, length_crc = struct.unpack("<QI", header)
    record = data[offset + 12:offset + 12 + length]
    trailer = data[offset + 12 + length:offset + 16 + length]
    if length_crc != masked_crc32c(header[:8]) or len(trailer) < 4:
      raise ValueError(f"{path}: corrupt or truncated record at byte {offset}")
    if struct.unpack("<I", trailer)[0] != masked_crc32c(record):
      raise ValueError(f"{path}: checksum mismatch in the record at byte {offset}")
    yield record
    offset += 16 + length


def _varint(data, offset):
  """(value, next offset) of the protobuf varint at `offset`."""
  value = shift = 0
  while True:
    byte = data[offset]
    offset += 1
    value |= (byte & 0x7F) << shift
    shift += 7
    if byte < 0x80:
      return value, offset


def _fields(data):
  """Yields (field number, wire type, value) of a protobuf message: varints as ints,
  length-delimited and 32-bit fields as bytes (the wire types an Example uses)."""
  offset = 0
  while offset < len(data):
    key, offset = _varint(data, offset)
    number, wire_type = key >> 3, key & 7
    if wire_type == 0:
      value, offset = _varint(data, offset)
    elif wire_type == 2:
      size, offset = _varint(data, offset)
      value, offset = data[offset:offset + size], offset + size
    elif wire_type == 5:
      value, offset = data[offset:offset + 4], offset + 4
    else:
      raise ValueError(f"unexpected protobuf wire type {wire_type} in a tf.train.Example")
    yield number, wire_type, value


def _values(kind, wire_type, value):
  """The values of one field of an Int64List (kind 3) or FloatList (kind 2)."""
  if kind == 2:  # Packed (wire type 2) or one fixed32 (5): float32 little-endian.
    return list(struct.unpack(f"<{len(value) // 4}f", value))
  if wire_type == 0:
    return [value]
  values, offset = [], 0
  while offset < len(value):
    item, offset = _varint(value, offset)
    values.append(item - (1 << 64) if item >= 1 << 63 else item)
  return values


def parse_example(record):
  """A serialized tf.train.Example of int64 and float features as {name: list}.

  Features are in the record's order; a bytes feature gives a list of bytes.
  """
  features = {}
  for _, _, entries in _fields(record):  # Example.features (1)
    for _, _, entry in _fields(entries):  # Features.feature (1): map entries
      name, feature = b"", b""
      for number, _, value in _fields(entry):
        name, feature = (value, feature) if number == 1 else (name, value)
      values = []
      for kind, _, value_list in _fields(feature):  # bytes 1, float 2, int64 3
        for _, wire_type, value in _fields(value_list):
          values.extend([value] if kind == 1 else _values(kind, wire_type, value))
      features[name.decode("utf-8")] = values
  return features
