"""A connector for the error tests: the memory connector, except that writes
raise once a dataset holds data, flushes (and so closes) raise while the root
group has an attribute `refuse_flush`, and `boom` options fail at creation."""

from __future__ import annotations

import errno

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
