"""TFRecord files of `tf.train.Example`s, written and read without TensorFlow.

The format is TensorFlow's (tf.io.TFRecordWriter, uncompressed): each record is
its length as a little-endian uint64, the masked CRC32C of those 8 bytes, the data,
and the masked CRC32C of the data. `tf.data.TFRecordDataset` reads these files, and
`read_records` reads TensorFlow's, checking both checksums. The Examples are
encoded (`ExampleEncoder`, the pretraining features) and decoded (`parse_example`)
in the protobuf wire format directly.
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


def _read_varint(data, offset):
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
    key, offset = _read_varint(data, offset)
    number, wire_type = key >> 3, key & 7
    if wire_type == 0:
      value, offset = _read_varint(data, offset)
    elif wire_type == 2:
      size, offset = _read_varint(data, offset)
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
    item, offset = _read_varint(value, offset)
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


def _varint_bytes(value):
  """Protobuf base-128 varint of a non-negative int."""
  out = bytearray()
  while value > 0x7F:
    out.append((value & 0x7F) | 0x80)
    value >>= 7
  out.append(value)
  return bytes(out)


class ExampleEncoder:
  """Encodes `pretraining_data.TrainingInstance`s as serialized `tf.train.Example`s.

  The bytes are written directly in the protobuf wire format. Every map entry of
  `Example.features` is a header that depends only on the feature name and the
  length of its packed values, then the values; headers come from a cache, varints of
  ids and positions from a table, and the features that depend only on lengths
  (input_mask and segment_ids; masked_lm_weights and next_sentence_labels) are
  cached whole. `tf.train.Example.FromString` reads them back to the features of
  `pretraining_input.feature_spec`, in the original's order.
  """

  def __init__(self, vocab_size, max_seq_length, max_predictions_per_seq, masked=True,
               next_sentence=True):
    """Args:
      vocab_size, max_seq_length, max_predictions_per_seq: the feature sizes.
      masked: write the masked_lm_* features (False: unmasked records for
        dynamic masking, `input_ids` as the text is).
      next_sentence: write `next_sentence_labels`.
    """
    self.max_seq_length = max_seq_length
    self.max_predictions_per_seq = max_predictions_per_seq
    self.masked = masked
    self.next_sentence = next_sentence
    self._varints = [_varint_bytes(value) for value in range(max(vocab_size, max_seq_length))]
    self._headers = {}
    self._mask_and_segments_cache = {}  # (length, num_segment_a) -> bytes
    self._weights_and_label_cache = {}  # (num_masked, is_random_next) -> bytes

  def _header(self, name, list_tag, size):
    """The bytes of a `Features.feature` map entry {key: name, value: Feature{<list>
    {packed values}}} before its `size` bytes of packed values; `list_tag` is the tag of
    Feature.int64_list (field 3) or Feature.float_list (field 2)."""
    key = (name, size)
    header = self._headers.get(key)
    if header is None:
      values = b"\n" + _varint_bytes(size)  # Int64List/FloatList.value (1), packed.
      feature = list_tag + _varint_bytes(len(values) + size) + values
      value = b"\x12" + _varint_bytes(len(feature) + size) + feature
      entry = b"\n" + _varint_bytes(len(name)) + name + value  # MapEntry key (1), value (2).
      header = self._headers[key] = b"\n" + _varint_bytes(len(entry) + size) + entry
    return header

  def _int64_feature(self, name, values, padding=0):
    packed = b"".join(map(self._varints.__getitem__, values)) + b"\x00" * padding
    return self._header(name, b"\x1a", len(packed)) + packed

  def _mask_and_segments(self, length, num_a):
    """input_mask and segment_ids, which depend only on the two lengths."""
    padding = self.max_seq_length - length
    return (self._int64_feature(b"input_mask", [1] * length, padding)
            + self._int64_feature(b"segment_ids", [0] * num_a + [1] * (length - num_a), padding))

  def _weights_and_label(self, num_masked, is_random_next):
    """masked_lm_weights and next_sentence_labels (those written)."""
    features = b""
    if self.masked:
      width = self.max_predictions_per_seq
      weights = struct.pack(f"<{width}f", *[1.0] * num_masked, *[0.0] * (width - num_masked))
      features += self._header(b"masked_lm_weights", b"\x12", len(weights)) + weights
    if self.next_sentence:
      features += self._int64_feature(b"next_sentence_labels", [int(is_random_next)])
    return features

  def encode(self, instance):
    """Returns the serialized Example of one `TrainingInstance`."""
    length = len(instance.input_ids)
    padding = self.max_seq_length - length
    if padding < 0:
      raise ValueError(f"instance of {length} tokens exceeds max_seq_length="
                       f"{self.max_seq_length}")
    unused = self.max_predictions_per_seq - len(instance.masked_lm_positions)
    key = (length, instance.num_segment_a)
    mask_and_segments = self._mask_and_segments_cache.get(key)
    if mask_and_segments is None:
      mask_and_segments = self._mask_and_segments_cache[key] = self._mask_and_segments(*key)
    key = (len(instance.masked_lm_positions), instance.is_random_next)
    weights_and_label = self._weights_and_label_cache.get(key)
    if weights_and_label is None:
      weights_and_label = self._weights_and_label_cache[key] = self._weights_and_label(*key)
    features = b"".join((
        self._int64_feature(b"input_ids", instance.input_ids, padding),
        mask_and_segments,
        self._int64_feature(b"masked_lm_positions", instance.masked_lm_positions, unused)
        if self.masked else b"",
        self._int64_feature(b"masked_lm_ids", instance.masked_lm_ids, unused)
        if self.masked else b"",
        weights_and_label,
    ))
    size = len(features)
    prefix = self._varints[size] if size < len(self._varints) else _varint_bytes(size)
    return b"\n" + prefix + features  # Example.features (1).
