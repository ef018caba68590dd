"""The S3 connector: HDF5 files stored as objects in an S3 bucket.

A thin backend of the shared chunked storage layer (`h5pyvol.storage`, which
does HDF5's objects, chunking, codecs, commits, merges and garbage). Owns what
is S3's in docs/s3-layout.md: the key of every object (one JSON manifest per
file, one object per chunk version), the mapping of HDF5 file names onto keys,
the manifest's conditional PUT (``If-Match``/``If-None-Match``, and a probe,
once per endpoint, of whether the server honours them), reading manifests of
formats 1 and 2, the parallel transfers (ranged and zero-copy reads), and the
mapping of S3 and network failures onto clear Python exceptions. Object
requests go through `_s3wire` (SigV4 over http.client); boto3 resolves
credentials and lists keys.

Options (all strings, from the connector string or `h5pyvol.File(...)`):
``bucket`` (required), ``prefix``, ``endpoint_url``, ``region``, ``profile``,
``max_workers`` (8), ``timeout`` (10 s), and the storage layer's
``chunk_bytes`` (4 MiB), ``write_cache_bytes`` (128 MiB) and ``orphan_grace``
(600 s). Credentials come only from the standard AWS chain (environment,
profile, instance metadata).
"""

from __future__ import annotations

import atexit
import errno
import hashlib
import http.client
import json
import socket
import threading
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, ThreadPoolExecutor
from typing import Any

import numpy as np

from h5pyvol.connector import check_file_name
from h5pyvol.storage.backend import Backend, HeadConflict, ReadJob, WriteJob
from h5pyvol.storage.buffers import populate, scratch_buffer
from h5pyvol.storage.chunked import OPTION_DEFAULTS, ChunkedConnector, ChunkedDataset
from h5pyvol.storage.manifest import Touched
from h5pyvol.storage.plan import split_runs
from h5pyvol.storage.records import hard_targets

from ._s3wire import NoCredentials, Wire, WireError

FORMAT = "h5pyvol-s3"
FORMAT_VERSION = 3  # 3: shared storage layer (sessions, blobs, zone maps, file ids); 2: datatype nlink counts arrays
MANIFEST = ".manifest.json"
CHUNKS = ".chunks/"

DEFAULTS = {
    "prefix": "",
    "endpoint_url": "",
    "region": "",
    "profile": "",
    "max_workers": "8",
    "timeout": "10",
    **OPTION_DEFAULTS,
}

# A read of fewer chunks than workers fetches each as parallel ranges of at
# least this. Smaller parts cost more than they gain on RGW: one 8 MiB chunk
# took 11.2 ms in one GET, 12.6 ms in 2 ranges, 13.4 ms in 4 (medians).
_PART_BYTES = 8 << 20


# ---------------------------------------------------------------- errors


class NoSuchBucket(FileNotFoundError):
    """The bucket itself is missing (not just a file in it)."""


class _Errors:
    """Turns S3 and network failures (ours and botocore's) into clear Python exceptions (never with credentials)."""

    def __init__(self, bucket: str, endpoint: str, timeout: float):
        self.bucket = bucket
        self.endpoint = endpoint
        self.timeout = timeout

    def translate(self, exc: BaseException, what: str) -> BaseException:
        from botocore import exceptions as bex

        where = f"s3://{self.bucket} at {self.endpoint}"
        answer = None  # (S3 error code, HTTP status, message) when the server answered
        if isinstance(exc, WireError):
            answer = exc.code, exc.status, exc.message
        elif isinstance(exc, bex.ClientError):
            err = exc.response.get("Error", {})
            answer = (str(err.get("Code", "")), exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
                      err.get("Message", ""))
        if answer is not None:
            code, status, message = answer
            if code == "NoSuchBucket":
                return NoSuchBucket(errno.ENOENT, f"the S3 bucket {self.bucket!r} does not exist at {self.endpoint}")
            if code in ("NoSuchKey", "404", "NotFound") or status == 404:
                return FileNotFoundError(errno.ENOENT, f"{what}: no such object in {where}")
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden") \
                    or status == 403:
                return PermissionError(
                    errno.EACCES, f"{what}: {where} refused the request ({code}); check the AWS credentials"
                )
            return OSError(errno.EIO, f"{what}: {where} answered {code or status}: {message}")
        if isinstance(exc, NoCredentials | bex.NoCredentialsError | bex.PartialCredentialsError):
            return PermissionError(
                errno.EACCES,
                f"{what}: no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)",
            )
        if isinstance(exc, TimeoutError | bex.ConnectTimeoutError | bex.ReadTimeoutError):
            return TimeoutError(
                errno.ETIMEDOUT, f"{what}: the S3 endpoint {self.endpoint} did not answer within {self.timeout:g} s"
            )
        if isinstance(exc, ConnectionRefusedError | bex.EndpointConnectionError):
            return ConnectionRefusedError(
                errno.ECONNREFUSED, f"{what}: cannot connect to the S3 endpoint {self.endpoint}"
            )
        if isinstance(exc, ConnectionError | http.client.HTTPException | bex.ConnectionClosedError):
            # reset, broken pipe, closed mid-answer: the server went away during the request
            return ConnectionResetError(
                errno.ECONNRESET, f"{what}: the connection to the S3 endpoint {self.endpoint} was lost "
                f"({type(exc).__name__}: the server stopped or restarted)"
            )
        if isinstance(exc, bex.ConnectionError | socket.gaierror) or (
                isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)):
            return ConnectionRefusedError(
                errno.ECONNREFUSED, f"{what}: cannot connect to the S3 endpoint {self.endpoint}"
            )
        return exc

    def call(self, what: str, fn: Callable, *args, **kw):
        try:
            return fn(*args, **kw)
        except Exception as exc:
            new = self.translate(exc, what)
            if new is exc:
                raise
            try:
                raise new from None
            finally:
                del new  # no frame <-> traceback cycle left for the garbage collector


def _conflict(exc: WireError) -> bool:
    """A failed condition (412), or AWS's answer to two conditional writes at once (409)."""
    return exc.status == 412 or exc.code in ("PreconditionFailed", "ConditionalRequestConflict")


# ---------------------------------------------------------------- file names


def _check_parts(parts: list[str], text: str, what: str) -> None:
    for part in parts:
        if not part or part.startswith(".") or any(ord(ch) < 32 or ch == "\x7f" for ch in part):
            raise ValueError(
                f"{what} {text!r} is not usable as an S3 key: it needs '/'-separated parts that are "
                "not empty, are not '..', do not start with '.' and hold no control characters"
            )


def key_of_name(name: str) -> str:
    """The key part of an HDF5 file name: leading '/' dropped and './' parts
    removed, so that local-looking paths of existing programs work
    (``/tmp/run/out.h5`` -> ``tmp/run/out.h5``); ``..``, empty parts, parts
    starting with '.', control characters and NUL are refused."""
    check_file_name(name)
    parts = [p for p in name.lstrip("/").split("/") if p != "."]
    _check_parts(parts or [""], name, "file name")
    return "/".join(parts)


# ---------------------------------------------------------------- the backend


_CLIENTS: dict[tuple, Any] = {}
_CLIENTS_LOCK = threading.Lock()
_CONDITIONS: dict[str, str | None] = {}  # endpoint -> how it takes If-Match ("quoted"/"unquoted"), None: ignores it
_CONDITIONS_LOCK = threading.Lock()
_BACKENDS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _drop_connections() -> None:
    """Close every backend's kept-alive connections at exit: a connector
    whose file never closed (a failed close, a program that exits with files
    open) would otherwise hold its sockets until the interpreter is torn down."""
    for backend in list(_BACKENDS):
        backend.close()


class S3Backend(Backend):
    """Objects of one bucket (under a prefix) for the chunked storage layer."""

    request_bytes = 1 << 19
    """Ranged reads: a request costs the server (RGW on loopback, 2 cores)
    about as much as sending this many more bytes (measured ~1,050 small
    ranged GETs/s against ~700 MiB/s of whole 8 MiB objects)."""
    cheap_listing = True

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None, region: str | None, profile: str | None,
                 max_workers: int, timeout: float):
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.max_workers = max_workers
        self.timeout = timeout
        self._region = region
        self._profile = profile
        self._client = None
        self._wire: Wire | None = None
        self._client_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.errors = _Errors(bucket, endpoint_url or "the default AWS endpoint", timeout)
        _BACKENDS.add(self)

    # -- names and keys

    def file_name(self, name: str) -> str:
        key = key_of_name(name)
        if len((self.prefix + key).encode()) > 700:
            raise ValueError(f"file name {name!r} is too long for an S3 key")
        return key

    def base(self, name: str) -> str:
        """The key prefix under which a file's objects live."""
        return f"{self.prefix}{name}/"

    def chunk_key(self, name: str, file_id: str, token: str, chunk: str, version: str) -> str:
        return f"{self.prefix}{name}/{CHUNKS}{token}/{chunk or '0'}-{version}"

    def key_version(self, key: str) -> str:
        return key.rsplit("-", 1)[-1]

    def describe(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{name}"

    # -- the clients: boto3 for credentials and listings, the wire for objects

    def _session(self):
        import boto3

        try:
            return boto3.session.Session(profile_name=self._profile)
        except Exception as exc:  # ProfileNotFound...
            raise ValueError(f"s3 connector: AWS profile {self._profile!r}: {type(exc).__name__}") from None

    @property
    def client(self):
        with self._client_lock:
            if self._client is None:
                from botocore.config import Config

                settings: dict[str, Any] = dict(
                    connect_timeout=self.timeout,
                    read_timeout=self.timeout,
                    retries={"max_attempts": 1, "mode": "standard"},
                    max_pool_connections=max(10, self.max_workers),
                )
                if self.endpoint_url:
                    settings["s3"] = {"addressing_style": "path"}
                try:  # S3-compatible servers may not know the newer default checksums
                    config = Config(**settings, request_checksum_calculation="when_required",
                                    response_checksum_validation="when_required")
                except TypeError:
                    config = Config(**settings)
                session = self._session()
                region = self._region or session.region_name or "us-east-1"
                # Clients are heavy (their service model); connectors with the same
                # endpoint, settings and credentials share one. The credentials are
                # part of the key only in memory.
                creds = session.get_credentials()
                frozen = creds.get_frozen_credentials() if creds is not None else None
                key = (self._profile, self.endpoint_url, region, self.timeout, self.max_workers,
                       tuple(frozen) if frozen else None)
                with _CLIENTS_LOCK:
                    self._client = _CLIENTS.get(key)
                    if self._client is None:
                        self._client = _CLIENTS[key] = session.client(
                            "s3", endpoint_url=self.endpoint_url, region_name=region, config=config)
            return self._client

    @property
    def wire(self) -> Wire:
        """The connection pool for object requests (credentials resolved once, by boto3's chain)."""
        with self._client_lock:
            if self._wire is None:
                session = self._session()
                creds = session.get_credentials()  # None: every request fails with NoCredentials

                def credentials():
                    if creds is None:
                        return None
                    frozen = creds.get_frozen_credentials()
                    return frozen.access_key, frozen.secret_key, frozen.token

                self._wire = Wire(self.endpoint_url, self.bucket, self._region or session.region_name or "us-east-1",
                                  credentials, self.timeout, self.max_workers + 2)
            return self._wire

    def get_into(self, key: str, buf: memoryview, start: int, what: str, whole: bool = False) -> int:
        """Bytes start..start+len(buf) of an object (`whole`: all of it), read straight into buf; returns how many."""
        return self.errors.call(what, self.wire.get_into, key, buf, start, whole)

    def put(self, key: str, body, what: str, conditions: dict[str, str] | None = None) -> str | None:
        return self.errors.call(what, self.wire.put, key, body, conditions)

    def list_keys(self, prefix: str, what: str) -> list[tuple[str, int]]:
        def listing():
            out = []
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                out += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
            return out
        return self.errors.call(what, listing)

    # -- transfers

    @property
    def pool(self) -> ThreadPoolExecutor:
        with self._client_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="h5pyvol-s3")
            return self._pool

    def parallel(self, fn: Callable, items: list) -> list:
        """fn over items through the bounded pool; results in order. On the
        first error the items not started yet are cancelled (so a dead server
        costs one timeout, not one per item), the running ones are waited
        for, and that error is raised."""
        if len(items) <= 1:
            return [fn(i) for i in items]
        futures = [self.pool.submit(fn, i) for i in items]
        results, error = [], None
        for f in futures:  # wait for all, so no request still runs when we return
            try:
                results.append(f.result())
            except CancelledError:
                pass
            except BaseException as exc:  # noqa: B036 - re-raised below
                if error is None:
                    error = exc
                    for g in futures:
                        g.cancel()
        if error is not None:
            raise error
        return results

    def _get_range(self, key: str, buf, start: int, what: str, size: int) -> None:
        """Bytes start..start+len(buf) of a chunk object of `size` bytes into buf
        (a flat uint8 array's pages are faulted in first, see `populate`)."""
        if isinstance(buf, np.ndarray):
            populate(buf)
            buf = memoryview(buf)
        try:
            got = self.get_into(key, buf, start, what, whole=start == 0 and len(buf) == size)
        except FileNotFoundError:
            raise FileNotFoundError(
                errno.ENOENT, f"chunk object {key!r} is gone: another writer committed a newer version of the "
                "file after it was opened here; reopen it") from None
        if got != len(buf):
            raise OSError(errno.EIO, f"{what}: chunk object {key!r} holds fewer bytes than its dataset's chunks")

    def _fetch(self, job: ReadJob, runs: list[tuple[int, int]]) -> None:
        buf = scratch_buffer(job.size)
        for off, n in runs:
            self._get_range(job.key, buf[off:off + n], off, job.what, job.size)
        job.then(buf)

    def read(self, jobs: list[ReadJob]) -> None:
        """Requests for chunk objects, `max_workers` at a time. When a read
        touches fewer chunks than there are workers, each big chunk is fetched
        as several ranged requests in parallel."""
        calls: list[Callable[[], None]] = []
        later = []
        for job in jobs:
            parts = -(-self.max_workers // len(jobs)) if job.size >= 2 * _PART_BYTES else 1
            runs = split_runs(job.runs, parts, _PART_BYTES) if parts > 1 else job.runs
            into = job.into
            if into is None and len(runs) > 1 and parts > 1:
                into = np.empty(job.size, np.uint8)  # few chunks: one buffer each, filled in parallel
                later.append((job, into))
            if into is not None:
                calls += [lambda k=job.key, d=into[o:o + n], o=o, w=job.what, s=job.size: self._get_range(k, d, o, w, s)
                          for o, n in runs]
            else:
                calls.append(lambda job=job, runs=runs: self._fetch(job, runs))
        self.parallel(lambda call: call(), calls)
        for job, buf in later:
            job.then(buf)

    def write(self, jobs: list[WriteJob]) -> None:
        def store(job: WriteJob) -> None:
            body = job.make()  # encoded here, in the worker
            job.size = len(body)
            self.put(job.key, body, job.what)
        self.parallel(store, jobs)

    def delete(self, keys: Iterable[str]) -> None:
        def remove(key):
            try:
                self.wire.delete(key)
            except Exception:  # noqa: BLE001 - best effort: a failure only leaves garbage
                pass
        self.parallel(remove, list(keys))

    def list_chunks(self, name: str, file_id: str) -> list[str]:
        return [k for k, _ in self.list_keys(self.base(name) + CHUNKS, f"listing the chunk objects of {name!r}")]

    # -- heads

    def load_head(self, name: str) -> tuple[dict | None, Any]:
        key = self.base(name) + MANIFEST
        try:
            raw, etag = self.errors.call(f"opening {name!r}", self.wire.get_tagged, key)
        except NoSuchBucket:
            raise
        except FileNotFoundError:
            return None, None
        try:
            manifest = json.loads(raw)
        except ValueError:
            raise OSError(errno.EINVAL, f"{key!r} is not an h5pyvol S3 manifest (not JSON)") from None
        return _manifest_from_json(manifest, key), etag or _etag(raw)

    def store_head(self, name: str, head: dict, touched: Touched, version: Any, create: str | None = None) -> Any:
        body = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **head}, separators=(",", ":")).encode()
        style = self.condition_style()
        conditions: dict[str, str] = {}
        if style is not None:
            if create == "exclusive":
                conditions["if-none-match"] = "*"
            elif version is not None:
                conditions["if-match"] = version if style == "quoted" else version.strip('"')
        etag = self.errors.call(f"committing {name!r}", self._put_if, self.base(name) + MANIFEST, body, conditions)
        return etag or _etag(body)

    def _put_if(self, key: str, body: bytes, conditions: dict[str, str]) -> str | None:
        """A PUT under conditions; HeadConflict when one fails."""
        try:
            return self.wire.put(key, body, conditions)
        except WireError as exc:
            if conditions and _conflict(exc):
                raise HeadConflict(key) from None
            if conditions and exc.status >= 500:  # RGW's answer to conditional PUTs racing each other
                raise HeadConflict(f"{key}: the server answered {exc.status} {exc.code}", maybe_stored=True) from None
            raise

    def delete_head(self, name: str) -> None:
        self.errors.call(f"deleting {name!r}", self.wire.delete, self.base(name) + MANIFEST)

    def condition_style(self) -> str | None:
        """How this endpoint takes If-Match ("quoted" as HTTP says, or
        "unquoted" as RGW 16 wants), or None if it ignores conditions; found
        out once per endpoint by a probe object under the prefix."""
        endpoint = self.endpoint_url or f"aws:{self._region}"
        with _CONDITIONS_LOCK:
            if endpoint not in _CONDITIONS:
                style = self._probe_conditions()
                if style is None:
                    warnings.warn(
                        f"the S3 server at {endpoint} ignores conditional PUTs (If-Match/If-None-Match): writers "
                        "of one file at the same time may lose each other's updates (the last commit wins)",
                        RuntimeWarning, stacklevel=2)
                _CONDITIONS[endpoint] = style
            return _CONDITIONS[endpoint]

    def _probe_conditions(self) -> str | None:
        key = f"{self.prefix}.h5pyvol-probe-{uuid.uuid4().hex}"
        wire, what = self.wire, "probing conditional writes"

        def put(body: bytes, **conditions: str) -> str:
            """The new ETag, or "" when the condition failed."""
            try:
                return self.errors.call(what, self._put_if, key, body, conditions) or _etag(body)
            except HeadConflict:
                return ""

        try:
            etag = put(b"1", **{"if-none-match": "*"})
            if not etag or put(b"2", **{"if-none-match": "*"}):  # the second create must fail
                return None
            if put(b"3", **{"if-match": '"00000000000000000000000000000000"'}):  # a wrong ETag must fail
                return None
            if put(b"4", **{"if-match": etag}):
                return "quoted"
            return "unquoted" if put(b"5", **{"if-match": etag.strip('"')}) else None
        finally:
            try:
                wire.delete(key)
            except Exception:  # noqa: BLE001 - a leftover probe object is harmless
                pass

    # -- locations

    def locations(self, keys: list[str]) -> list[dict]:
        endpoint = self.endpoint_url or "the default AWS endpoint"
        return [{"bucket": self.bucket, "key": k, "endpoint": endpoint} for k in keys]

    def idle(self) -> None:
        # One connector per bucket stays loaded for the process's life: its
        # keep-alive connections and worker threads must not outlive its files.
        self.close()  # the client, wire and pool are made again on demand

    def close(self) -> None:
        if self._client is not None:
            # Shared with other connectors (_CLIENTS): close() only drops its idle
            # keep-alive connections (requests in flight finish); it stays usable.
            self._client.close()
            self._client = None
        if self._wire is not None:
            self._wire.close()
            self._wire = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _etag(body: bytes) -> str:
    """The ETag S3 gives a single-part object: the MD5 of its bytes, quoted."""
    return f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'


def _manifest_from_json(m: dict, key: str) -> dict:
    """The storage layer's manifest of a stored one (formats 1 to 3)."""
    if m.get("format") != FORMAT or m.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{key!r} is not an h5pyvol S3 manifest of a version this reader knows")
    version = m.get("format_version", 1)
    head = {k: v for k, v in m.items() if k not in ("format", "format_version", "next_id")}
    head.setdefault("file_id", "")
    head.setdefault("sessions", {})
    head.setdefault("blobs", {})
    if version >= 3:
        return head
    nodes = head["nodes"]
    for record in nodes.values():
        if record["kind"] == "dataset":  # [epoch, size] entries; a scalar's chunk was named "0"
            scalar = not record["meta"]["shape"]
            record["chunks"] = {("" if scalar else n): [*e, None] for n, e in record["chunks"].items()}
    if version < 2:  # datatypes' counts also include the arrays created with them
        for record in list(nodes.values()):
            for used in hard_targets({k: v for k, v in record.items() if k != "links"}):
                if nodes.get(used, {}).get("kind") == "datatype":
                    nodes[used]["nlink"] = nodes[used].get("nlink", 0) + 1
    return head


# ---------------------------------------------------------------- the connector


class S3Dataset(ChunkedDataset):
    """A dataset of the s3 connector: one object per chunk version."""


class S3Connector(ChunkedConnector):
    """HDF5 files in an S3 bucket: a JSON manifest and one object per chunk version."""

    name = "s3"
    dataset_class = S3Dataset

    def __init__(self, **options: str) -> None:
        unknown = sorted(set(options) - set(DEFAULTS) - {"bucket"})
        if unknown:
            raise ValueError(f"unknown s3 connector options {unknown}; known: bucket, {', '.join(DEFAULTS)}")
        if not options.get("bucket"):
            raise ValueError("the s3 connector needs a bucket: 'h5pyvol s3;bucket=NAME;...' or s3://NAME/key.h5")
        super().__init__(**options)
        opts = {**DEFAULTS, **options}
        prefix = opts["prefix"].strip("/")
        if prefix:
            _check_parts(prefix.split("/"), prefix, "prefix")
            prefix += "/"
        try:
            max_workers = max(1, int(opts["max_workers"]))
            timeout = float(opts["timeout"])
        except ValueError as exc:
            raise ValueError(f"bad s3 connector option: {exc}") from None
        self.bucket = opts["bucket"]
        self._backend = S3Backend(self.bucket, prefix, opts["endpoint_url"] or None, opts["region"] or None,
                                  opts["profile"] or None, max_workers, timeout)

    @property
    def backend(self) -> S3Backend:
        return self._backend


# ---------------------------------------------------------------- layout of an h5py dataset


def layout(dataset: Any) -> dict:
    """The chunk objects behind an h5py Dataset served by this connector (or
    an `S3Connector` dataset): bucket, manifest key, chunk shape, filters and,
    per written chunk, its grid index, object key and stored size. A thin
    wrapper of `h5pyvol.shards` (which also gives zone maps and locations)."""
    from h5pyvol import node_of

    node = dataset if isinstance(dataset, S3Dataset) else node_of(dataset)
    if not isinstance(node, S3Dataset):
        raise TypeError(f"{dataset!r} is not a dataset of the s3 connector")
    backend = node._file.backend
    chunks = [{"index": tuple(s.start // c for s, c in zip(shard.selection, node.chunk_shape, strict=True)),
               "key": shard.key, "bytes": shard.nbytes} for shard in node.shards() if shard.written]
    return {"bucket": backend.bucket, "manifest": backend.base(node._file.name) + MANIFEST,
            "chunk_shape": node.chunk_shape, "filters": node.filters, "chunks": chunks}
