"""The Ceph RADOS connector: HDF5 files stored as RADOS objects in a pool.

A thin backend of the shared chunked storage layer (`h5pyvol.storage`, which
does HDF5's objects, chunking, codecs, commits, merges and garbage). Owns what
is RADOS's in docs/rados-layout.md: object names (one *head* object per file,
whose omap holds the metadata records, one object per chunk version), the
head's conditional update (one atomic write op with an asserted object
version), reading heads of formats 1 and 2, bounded asynchronous chunk I/O,
chunk placement (PG computed from the object name, OSDs and host looked up
once per PG and OSD), and the translation of librados errors into clear
Python exceptions.

Options (strings): pool (required), conf, name or user, keyring, namespace,
timeout (seconds, default 30), inflight (concurrent chunk ops, default 32),
and the storage layer's chunk_bytes (4 MiB), write_cache_bytes (128 MiB) and
orphan_grace (600 s).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import itertools
import json
import os
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from h5pyvol.connector import check_file_name
from h5pyvol.storage.backend import Backend, HeadConflict, ReadJob, WriteJob
from h5pyvol.storage.chunked import OPTION_DEFAULTS, ChunkedConnector, ChunkedDataset
from h5pyvol.storage.codecs import unb64
from h5pyvol.storage.manifest import Touched, chunk_entries
from h5pyvol.storage.records import hard_targets, meta_from_json

FORMAT = "h5pyvol-rados/3"  # 3: shared storage layer; 2: a datatype's refs also count the arrays created with it
FORMATS_READ = ("h5pyvol-rados/1", "h5pyvol-rados/2", FORMAT)
HEAD_PREFIX = "h5pyvol.f."  # + the HDF5 file name
DATA_PREFIX = "h5pyvol.d."  # + file id . token . chunk coords . version
DEFAULT_TIMEOUT = 30
DEFAULT_INFLIGHT = 32
OMAP_PAGE = 1000
_MAKE_AHEAD = 4  # chunk bodies made ahead of their submission

try:  # the bindings are optional until a file is opened: `h5pyvol info` must work without them
    import rados
except ImportError:  # pragma: no cover - reported when a file is used
    rados = None


# ---------------------------------------------------------------- errors


def _errno_of(exc: BaseException) -> int | None:
    code = getattr(exc, "errno", None)
    return abs(code) if isinstance(code, int) else None


class _Where:
    """What the connector talks to, for error messages."""

    def __init__(self, pool: str, namespace: str, user: str, timeout: int):
        self.pool, self.namespace, self.user, self.timeout = pool, namespace, user, timeout

    def __str__(self) -> str:
        ns = f", namespace {self.namespace!r}" if self.namespace else ""
        return f"pool {self.pool!r}{ns} as {self.user}"


def _translate(code: int | None, what: str, where: _Where, detail: str = "") -> OSError:
    """A builtin exception for a failed librados call (negative or positive errno)."""
    code = abs(code) if code is not None else None
    tail = f" ({detail})" if detail else ""
    if code in (errno.EPERM, errno.EACCES):
        return PermissionError(
            code, f"RADOS refused to {what} in {where}: permission denied; the cephx user needs OSD caps "
            f"such as \"allow rw pool={where.pool}\"{tail}")
    if code in (errno.ETIMEDOUT, errno.EINTR):
        return TimeoutError(
            errno.ETIMEDOUT, f"RADOS could not {what} in {where} within {where.timeout} s: "
            f"the OSD or monitor does not answer (stopped or unreachable?){tail}")
    if code == errno.ENOENT:
        return FileNotFoundError(code, f"RADOS could not {what} in {where}: no such object{tail}")
    if code == errno.ENOSPC or code == errno.EDQUOT:
        return OSError(code, f"RADOS could not {what} in {where}: the pool is full{tail}")
    text = os.strerror(code) if code else "unknown error"
    return OSError(code or errno.EIO, f"RADOS could not {what} in {where}: {text}{tail}")


def _rados_call(fn: Callable[[], Any], what: str, where: _Where) -> Any:
    """Run a librados call, turning its exceptions into builtin ones."""
    try:
        return fn()
    except rados.Error as exc:
        raise _translate(_errno_of(exc), what, where, str(exc)) from None


class _Pump:
    """Bounded asynchronous librados operations: at most `limit` in flight.

    Completions are waited for in submission order with
    wait_for_complete_and_cb(), so read callbacks have stored their data.
    Every submitted op is waited for, even after a failure, before the
    first error is raised.
    """

    def __init__(self, limit: int, where: _Where):
        self.limit = max(1, limit)
        self.where = where
        self.pending: deque = deque()
        self.error: BaseException | None = None

    def submit(self, start: Callable[[dict], Any], what: str, done: Callable[[Any], None] | None = None,
               missing_ok: bool = False) -> None:
        while len(self.pending) >= self.limit:
            self._wait_one()
        if self.error is not None:
            return  # stop issuing work after a failure; drain what is in flight
        slot: dict = {}
        try:
            comp = start(slot)
        except rados.Error as exc:
            self.error = _translate(_errno_of(exc), what, self.where, str(exc))
            return
        self.pending.append((comp, slot, what, done, missing_ok))

    def _wait_one(self) -> None:
        comp, slot, what, done, missing_ok = self.pending.popleft()
        comp.wait_for_complete_and_cb()
        rc = comp.get_return_value()
        if rc < 0 and not (missing_ok and -rc == errno.ENOENT):
            if self.error is None:
                self.error = _translate(rc, what, self.where)
            return
        if done is not None and self.error is None:
            try:
                done(slot.get("data"))
            except Exception as exc:  # placing the data failed: report it after draining
                self.error = exc

    def finish(self) -> None:
        while self.pending:
            self._wait_one()
        if self.error is not None:
            err, self.error = self.error, None
            raise err


# ---------------------------------------------------------------- placement


# Bob Jenkins' mix as Ceph uses it: each step is x -= y; x -= z; x ^= z >> n (or z << n).
_MIX = ((0, 1, 2, 13), (1, 2, 0, -8), (2, 0, 1, 13), (0, 1, 2, 12), (1, 2, 0, -16), (2, 0, 1, 5),
        (0, 1, 2, 3), (1, 2, 0, -10), (2, 0, 1, 15))


def rjenkins(data: bytes) -> int:
    """Ceph's object name hash (Robert Jenkins' 1996 hash, as `ceph_str_hash_rjenkins`)."""
    m = 0xFFFFFFFF

    def mix(v: list[int]) -> None:
        for x, y, z, n in _MIX:
            v[x] = (v[x] - v[y] - v[z]) & m
            v[x] ^= (v[z] >> n) if n > 0 else (v[z] << -n) & m

    v = [0x9E3779B9, 0x9E3779B9, 0]  # a, b, c
    i, n = 0, len(data)
    while n >= 12:
        for j in range(3):
            v[j] = (v[j] + int.from_bytes(data[i + 4 * j:i + 4 * j + 4], "little")) & m
        mix(v)
        i, n = i + 12, n - 12
    tail = data[i:]
    v[2] = (v[2] + len(data) + (int.from_bytes(tail[8:11], "little") << 8)) & m  # c's first byte: the length
    v[1] = (v[1] + int.from_bytes(tail[4:8], "little")) & m
    v[0] = (v[0] + int.from_bytes(tail[0:4], "little")) & m
    mix(v)
    return v[2]


def placement_group(name: str, namespace: str, pg_num: int) -> int:
    """The PG of an object in a pool of `pg_num` PGs (rjenkins hash, as Ceph's `ceph_stable_mod`)."""
    seed = rjenkins((f"{namespace}\x1f{name}" if namespace else name).encode())
    mask = (1 << (pg_num - 1).bit_length()) - 1
    return seed & mask if (seed & mask) < pg_num else seed & (mask >> 1)


# ---------------------------------------------------------------- heads of older formats


def _legacy_link(item: list) -> tuple[str, dict]:
    name, kind, *rest = item
    if kind == "hard":
        return name, {"hard": rest[0]}
    if kind == "soft":
        return name, {"soft": rest[0]}
    if kind == "external":
        return name, {"external": [rest[0], rest[1]]}
    return name, {"user": [int(rest[0]), rest[1]]}


def _legacy_attr(item: list) -> list:
    """[name, meta, base64 payload] of formats 1-2: fixed-size values were their
    raw bytes, as now; variable-length ones a JSON list of whole elements,
    which is now the values themselves."""
    name, meta, payload = item
    data = payload
    if payload is not None and meta_from_json(meta).dtype.hasobject:
        data = json.loads(unb64(payload))
    return [name, {"meta": meta, "data": data}]


def _legacy_head(omap: dict[str, bytes], rec: dict) -> dict:
    """The storage layer's manifest of a head of format 1 or 2."""
    nodes: dict[str, dict] = {}
    for key, value in omap.items():
        if key.startswith("n."):
            old = json.loads(value)
            record: dict = {"kind": old["kind"], "nlink": int(old["refs"]), "created": 0, "attrs": []}
            if old["kind"] == "group":
                record.update(gcpl=old["gcpl"], links=[list(_legacy_link(i)) for i in old["links"]])
            elif old["kind"] == "datatype":
                record["type"] = old["type"]
            else:  # formats 1-2 stored raw chunks whatever the filters
                record.update(meta=old["meta"], chunk_shape=old["chunk"], filters=[], chunks={})
            nodes[key[2:]] = record
    for key, value in omap.items():
        if key.startswith("a.") and key[2:] in nodes:
            nodes[key[2:]]["attrs"] = [_legacy_attr(item) for item in json.loads(value)]
        elif key.startswith("k."):
            token, coords = key[2:].split(".", 1)
            gen, size = value.decode().split(",")
            name = "" if coords == "s" else coords.replace("_", ".")
            nodes[token]["chunks"][name] = [gen, int(size), None]
    if rec["format"] == "h5pyvol-rados/1":  # format 1 counted hard links only: add the arrays of each datatype
        for record in list(nodes.values()):
            for used in hard_targets({k: v for k, v in record.items() if k != "links"}):
                if nodes.get(used, {}).get("kind") == "datatype":
                    nodes[used]["nlink"] += 1
    return {"file_id": rec["file_id"], "generation": int(rec["generation"]), "root": rec["root"], "nodes": nodes,
            "sessions": {}, "blobs": {}, "_legacy": True}


# ---------------------------------------------------------------- the backend


_clusters: dict[tuple, list] = {}  # (conf, name, keyring, timeout) -> [Rados, users]
_clusters_lock = threading.Lock()
_connected: weakref.WeakSet[RadosBackend] = weakref.WeakSet()  # backends holding a cluster now
_exiting = False  # the interpreter is exiting: no new cluster connection


def _shut_down_at_exit() -> None:
    """Close every backend's pools and shut every cluster connection down
    before the interpreter exits.

    librados runs threads of its own (monitor ticks, messengers, timers). A
    client still connected when the process exits keeps them running while
    exit() runs libceph-common's static destructors; a tick that comes then
    reads freed configuration and the process dies after its work is done
    (SIGSEGV, or an abort on boost::bad_get). Connector instances live as
    long as the process (one per connector string), so nothing else would
    shut their clusters down."""
    global _exiting
    with _clusters_lock:
        _exiting = True
        backends = list(_connected)
    for backend in backends:
        backend.close()
    with _clusters_lock:
        left = [cluster for cluster, _ in _clusters.values()]
        _clusters.clear()
    for cluster in left:
        cluster.shutdown()


def _forget_in_child() -> None:
    """A forked child has none of librados's threads: the parent's clusters
    are not its own to shut down."""
    global _clusters_lock
    _clusters_lock = threading.Lock()
    _clusters.clear()
    _connected.clear()


atexit.register(_shut_down_at_exit)
os.register_at_fork(after_in_child=_forget_in_child)


def _shut_down_before_librados_exits() -> None:
    """In a C program the interpreter (and so `_shut_down_at_exit`) ends
    inside HDF5's exit handler, which runs after librados's exit-time
    destructors: have the plugin close HDF5 before them."""
    plugin = sys.modules.get("h5pyvol._plugin")  # present wherever HDF5 calls this connector
    if plugin is not None:
        plugin.close_hdf5_at_exit()


class RadosBackend(Backend):
    """Objects of one pool (and namespace) for the chunked storage layer."""

    request_bytes = 1 << 17
    cheap_listing = False  # listing walks the whole pool (namespace)
    bytes_bodies = True  # the bindings take nothing but bytes

    def __init__(self, pool: str, conf: str | None, user: str, keyring: str | None, namespace: str, timeout: int,
                 inflight: int):
        self.pool, self.conf, self.user, self.keyring = pool, conf, user, keyring
        self.namespace, self.timeout, self.inflight = namespace, timeout, inflight
        self.where = _Where(pool, namespace, user, timeout)
        self._key: tuple | None = None
        self._cluster = None
        self._ioctx_obj = None
        self._head_io = None  # head operations: their own ioctx, whose last version no chunk op moves
        self._head_lock = threading.Lock()
        self._placement: dict[str, Any] = {}  # pool facts, PG -> (up, acting), OSD -> host

    # -- connection

    def _connect(self) -> None:
        if rados is None:
            raise ImportError("the rados connector needs Ceph's python3-rados bindings "
                              "(scripts/services/install.sh makes them importable)")
        for what, path in (("ceph config file", self.conf), ("keyring", self.keyring)):
            if path and not os.path.exists(path):
                raise FileNotFoundError(errno.ENOENT, f"{what} {path!r} does not exist")
        key = (self.conf, self.user, self.keyring, self.timeout)
        with _clusters_lock:
            if _exiting:
                raise OSError(errno.ESHUTDOWN, f"{self.where}: the Python interpreter is exiting and its RADOS "
                              "connections are shut down (close files before the program ends)")
            entry = _clusters.get(key)
            if entry is None:
                t = str(self.timeout)
                conf = {"rados_osd_op_timeout": t, "rados_mon_op_timeout": t, "client_mount_timeout": t}
                if self.keyring:
                    conf["keyring"] = self.keyring
                try:
                    cluster = rados.Rados(conffile=self.conf or "", name=self.user, conf=conf)
                    cluster.connect(timeout=self.timeout)
                except rados.Error as exc:
                    code = _errno_of(exc)
                    source = f"conf {self.conf or '(default)'}, keyring {self.keyring or '(from conf)'}"
                    if code in (errno.EPERM, errno.EACCES, errno.EKEYREJECTED):
                        raise PermissionError(
                            errno.EPERM, f"cephx authentication as {self.user} failed ({source}): "
                            f"wrong key or unknown user") from None
                    if code in (errno.ETIMEDOUT, errno.EINTR):
                        raise TimeoutError(
                            errno.ETIMEDOUT, f"no Ceph monitor answered within {self.timeout} s ({source})") from None
                    raise _translate(code, "connect to the cluster", self.where, f"{source}: {exc}") from None
                entry = _clusters[key] = [cluster, 0]
                _shut_down_before_librados_exits()
            entry[1] += 1
            self._key, self._cluster = key, entry[0]
            _connected.add(self)

    def _open_ioctx(self):
        if self._cluster is None:
            self._connect()
        try:
            exists = self._cluster.pool_exists(self.pool)
        except rados.Error as exc:
            raise _translate(_errno_of(exc), "look up the pool", self.where, str(exc)) from None
        if not exists:
            raise FileNotFoundError(errno.ENOENT, f"RADOS pool {self.pool!r} does not exist "
                                    f"(create it with 'ceph osd pool create {self.pool}')")
        ioctx = _rados_call(lambda: self._cluster.open_ioctx(self.pool), "open the pool", self.where)
        if self.namespace:
            ioctx.set_namespace(self.namespace)
        return ioctx

    @property
    def ioctx(self):
        if self._ioctx_obj is None:
            self._ioctx_obj = self._open_ioctx()
        return self._ioctx_obj

    @property
    def head_io(self):
        if self._head_io is None:
            self._head_io = self._open_ioctx()
        return self._head_io

    def close(self) -> None:
        # Under the head lock: a session heartbeat (another thread) may be
        # updating the head through head_io right now.
        with self._head_lock:
            ios = (self._ioctx_obj, self._head_io)
            self._ioctx_obj = self._head_io = None
            for io in ios:
                if io is not None:
                    io.close()
        if self._cluster is not None:
            with _clusters_lock:
                _connected.discard(self)
                entry = _clusters.get(self._key)
                if entry is not None:
                    entry[1] -= 1
                    if entry[1] <= 0:
                        del _clusters[self._key]
                        entry[0].shutdown()
            self._cluster = None

    # -- names

    def file_name(self, name: str) -> str:
        check_file_name(name)
        if not name:
            raise ValueError("an empty file name is not a RADOS object name")
        return name

    def chunk_key(self, name: str, file_id: str, token: str, chunk: str, version: str) -> str:
        return f"{DATA_PREFIX}{file_id}.{token}.{chunk.replace('.', '_') or 's'}.{version}"

    def key_version(self, key: str) -> str:
        return key.rsplit(".", 1)[-1]

    def describe(self, name: str) -> str:
        return f"RADOS file {name!r} in {self.where}"

    # -- chunk objects

    def _pump(self) -> _Pump:
        return _Pump(self.inflight, self.where)

    def read(self, jobs: list[ReadJob]) -> None:
        ioctx, pump = self.ioctx, self._pump()
        for job in jobs:
            # A whole object for a callback is handed over as it came; runs are gathered first.
            gather = None if job.into is not None or job.runs == [(0, job.size)] else bytearray(job.size)
            state = {"buf": job.into if job.into is not None else gather, "left": len(job.runs)}
            for off, n in job.runs:
                def start(slot, key=job.key, off=off, n=n):
                    return ioctx.aio_read(key, n, off, lambda _c, data, slot=slot: slot.__setitem__("data", data))
                pump.submit(start, f"read chunk object {job.key!r}",
                            lambda data, job=job, state=state, off=off, n=n: self._landed(job, state, off, n, data))
        pump.finish()

    @staticmethod
    def _landed(job: ReadJob, state: dict, off: int, n: int, data: bytes | None) -> None:
        if data is None or len(data) != n:
            raise OSError(errno.EIO, f"{job.what}: chunk object {job.key!r} holds fewer bytes than expected "
                          f"({0 if data is None else off + len(data)} < {off + n}): the file was changed by another "
                          "writer since it was opened here; reopen it")
        buf = state["buf"]
        if buf is None:
            job.then(memoryview(data))
            return
        memoryview(buf)[off:off + n] = data
        state["left"] -= 1
        if state["left"] == 0 and job.into is None:
            job.then(memoryview(buf))

    def write(self, jobs: list[WriteJob]) -> None:
        """Bodies are `bytes` (`bytes_bodies`). Raw chunks are copied and
        zoned in one pass right before they are handed to librados; costly
        bodies (filters, variable-length types) are made by two helper
        threads a few chunks ahead, while this thread hands the made ones to
        librados. (Helper threads for mere copies cost more in handoffs than
        they save: measured 2-3% of write time.)"""
        ioctx, pump = self.ioctx, self._pump()

        def submit(job: WriteJob, data: bytes) -> None:
            job.size = len(data)
            pump.submit(lambda slot, k=job.key, d=data: ioctx.aio_write_full(k, d), f"write chunk object {job.key!r}")

        try:
            if len(jobs) == 1 or not any(job.costly for job in jobs):
                for job in jobs:
                    submit(job, job.make())
            else:
                with ThreadPoolExecutor(2, thread_name_prefix="h5pyvol-rados") as makers:
                    waiting = iter(jobs)
                    ahead = deque((job, makers.submit(job.make)) for job in itertools.islice(waiting, _MAKE_AHEAD))
                    while ahead:
                        job, body = ahead.popleft()
                        following = next(waiting, None)
                        if following is not None:
                            ahead.append((following, makers.submit(following.make)))
                        submit(job, body.result())
        except BaseException:
            with contextlib.suppress(Exception):
                pump.finish()  # every submitted write is waited for before the first error is raised
            raise
        pump.finish()

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if not keys:
            return
        ioctx, pump = self.ioctx, self._pump()
        for key in keys:
            pump.submit(lambda slot, k=key: ioctx.aio_remove(k), f"remove {key!r}", missing_ok=True)
        try:
            pump.finish()
        except OSError as exc:
            print(f"h5pyvol rados: warning: superseded chunk objects left behind: {exc}", file=sys.stderr)

    def list_chunks(self, name: str, file_id: str) -> list[str]:
        prefix = f"{DATA_PREFIX}{file_id}."
        return _rados_call(lambda: [o.key for o in self.ioctx.list_objects() if o.key.startswith(prefix)],
                           f"list the objects of {name!r}", self.where)

    # -- heads

    def _read_omap(self, head: str) -> tuple[dict[str, bytes] | None, int | None]:
        """All omap entries of a head object and its version (None: no such object)."""
        io = self.head_io
        for _attempt in range(5):
            omap: dict[str, bytes] = {}
            after, version = "", None
            try:
                with self._head_lock:
                    while True:
                        with rados.ReadOpCtx() as op:
                            it, _ = io.get_omap_vals(op, after, "", OMAP_PAGE)
                            io.operate_read_op(op, head)
                            page = list(it)
                        v = io.get_last_version()
                        if version is None:
                            version = v
                        elif v != version:
                            break  # a commit landed between pages: read again
                        omap.update(page)
                        if len(page) < OMAP_PAGE:
                            return (omap if "file" in omap else None), version
                        after = page[-1][0]
            except rados.ObjectNotFound:
                return None, None
            except rados.Error as exc:
                raise _translate(_errno_of(exc), f"read the head object {head!r}", self.where, str(exc)) from None
        raise OSError(errno.EAGAIN, f"RADOS head {head!r} kept changing while being read")

    def load_head(self, name: str) -> tuple[dict | None, Any]:
        omap, version = self._read_omap(HEAD_PREFIX + name)
        if omap is None:
            return None, None
        rec = json.loads(omap["file"])
        if rec.get("format") not in FORMATS_READ:
            raise OSError(errno.EINVAL, f"RADOS object {HEAD_PREFIX + name!r} is not an h5pyvol file "
                          f"(format {rec.get('format')!r}, expected {FORMAT!r})")
        if rec["format"] != FORMAT:
            return _legacy_head(omap, rec), version
        nodes: dict[str, dict] = {}
        sessions, blobs = {}, {}
        for key, value in omap.items():
            if key.startswith("n."):
                nodes[key[2:]] = json.loads(value)
        for key, value in omap.items():
            kind = key[:2]
            if kind == "a.":
                nodes[key[2:]]["attrs"] = json.loads(value)
            elif kind == "k.":
                token, chunk = key[2:].split(".", 1)
                nodes[token].setdefault("chunks", {})[chunk] = json.loads(value)
            elif kind == "s.":
                sessions[key[2:]] = json.loads(value)
            elif kind == "b.":
                blobs[key[2:]] = value.decode()
        for record in nodes.values():
            record.setdefault("attrs", [])
            if record["kind"] == "dataset":
                record.setdefault("chunks", {})
        return {"file_id": rec["file_id"], "generation": rec["generation"], "root": rec["root"], "nodes": nodes,
                "sessions": sessions, "blobs": blobs}, version

    @staticmethod
    def _node_entries(hx: str, record: dict, sets: dict[str, bytes], core: bool = True, attrs: bool = True,
                      chunks: bool = True) -> None:
        if core:
            rest = {k: v for k, v in record.items() if k not in ("attrs", "chunks")}
            sets[f"n.{hx}"] = json.dumps(rest, separators=(",", ":")).encode()
        if attrs:
            sets[f"a.{hx}"] = json.dumps(record.get("attrs", []), separators=(",", ":")).encode()
        if chunks:
            for name, entry in chunk_entries(record).items():
                sets[f"k.{hx}.{name}"] = json.dumps(entry, separators=(",", ":")).encode()

    def store_head(self, name: str, head: dict, touched: Touched, version: Any, create: str | None = None) -> Any:
        sets: dict[str, bytes] = {}
        removes: list[str] = []
        nodes = head["nodes"]
        whole = create is not None or touched.everything
        if whole:
            for hx, record in nodes.items():
                self._node_entries(hx, record, sets)
        else:
            for hx in touched.full:
                self._node_entries(hx, nodes[hx], sets)
            for hx in touched.core - touched.full:
                if hx in nodes:
                    self._node_entries(hx, nodes[hx], sets, attrs=False, chunks=False)
            for hx in touched.attrs - touched.full:
                if hx in nodes:
                    self._node_entries(hx, nodes[hx], sets, core=False, chunks=False)
            for hx, chunk in touched.chunks:
                if hx in touched.full or hx not in nodes:
                    continue
                entry = chunk_entries(nodes[hx]).get(chunk)
                if entry is None:
                    removes.append(f"k.{hx}.{chunk}")
                else:
                    sets[f"k.{hx}.{chunk}"] = json.dumps(entry, separators=(",", ":")).encode()
            for hx, chunks in touched.removed.items():
                removes += [f"n.{hx}", f"a.{hx}", *(f"k.{hx}.{c}" for c in chunks)]
        sessions, blobs = head.get("sessions") or {}, head.get("blobs") or {}
        for sid in (sessions if whole else touched.sessions):
            if sid in sessions:
                sets[f"s.{sid}"] = json.dumps(sessions[sid]).encode()
            else:
                removes.append(f"s.{sid}")
        for key in (blobs if whole else touched.blobs):
            if key in blobs:
                sets[f"b.{key}"] = blobs[key].encode()
            else:
                removes.append(f"b.{key}")
        sets["file"] = json.dumps({"format": FORMAT, "file_id": head["file_id"], "generation": head["generation"],
                                   "root": head["root"]}).encode()
        io, obj = self.head_io, HEAD_PREFIX + name
        removes = [k for k in removes if k not in sets]
        try:
            with self._head_lock, rados.WriteOpCtx() as w:
                if create == "exclusive":
                    w.new(rados.LIBRADOS_CREATE_EXCLUSIVE)
                elif version is not None:
                    w.assert_version(version)
                if whole:
                    io.clear_omap(w)
                elif removes:
                    io.remove_omap_keys(w, tuple(removes))
                keys = tuple(sets)
                io.set_omap(w, keys, tuple(sets[k] for k in keys))
                io.operate_write_op(w, obj)
                return io.get_last_version()
        except rados.ObjectExists:
            raise HeadConflict(name) from None
        except rados.Error as exc:
            code = _errno_of(exc)
            if code in (errno.ERANGE, errno.EOVERFLOW) or (code == errno.ENOENT and version is not None):
                raise HeadConflict(name) from None  # the head moved on (or went) since `version`
            raise _translate(code, f"commit file {name!r} (head object {obj!r})", self.where, str(exc)) from None

    def delete_head(self, name: str) -> None:
        _rados_call(lambda: self.head_io.remove_object(HEAD_PREFIX + name), f"remove the head of {name!r}",
                    self.where)

    # -- placement

    def _mon(self, cmd: dict, what: str) -> dict:
        where = self.where
        if self._cluster is None:
            self._connect()
        ret, out, err = _rados_call(lambda: self._cluster.mon_command(json.dumps(cmd), b"", timeout=where.timeout),
                                    what, where)
        if ret != 0:
            raise _translate(ret, what, where, err)
        return json.loads(out)

    def object_placement(self, key: str) -> dict:
        """The cluster's own answer for one object (`ceph osd map`)."""
        cmd = {"prefix": "osd map", "pool": self.pool, "object": key, "format": "json"}
        if self.namespace:
            cmd["nspace"] = self.namespace
        return self._mon(cmd, f"look up the placement of {key!r}")

    def locations(self, keys: list[str]) -> list[dict]:
        """Pool, namespace, PG, acting OSDs, primary and its host of each key.
        The PG is computed from the name (Ceph's hash, checked once against
        `osd map`); each PG's OSDs and each OSD's host are asked once."""
        if not keys:
            return []
        cache = self._placement
        if "pg_num" not in cache:
            info = self._mon({"prefix": "osd pool get", "pool": self.pool, "var": "pg_num", "format": "json"},
                             "look up the pool's placement groups")
            cache["pg_num"], cache["pool_id"] = int(info["pg_num"]), int(info["pool_id"])
            check = self.object_placement(keys[0])
            cache["hash_ok"] = check["pgid"] == self._pgid(keys[0])
        out = []
        for key in keys:
            if cache["hash_ok"]:
                pgid = self._pgid(key)
                if ("pg", pgid) not in cache:
                    got = self._mon({"prefix": "pg map", "pgid": pgid, "format": "json"}, f"look up PG {pgid}")
                    cache[("pg", pgid)] = (got["up"], got["acting"])
                up, acting = cache[("pg", pgid)]
            else:  # a hash other than Ceph's default: ask the cluster per object
                got = self.object_placement(key)
                pgid, up, acting = got["pgid"], got["up"], got["acting"]
            primary = acting[0] if acting else None
            out.append({"pool": self.pool, "namespace": self.namespace, "pg": pgid, "pgid": pgid, "osds": acting,
                        "up": up, "primary": primary, "host": self._host(primary)})
        return out

    def _pgid(self, key: str) -> str:
        cache = self._placement
        return f"{cache['pool_id']}.{placement_group(key, self.namespace, cache['pg_num']):x}"

    def _host(self, osd: int | None) -> str | None:
        if osd is None:
            return None
        if ("osd", osd) not in self._placement:
            got = self._mon({"prefix": "osd find", "id": osd, "format": "json"}, f"look up OSD {osd}")
            self._placement[("osd", osd)] = got.get("host") or got.get("crush_location", {}).get("host")
        return self._placement[("osd", osd)]


# ---------------------------------------------------------------- the connector


class RadosDataset(ChunkedDataset):
    """A dataset of the rados connector: one RADOS object per chunk version."""


class RadosConnector(ChunkedConnector):
    """HDF5 files as objects in a Ceph RADOS pool (see docs/rados-layout.md)."""

    name = "rados"
    dataset_class = RadosDataset

    KNOWN = {"pool", "conf", "name", "user", "keyring", "namespace", "timeout", "inflight", *OPTION_DEFAULTS}

    def __init__(self, **options: str) -> None:
        unknown = sorted(set(options) - self.KNOWN)
        if unknown:
            raise ValueError(f"unknown rados connector option(s) {unknown}; known: {sorted(self.KNOWN)}")
        if not options.get("pool"):
            raise ValueError("the rados connector needs a pool: 'rados;pool=NAME;...' or rados://POOL/NAME")
        super().__init__(**options)
        user = options.get("name") or options.get("user") or "client.admin"
        try:
            timeout = int(float(options.get("timeout", DEFAULT_TIMEOUT)))
            inflight = int(options.get("inflight", DEFAULT_INFLIGHT))
        except ValueError as exc:
            raise ValueError(f"bad rados connector option: {exc}") from None
        self.pool = options["pool"]
        self._backend = RadosBackend(self.pool, options.get("conf") or None, user if "." in user else f"client.{user}",
                                     options.get("keyring") or None, options.get("namespace", ""), timeout, inflight)
        self.where = self._backend.where

    @property
    def backend(self) -> RadosBackend:
        return self._backend


def connector_dataset(dataset: Any) -> RadosDataset:
    """The connector's dataset behind an open h5py Dataset served by this connector."""
    from h5pyvol import node_of

    node = dataset if isinstance(dataset, RadosDataset) else node_of(dataset)
    if not isinstance(node, RadosDataset):
        raise TypeError(f"{dataset!r} is not a dataset of the rados connector")
    return node


def layout(dataset: Any) -> list[dict]:
    """Per written chunk of an h5py Dataset (or a connector dataset) of this
    connector: its coords, object name, byte size, and `osds` (acting set),
    `primary`, `up`, `pgid`, `pool`, `namespace`, `host`. A thin wrapper of
    `h5pyvol.shards`."""
    node = connector_dataset(dataset)
    return [{"chunk": tuple(s.start // c for s, c in zip(shard.selection, node.chunk_shape, strict=True)),
             "object": shard.key, "bytes": shard.nbytes, **shard.location}
            for shard in node.shards() if shard.written]

