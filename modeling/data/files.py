"""Files by path: local paths with the standard library, others through tf.io.gfile.

The data tools (tokenization, create_pretraining_data) use these so that they run
without importing TensorFlow, which takes seconds, when every path is local. A
path with a scheme (`gs://bucket/file`, `hdfs://...`) goes to `tf.io.gfile`, which
is imported then.
"""

import builtins
import codecs
import contextlib
import fnmatch
import glob as _glob
import os
import shutil


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


def listdir(path):
  """The names in directory `path` (subdirectories without a trailing "/")."""
  if is_local(path):
    return os.listdir(path)
  return [name.rstrip("/") for name in _gfile().listdir(path)]


def remove(path):
  """Deletes the file `path` if it exists."""
  if exists(path):
    if is_local(path):
      os.remove(path)
    else:
      _gfile().remove(path)


def temp_path(path, tag=None):
  """A temporary name beside `path` that no glob of the name matches.

  `dir/.name.tmp-<tag>`: dot-prefixed, so `name*` and `*` (which skip dot-files)
  never pick it up, and tagged with this process id (or `tag`) so that
  `remove_stale_temps` can tell a dead writer's leftovers from a live one's.
  """
  directory, name = _split(path)
  return _join(directory, f".{name}.tmp-{os.getpid() if tag is None else tag}")


def remove_stale_temps(path):
  """Deletes the temporary files (and directories) of `path` that crashed writers left.

  On a local disk only those whose process is gone are removed, so a writer
  running beside us keeps its own; elsewhere (`gs://`...) every one is. Returns
  the paths removed.
  """
  directory, name = _split(path)
  pattern = _join(directory, f".{_glob.escape(name)}.tmp-*")
  removed = []
  for stale in glob(pattern):
    pid = stale.rsplit(".tmp-", 1)[1].split("-")[0]
    if is_local(stale) and pid.isdigit() and _process_alive(int(pid)):
      continue
    if isdir(stale):
      _rmtree(stale)
    else:
      remove(stale)
    removed.append(stale)
  return removed


def _split(path):
  if is_local(path):
    return os.path.split(path)
  directory, _, name = path.rstrip("/").rpartition("/")
  return directory, name


def _join(directory, name):
  if is_local(directory):
    return os.path.join(directory, name)
  return f"{directory}/{name}"


def _process_alive(pid):
  if pid == os.getpid():
    return False  # A leftover of an earlier process that had our id.
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _rmtree(path):
  if is_local(path):
    shutil.rmtree(path)
  else:
    _gfile().rmtree(path)


@contextlib.contextmanager
def atomic_open(path, mode="w"):
  """Opens a temporary file that becomes `path` when the block ends without error.

  A reader never sees a half-written `path`; if the block raises, the temporary
  file is deleted and a file already at `path` is left as it was. The temporary
  name (`temp_path`) matches no glob of the output's name, and the leftovers of
  a killed writer are removed by the next one.

  Raises:
    IsADirectoryError: `path` is a directory (named in the message).
    OSError: the file cannot be written (disk full...), with `path` and the cause.
  """
  if isdir(path):
    raise IsADirectoryError(f"{path} is a directory; name a file to write")
  remove_stale_temps(path)
  temp = temp_path(path)
  try:
    with open(temp, mode) as writer:
      yield writer
    replace(temp, path)
  except OSError as error:
    if error.filename not in (None, temp):
      raise  # Not ours: e.g. an input the block failed to open, which names itself.
    raise OSError(error.errno, f"cannot write {path}: {error.strerror or error}; "
                  "nothing was written there") from error
  finally:
    remove(temp)


def write_atomically(path, text):
  """Writes the string `text` to `path` through `atomic_open`: a reader never sees a
  half-written file, and a crash leaves the old one."""
  with atomic_open(path, "w") as writer:
    writer.write(text)


@contextlib.contextmanager
def atomic_directory(path, marker, flag, contents=None):
  """A temporary directory that replaces the directory `path` when the block ends
  without error (the block writes into the path it is given), so `path` holds the
  block's files and nothing else, all of them or, after a crash, none.

  An existing `path` is replaced only if it is empty or holds `marker` (e.g.
  `saved_model.pb`) and, with `contents`, nothing else: a directory of anything
  else (an --output_dir, a data directory) is refused before any work, never
  deleted. Temporary names are `temp_path`'s.

  Args:
    path: the directory to write.
    marker: a file name (fnmatch pattern) an earlier output holds.
    flag: what names `path` in errors, e.g. "--export_dir".
    contents: fnmatch patterns of every file an earlier output may hold, or None
      for any.

  Raises:
    ValueError: `path` is a file, or a directory that is not an earlier output
      (`flag` named).
  """
  check_replaceable_directory(path, marker, flag, contents)
  remove_stale_temps(path)
  temp = temp_path(path)
  try:
    yield temp
    old = temp_path(path, f"{os.getpid()}-old")
    if exists(path):
      replace(path, old)
    replace(temp, path)
    if exists(old):
      _rmtree(old)
  finally:
    if exists(temp):
      _rmtree(temp)


def check_replaceable_directory(path, marker, flag, contents=None):
  """Refuses a `path` that exists and is neither empty nor an earlier output: a
  directory holding `marker` and, with `contents` (fnmatch patterns), no file
  that none of them matches (`atomic_directory`).

  Scripts call it at start, so that a bad --export_dir fails before training.
  """
  if not exists(path):
    return
  if not isdir(path):
    raise ValueError(f"{flag}={path} is a file; name a directory to write")
  entries = listdir(path)
  if not entries:
    return
  if not any(fnmatch.fnmatch(entry, marker) for entry in entries):
    raise ValueError(f"{flag}={path} exists and is not an earlier export (no {marker}); "
                     "replacing it would delete what it holds: choose a new directory")
  strays = sorted(entry for entry in entries
                  if contents is not None and not any(fnmatch.fnmatch(entry, pattern)
                                                      for pattern in contents))
  if strays:
    raise ValueError(f"{flag}={path} holds {strays[0]}, which an earlier output does not; "
                     "replacing the directory would delete it: choose a new directory")


def read_utf8(path):
  """The text of a UTF-8 file, a byte-order mark dropped.

  Raises:
    ValueError: the file is not UTF-8, naming `path:line` and the byte.
  """
  with open(path, "rb") as reader:
    data = reader.read()
  data = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError as error:
    line = data[:error.start].count(b"\n") + 1
    raise ValueError(f"{path}:{line}: not valid UTF-8 (byte {data[error.start]:#04x}); save "
                     "the file as UTF-8") from None


def file_identity(path):
  """What tells two paths apart after links: (device, inode) of an existing local
  file, else the absolute path with links resolved (the path itself off the
  local disk)."""
  if not is_local(path):
    return path
  try:
    status = os.stat(path)
    return (status.st_dev, status.st_ino)
  except OSError:
    return os.path.realpath(path)


def check_outputs(outputs, inputs=()):
  """Refuses, before any work, outputs that would destroy an input or each other.

  Args:
    outputs: [(flag, path)] the files a run will write, e.g.
      [("--output_file", "out.tfrecord")].
    inputs: [(flag, path)] the files it reads (globs already expanded).

  Raises:
    ValueError: an output is one of the inputs (the same file after resolving
      links), an output is listed twice, or an output is an existing directory.
  """
  seen = {}
  for flag, path in outputs:
    if isdir(path):
      raise ValueError(f"{flag}={path} is an existing directory; name a file to write")
    identity = file_identity(path)
    if identity in seen:
      raise ValueError(f"{flag}: {path} is listed twice (also as {seen[identity]}); each "
                       "output must be a different file")
    seen[identity] = path
  for flag, path in inputs:
    identity = file_identity(path)
    if identity in seen:
      raise ValueError(f"{flag}={path} is also an output ({seen[identity]}); writing it would "
                       "destroy the input: choose another output path")


def write_eval_results(path, results):
  """Writes `key = value` lines sorted by key, as the original `eval_results.txt`."""
  write_atomically(path, "".join(f"{key} = {results[key]!s}\n" for key in sorted(results)))
