"""Paths on any filesystem TensorFlow knows: `gs://…`, `ram://…`, local.

Every file the package reads or writes outside `data/` (which uses
`tf.io.gfile` itself) goes through these functions. A path with a scheme
(`gs://bucket/run`) goes to `tf.io.gfile`, imported only then; a local
path goes to Python's own functions, so the core (layers, models, losses)
reads and writes local files without TensorFlow. Paths are strings joined
with `/` (`join`), never `pathlib` objects, which would fold `gs://` into
`gs:/`.
"""

import builtins
import contextlib
import glob as local_glob
import io
import os
import posixpath
import shutil
import tempfile


def is_url(path):
    """Whether `path` names a file through a scheme (`gs://`, `ram://`, …)."""
    return "://" in os.fspath(path)


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def join(path, *names):
    path = os.fspath(path)
    return posixpath.join(path, *names) if is_url(path) else os.path.join(path, *names)


def dirname(path):
    path = os.fspath(path)
    return posixpath.dirname(path) if is_url(path) else os.path.dirname(path)


def absolute(path):
    """`path` made absolute when local; a URL as given."""
    path = os.fspath(path)
    return path if is_url(path) else os.path.abspath(path)


def open(path, mode="r"):
    """A file object; text modes read and write UTF-8.

    A file that is not there raises `FileNotFoundError` on every filesystem
    (gfile alone would raise its own error, and only at the first read).
    """
    path = os.fspath(path)
    if not is_url(path):
        return builtins.open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"}))
    if "r" not in mode:
        if "w" in mode:
            clear_for_writing(path)
        return _gfile().GFile(path, mode)
    if not _gfile().exists(path):
        raise FileNotFoundError(f"No such file: {path}")
    # A standard buffered reader: io.TextIOWrapper, tarfile and zipfile
    # need more of the io interface than a GFile has.
    reader = io.BufferedReader(_GFileReader(_gfile().GFile(path, "rb")))
    return reader if "b" in mode else io.TextIOWrapper(reader, encoding="utf-8")


class _GFileReader(io.RawIOBase):
    """A `GFile` opened for reading, as a raw `io` stream."""

    def __init__(self, file):
        super().__init__()
        self._file = file

    def readable(self):
        return True

    def seekable(self):
        return True

    def readinto(self, buffer):
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset, whence=io.SEEK_SET):
        self._file.seek(offset, whence)
        return self._file.tell()

    def tell(self):
        return self._file.tell()

    def close(self):
        if not self.closed:
            self._file.close()
        super().close()


def clear_for_writing(path):
    """Removes a URL's existing file before it is written anew.

    TensorFlow's `ram://` filesystem appends to a file opened for writing
    instead of replacing it; call this before a writer that opens `path`
    itself (`model.save`).
    """
    if is_url(path) and _gfile().exists(path):
        _gfile().remove(path)


def exists(path):
    return _gfile().exists(path) if is_url(path) else os.path.exists(path)


def isdir(path):
    return _gfile().isdir(path) if is_url(path) else os.path.isdir(path)


def isfile(path):
    if is_url(path):
        return _gfile().exists(path) and not _gfile().isdir(path)
    return os.path.isfile(path)


def getsize(path):
    return _gfile().stat(path).length if is_url(path) else os.path.getsize(path)


def makedirs(path):
    """Makes `path` and its parents; nothing if it is a directory already."""
    if is_url(path):
        _gfile().makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def listdir(path):
    """Names in directory `path` (no trailing `/` on folders, unlike gfile)."""
    if is_url(path):
        return [name.rstrip("/") for name in _gfile().listdir(path)]
    return os.listdir(path)


def glob(pattern):
    """Sorted paths matching `pattern`."""
    if is_url(pattern):
        return sorted(_gfile().glob(pattern))
    return sorted(local_glob.glob(pattern))


def remove(path):
    _gfile().remove(path) if is_url(path) else os.remove(path)


def rmtree(path):
    """Removes directory `path` and all in it; nothing if it is not there."""
    if is_url(path):
        if _gfile().exists(path):
            _gfile().rmtree(path)
    else:
        shutil.rmtree(path, ignore_errors=True)


def replace(source, destination):
    """Renames a file over `destination` (atomic where the filesystem is).

    On object stores (`gs://`) a rename is a copy and a delete: a reader sees
    either the old file or the whole new one, never a part.
    """
    if is_url(source) or is_url(destination):
        _gfile().rename(source, destination, overwrite=True)
    else:
        os.replace(source, destination)


def copy(source, destination):
    """Copies a file over `destination`, between any two filesystems."""
    if is_url(source) or is_url(destination):
        _gfile().copy(source, destination, overwrite=True)
    else:
        shutil.copyfile(source, destination)


def write_atomically(path, text):
    """Writes `text` to `path` through a temporary name and a rename."""
    partial = path + ".partial"
    with open(partial, "w") as file:
        file.write(text)
        if not is_url(partial):
            file.flush()
            os.fsync(file.fileno())
    replace(partial, path)


def copy_tree(source, destination):
    """Copies directory `source` to `destination` (which must not exist yet)."""
    if not is_url(source) and not is_url(destination):
        shutil.copytree(source, destination)
        return
    gfile = _gfile()
    source = source.rstrip("/")
    for folder, _, names in gfile.walk(source):
        target = join(destination, folder.rstrip("/")[len(source):].lstrip("/"))
        gfile.makedirs(target)
        for name in names:
            gfile.copy(join(folder, name), join(target, name), overwrite=True)


@contextlib.contextmanager
def local_copy(path):
    """A local path holding `path`'s file (itself when it is local already).

    For readers that need a real file: h5py, safetensors, PyTorch, a
    subprocess (which cannot see this process's `ram://`).
    """
    if not is_url(path):
        yield os.fspath(path)
        return
    with tempfile.TemporaryDirectory(prefix="keras-clip-") as scratch:
        local = os.path.join(scratch, posixpath.basename(path.rstrip("/")))
        if isdir(path):
            copy_tree(path, local)
        else:
            _gfile().copy(path, local)
        yield local
