"""Connectors for the error tests: variants of the memory connector whose
writes fail (once a dataset holds data, or always, leaving cyclic garbage),
whose flushes (and so closes) fail while the root group has an attribute
`refuse_flush`, whose creation fails, which claim fewer features or longer
blob keys, whose blob store refuses, or whose reads stop the program or
take long."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable

from h5pyvol.connectors.memory import MemoryConnector, MemoryDataset, MemoryFile


class OnceDataset(MemoryDataset):
    def write(self, selection, data):
        if self.is_allocated():
            raise RuntimeError("disk on fire")
        super().write(selection, data)


class OnceFile(MemoryFile):
    def create_dataset(self, meta):
        return self._store.add(OnceDataset, meta)

    def flush(self):
        if "refuse_flush" in self.root.attribute_names():
            raise OSError(errno.EIO, "the store refused the commit")
        super().flush()


class FailingConnector(MemoryConnector):
    """Second writes to a dataset fail; earlier data must stay readable."""

    def create(self, name, *, overwrite, fcpl=b""):
        super().create(name, overwrite=overwrite, fcpl=fcpl)
        return OnceFile(self._files[name], True)

    def open(self, name, *, writable):
        plain = super().open(name, writable=writable)
        return OnceFile(plain._store, writable)


class BrokenConnector(MemoryConnector):
    def __init__(self, **options):
        raise ValueError(f"cannot reach the store with options {options}")


class PlainConnector(MemoryConnector):
    """The memory connector claiming fewer features, for the capability tests."""

    supports_soft_links = False
    supports_attributes = False


class LongKeyFile(MemoryFile):
    def put_blob(self, data):
        return b"long-key:" + super().put_blob(data)[:4]  # 13 bytes: too long for a 1.10 region reference

    def get_blob(self, key):
        return super().get_blob(key[9:] + bytes(4))


class LongBlobKeyConnector(MemoryConnector):
    """The memory connector with 13-byte blob keys."""

    def create(self, name, *, overwrite, fcpl=b""):
        super().create(name, overwrite=overwrite, fcpl=fcpl)
        return LongKeyFile(self._files[name], True)


class _Litter:
    """Garbage that only the cyclic collector frees, holding an HDF5 id."""

    def __init__(self):
        import h5py

        self.me = self
        self.type_id = h5py.h5t.STD_I32LE.copy()


class LitteringDataset(MemoryDataset):
    def write(self, selection, data):
        _Litter()  # freed by the collector at some later allocation
        raise RuntimeError("disk on fire")


class LitteringFile(MemoryFile):
    def create_dataset(self, meta):
        return self._store.add(LitteringDataset, meta)


class LitteringConnector(MemoryConnector):
    """Writes fail, leaving cyclic garbage that holds an h5py object behind."""

    def create(self, name, *, overwrite, fcpl=b""):
        super().create(name, overwrite=overwrite, fcpl=fcpl)
        return LitteringFile(self._files[name], True)


# What StoppingDataset.read raises (a class or a function that makes the
# exception): set by the tests that use it.
STOP_WITH: Callable[[], BaseException] = KeyboardInterrupt


class StoppingDataset(MemoryDataset):
    """Reads of a dataset with an attribute `stop` raise STOP_WITH; reads of
    one with an attribute `slow` take up to 20 s, first creating the file
    that the environment variable H5PYVOL_TEST_MARK names (so that a test
    knows when to send SIGINT)."""

    def read(self, selection, out):
        if self.has_attribute("stop"):
            raise STOP_WITH()
        if self.has_attribute("slow"):
            mark = os.environ.get("H5PYVOL_TEST_MARK")
            if mark:
                open(mark, "w").close()
            for _ in range(400):
                time.sleep(0.05)
        super().read(selection, out)


class StoppingFile(MemoryFile):
    def create_dataset(self, meta):
        return self._store.add(StoppingDataset, meta)


class StoppingConnector(MemoryConnector):
    """Reads that stop (KeyboardInterrupt, SystemExit) or take long."""

    def create(self, name, *, overwrite, fcpl=b""):
        super().create(name, overwrite=overwrite, fcpl=fcpl)
        return StoppingFile(self._files[name], True)

    def open(self, name, *, writable):
        return StoppingFile(super().open(name, writable=writable)._store, writable)


class BlobRefusingFile(MemoryFile):
    def put_blob(self, data):
        raise OSError(errno.ENOSPC, "the blob store is full")


class BlobRefusingConnector(MemoryConnector):
    """The memory connector whose files keep no blobs."""

    def create(self, name, *, overwrite, fcpl=b""):
        super().create(name, overwrite=overwrite, fcpl=fcpl)
        return BlobRefusingFile(self._files[name], True)
