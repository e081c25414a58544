"""Files by path: local paths with the standard library, others through tf.io.gfile.

The data tools (tokenization, create_pretraining_data) use these so that they run
without importing TensorFlow, which takes seconds, when every path is local. A
path with a scheme (`gs://bucket/file`, `hdfs://...`) goes to `tf.io.gfile`, which
is imported then.
"""

import builtins
import contextlib
import glob as _glob
import os


def is_local(path):
  """True for a path of the local file system (no `scheme://`)."""
  return "://" not in path


def _gfile():
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return tf.io.gfile


def glob(pattern):
  """The paths matching `pattern`, in directory order as `tf.io.gfile.glob` gives them
  (and so the original scripts read them)."""
  if is_local(pattern):
    return _glob.glob(pattern)
  return _gfile().glob(pattern)


def exists(path):
  """Whether `path` exists."""
  return os.path.exists(path) if is_local(path) else _gfile().exists(path)


def isdir(path):
  """Whether `path` is a directory."""
  return os.path.isdir(path) if is_local(path) else _gfile().isdir(path)


def open(path, mode="r"):  # pylint: disable=redefined-builtin
  """A file object for `path` ("r", "rb", "w" or "wb"; text is UTF-8)."""
  if not is_local(path):
    return _gfile().GFile(path, mode)
  return builtins.open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"}))


def replace(source, destination):
  """Renames `source` to `destination`, replacing it (atomic on local disks)."""
  if is_local(source) and is_local(destination):
    os.replace(source, destination)
  else:
    _gfile().rename(source, destination, overwrite=True)


def remove(path):
  """Deletes the file `path` if it exists."""
  if exists(path):
    if is_local(path):
      os.remove(path)
    else:
      _gfile().remove(path)


@contextlib.contextmanager
def atomic_open(path, mode="w"):
  """Opens a temporary file that becomes `path` when the block ends without error.

  A reader never sees a half-written `path`; if the block raises, the temporary
  file is deleted and a file already at `path` is left as it was.
  """
  temp = f"{path}.tmp-{os.getpid()}"
  try:
    with open(temp, mode) as writer:
      yield writer
    replace(temp, path)
  finally:
    remove(temp)
