"""Upload and download of a large file through the Microsoft (OneDrive) emulator: time, throughput, peak memory.

    python -m bench.onedrive_transfer [--size-mib 1024] [--repeat 3] [--chunk-kib 10240] [--skip-hash-share]
                                      [--settle-seconds 4]

(``--chunk-kib`` defaults to the backend's ``CHUNK_SIZE``, 10 MiB; it must be a multiple of 320 KiB.)

What is measured (docs/performance.md, "OneDrive backend", has the figures and how to read them):

* ``OneDriveBackend.upload_file`` of a ``--size-mib`` file (its own QuickXorHash check against Graph's included),
  then ``download_file`` of it back (size + QuickXorHash checked by the backend, MD5 checked here afterwards);
* the baseline: the same bytes moved by a minimal ``http.client`` client speaking the same protocol to the same
  emulator: ``createUploadSession`` then one ``PUT`` per fragment of the same size to the ``uploadUrl``, each
  sent straight from the file in 1 MiB pieces; for the download ``GET .../content``, its 302 followed, one
  streamed ``GET`` on the download host written to disk in 1 MiB pieces. The ratio is backend time / baseline
  time (medians over ``--repeat`` runs, backend and baseline interleaved), so 1.0 means "as fast as a plain
  transfer";
* QuickXorHash's share: the same backend operations with the transfer module's ``QuickXorHash`` replaced, in the
  measuring process only, by (a) a subclass that adds up the wall and thread-CPU time of its ``update`` calls and
  (b) a stand-in that hashes nothing (and answers the expected digest); plus the hash alone over the file.

The emulator (identity over TLS + Graph + download host, ``tests.emulators.microsoft``) runs in a process of its
own (it keeps every uploaded byte in memory, which must not be counted), and every measured operation runs in a
freshly spawned interpreter: imports, the backend built, a tiny upload and download as warm-up, then the
operation, after a pause (``--settle-seconds``, 4 s). The pause is for the machine: on a VM whose host takes
back the guest's free memory (virtio-balloon free page reporting, as on the development VM), memory freed in the
last second or so is cheap to reuse and older free memory costs a host fault on first touch, so without it an
operation's speed would depend on what the previous one freed (the page cache of its deleted file, the emulator's
buffers). ``page_cache_write`` shows that cost: the same amount written to a new file after the pause and at once
after freeing as much. Peak memory is the growth of that process's resident set over its size just before the
operation (``bench.google_drive_transfer.Probe``: ``VmHWM`` reset through ``/proc/self/clear_refs`` and a 10 ms
sampler of ``/proc/self/statm``, the larger reported). CPU seconds of the measuring process and of the emulator are
recorded too.

Part of every transfer's time is the emulator's own work, the same for backend and baseline: on the last upload
fragment it joins the fragments and hashes the whole file (pure-Python QuickXorHash and SHA-1) before answering;
before the first byte of a download it takes the MD5 of the whole file for the ETag. The emulator process times
that work for each operation (``emulator_work_seconds``, see ``_EmulatorClock``), and
``ratio_without_emulator_work`` compares the medians of each side's time minus its own runs' emulator work. (The
baseline also times the same wait from the client's side: ``emulator_wait_seconds``.)

Results are printed and written to ``bench/results/onedrive_transfer.json`` (sections not run this time are kept
from the previous file).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import http.client
import importlib.metadata
import json
import logging
import multiprocessing
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from bench.google_drive_transfer import (
    Probe,
    _stop_on_sigterm,
    _table,
    _workdir,
    end_process,
    file_md5,
    isolated,
    machine,
    make_file,
    save,
    source_version,
    summarize,
    warm_up,
)

MiB = 1024 * 1024
MB = 1_000_000
PIECE = MiB  # what the baseline reads from disk / from the socket at a time
FRAGMENT_UNIT = 320 * 1024
MEMORY_TARGET_MIB = 64
SETTLE_SECONDS = 4.0
OCTET_STREAM = "application/octet-stream"
RESULTS = Path(__file__).resolve().parent / "results" / "onedrive_transfer.json"
APPROOT = "/me/drive/special/approot"
_spawn = multiprocessing.get_context("spawn")


# -- the emulator, in a process of its own ----------------------------------------------------------------
def _credentials(ms: Any) -> dict[str, Any]:
    """The credentials dict the backend takes (as ``tests/cloud/ms_support.py`` builds it)."""
    tokens = ms.identity.issue_tokens()
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=int(tokens["expires_in"]))
    return {
        "access_token": tokens["access_token"],
        "refresh_token": tokens["refresh_token"],
        "expires_at": expires.isoformat(),
        "client_id": ms.client_id,
        "authority": ms.authority,
    }


def _forget(ms: Any, delete_files: bool) -> None:
    """Free what the emulator holds: finished sessions' bytes (it keeps them), and with ``delete_files`` the files."""
    graph = ms.graph
    with graph.lock:
        for session in graph.sessions:
            if session.state not in ("active", "awaiting-commit"):
                session.data = bytearray()
        if delete_files:
            drive = graph.drive()
            for item in drive.children(drive.ensure_approot().id):
                drive.delete(item)
            graph.sessions.clear()
            graph._sessions_by_id.clear()
            graph._download_tokens.clear()
            graph.download_requests.clear()
            graph.server.requests.clear()
            graph.download_server.requests.clear()


class _EmulatorClock:
    """Times the emulator's own blocking work, in its process, by wrapping two of its handler methods.

    ``commit``: on the last fragment of an upload session, joining the fragments and hashing the whole file
    (QuickXorHash in pure Python, SHA-1) before the answer is sent. ``download_prepare``: on the download host,
    from the request to the first byte of the answer (an MD5 of the whole file for the ETag). Both sides of the
    comparison wait for this work alike; ``ratio_without_emulator_work`` takes it out.
    """

    def __init__(self) -> None:
        from tests.emulators import ms_graph

        self.seconds = {"commit": 0.0, "download_prepare": 0.0}
        self._lock = threading.Lock()
        clock = self
        commit, route, send_body = (
            ms_graph._GraphHandler._commit,
            ms_graph._DownloadHandler.route,
            ms_graph._DownloadHandler._send_body,
        )

        def timed_commit(handler: Any, session: Any) -> Any:
            started = time.perf_counter()
            try:
                return commit(handler, session)
            finally:
                clock.add("commit", time.perf_counter() - started)

        def timed_route(handler: Any) -> Any:
            handler._bench_started = time.perf_counter()
            return route(handler)

        def timed_send_body(handler: Any, *args: Any) -> Any:
            clock.add("download_prepare", time.perf_counter() - handler._bench_started)
            return send_body(handler, *args)

        ms_graph._GraphHandler._commit = timed_commit  # type: ignore[method-assign]
        ms_graph._DownloadHandler.route = timed_route  # type: ignore[method-assign]
        ms_graph._DownloadHandler._send_body = timed_send_body  # type: ignore[method-assign]

    def add(self, key: str, seconds: float) -> None:
        with self._lock:
            self.seconds[key] += seconds

    def take(self) -> dict[str, float]:
        with self._lock:
            taken = dict(self.seconds)
            self.seconds = dict.fromkeys(taken, 0.0)
        return taken


def _serve_emulator(conn: Any) -> None:
    """Child process: run ``MicrosoftEmulators`` and answer the parent's requests until it says stop or goes away."""
    from tests.emulators.microsoft import MicrosoftEmulators

    clock = _EmulatorClock()
    with MicrosoftEmulators() as ms:
        ms.graph.approot()
        conn.send({"graph_url": ms.graph_url, "env": ms.env()})
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                break
            if message == "credentials":
                conn.send(_credentials(ms))
            elif message in ("forget-sessions", "delete-all"):
                _forget(ms, delete_files=message == "delete-all")
                conn.send("ok")
            elif message == "clock":
                conn.send(clock.take())
            else:
                break


class EmulatorProcess:
    """``MicrosoftEmulators`` in a child process; its URLs and fresh ``credentials()`` come over a pipe.

    The child is stopped on exit however the ``with`` block ends, and killed if it does not stop; it also exits
    by itself when the pipe breaks (the parent died).
    """

    def __init__(self) -> None:
        self.graph_url = ""
        self.env: dict[str, str] = {}
        self._conn: Any = None
        self._process: Any = None

    def __enter__(self) -> EmulatorProcess:
        self._conn, child = _spawn.Pipe()
        self._process = _spawn.Process(target=_serve_emulator, args=(child,), name="microsoft-emulator", daemon=True)
        self._process.start()
        child.close()
        try:
            if not self._conn.poll(120):
                raise RuntimeError("the Microsoft emulators did not start within 120 s")
            started = self._conn.recv()
            self.graph_url, self.env = started["graph_url"], started["env"]
        except BaseException:
            self.__exit__()
            raise
        return self

    @property
    def pid(self) -> int:
        return int(self._process.pid)

    def _ask(self, message: str) -> Any:
        self._conn.send(message)
        if not self._conn.poll(120):
            raise RuntimeError(f"the Microsoft emulators did not answer {message!r}")
        return self._conn.recv()

    def credentials(self) -> dict[str, Any]:
        return dict(self._ask("credentials"))

    def forget_sessions(self) -> None:
        self._ask("forget-sessions")

    def delete_all(self) -> None:
        self._ask("delete-all")

    def clock(self) -> dict[str, float]:
        """The emulator's blocking work since the last call (see ``_EmulatorClock``), in seconds."""
        return dict(self._ask("clock"))

    def __exit__(self, *exc: object) -> None:
        end_process(self._conn, self._process, "stop")


# -- test data --------------------------------------------------------------------------------------------
def file_quickxorhash(path: Path) -> str:
    from kite_desktop.storage.quickxorhash import QuickXorHash

    digest = QuickXorHash()
    with open(path, "rb", buffering=0) as source:
        while piece := source.read(8 * MiB):
            digest.update(piece)
    return digest.b64digest()


def _tiny_file(workdir: str) -> Path:
    """A 4 KiB warm-up file."""
    path = Path(workdir) / f"warmup-{uuid.uuid4().hex[:8]}.bin"
    path.write_bytes(os.urandom(4096))
    return path


# -- QuickXorHash stand-ins (installed in the measuring process only, after the warm-up) ------------------
_hash_clock = {"seconds": 0.0, "thread_cpu_seconds": 0.0, "calls": 0, "bytes": 0}
_hash_clock_lock = threading.Lock()


def _timed_hash_class() -> type:
    from kite_desktop.storage.quickxorhash import QuickXorHash

    class TimedQuickXorHash(QuickXorHash):
        """The real hash, with the wall and CPU time of every ``update`` added up (the calls run in worker threads)."""

        def update(self, data: Any) -> None:
            wall, cpu = time.perf_counter(), time.thread_time()
            super().update(data)
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
            with _hash_clock_lock:
                _hash_clock["seconds"] += wall
                _hash_clock["thread_cpu_seconds"] += cpu
                _hash_clock["calls"] += 1
                _hash_clock["bytes"] += len(data)

    return TimedQuickXorHash


def _no_hash_class(expected: str) -> type:
    class NoQuickXorHash:
        """Hashes nothing; its digest is the one the server will report, so the backend's checks pass."""

        def __init__(self, data: Any = b"") -> None:
            pass

        def update(self, data: Any) -> None:
            pass

        def b64digest(self) -> str:
            return expected

    return NoQuickXorHash


def _install_hash_variant(spec: dict[str, Any]) -> None:
    variant = spec.get("hash")
    if not variant:
        return
    from kite_desktop.storage import onedrive_transfer

    if variant == "timed":
        onedrive_transfer.QuickXorHash = _timed_hash_class()  # type: ignore[misc]
    elif variant == "none":
        onedrive_transfer.QuickXorHash = _no_hash_class(spec["qxh"])  # type: ignore[misc]
    else:
        raise ValueError(f"unknown hash variant {variant!r}")


def _hash_report() -> dict[str, Any]:
    return {
        "hash_seconds": round(_hash_clock["seconds"], 3),
        "hash_thread_cpu_seconds": round(_hash_clock["thread_cpu_seconds"], 3),
        "hash_calls": _hash_clock["calls"],
        "hash_bytes": _hash_clock["bytes"],
    }


# -- measured operations: each runs in a fresh interpreter ------------------------------------------------
class _RetryCounter(logging.Handler):
    """Counts the backend's retry log lines: a measurement that needed retries is not a clean one."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "retrying" in message or "asking the session" in message or "starting a new one" in message:
            self.count += 1

    @classmethod
    def install(cls) -> _RetryCounter:
        counter = cls()
        logger = logging.getLogger("kite_desktop")
        logger.addHandler(counter)
        logger.setLevel(logging.INFO)
        return counter


def _backend(spec: dict[str, Any]) -> Any:
    os.environ.update(spec["env"])  # KITE_CA_BUNDLE, KITE_MS_AUTHORITY, KITE_MS_CLIENT_ID, KITE_GRAPH_URL
    from kite_desktop.storage.onedrive_backend import OneDriveBackend

    return OneDriveBackend(spec["credentials"], graph=spec["graph_url"], chunk_size=spec["chunk"])


def backend_upload(spec: dict[str, Any]) -> dict[str, Any]:
    """``upload_file`` of ``spec["path"]``; the stored size and QuickXorHash are checked against the file's."""
    counter = _RetryCounter.install()

    async def run() -> dict[str, Any]:
        backend = _backend(spec)
        try:
            await warm_up(backend, spec["workdir"])
            _install_hash_variant(spec)
            time.sleep(spec["settle"])
            path, name = Path(spec["path"]), f"bench-{uuid.uuid4().hex[:8]}.bin"
            with Probe(spec["emulator_pid"]) as probe:
                info = await backend.upload_file(path, name, OCTET_STREAM)
            if info.size != spec["size"] or info.hash != spec["qxh"]:
                raise AssertionError(f"uploaded {info.size} bytes, QuickXorHash {info.hash}, expected {spec['qxh']}")
            extra = _hash_report() if spec.get("hash") == "timed" else {}
            return probe.report(spec["size"], retries=counter.count, item_id=info.key, **extra)
        finally:
            await backend.aclose()

    return asyncio.run(run())


def backend_download(spec: dict[str, Any]) -> dict[str, Any]:
    """``download_file`` of ``spec["item_id"]`` (the backend checks size + QuickXorHash); MD5 checked after."""
    counter = _RetryCounter.install()

    async def run() -> dict[str, Any]:
        backend = _backend(spec)
        try:
            await warm_up(backend, spec["workdir"])
            _install_hash_variant(spec)
            time.sleep(spec["settle"])
            destination = Path(spec["workdir"]) / f"download-{uuid.uuid4().hex[:8]}.bin"
            try:
                with Probe(spec["emulator_pid"]) as probe:
                    info = await backend.download_file(spec["item_id"], destination)
                md5 = file_md5(destination)
                if md5 != spec["md5"] or info.size != spec["size"]:
                    raise AssertionError(f"downloaded {info.size} bytes with MD5 {md5}, expected {spec['md5']}")
            finally:
                destination.unlink(missing_ok=True)
            extra = _hash_report() if spec.get("hash") == "timed" else {}
            return probe.report(spec["size"], retries=counter.count, **extra)
        finally:
            await backend.aclose()

    return asyncio.run(run())


def hash_alone(spec: dict[str, Any]) -> dict[str, Any]:
    """QuickXorHash of the (page-cached) file in fragment-sized ``update`` calls; only the hashing is timed."""
    from kite_desktop.storage.quickxorhash import QuickXorHash

    digest = QuickXorHash()
    wall = cpu = 0.0
    fd = os.open(spec["path"], os.O_RDONLY)
    try:
        for offset in range(0, spec["size"], spec["chunk"]):
            data = os.pread(fd, spec["chunk"], offset)
            started, started_cpu = time.perf_counter(), time.process_time()
            digest.update(data)
            wall += time.perf_counter() - started
            cpu += time.process_time() - started_cpu
    finally:
        os.close(fd)
    started, started_cpu = time.perf_counter(), time.process_time()
    result = digest.b64digest()
    wall += time.perf_counter() - started
    cpu += time.process_time() - started_cpu
    if result != spec["qxh"]:
        raise AssertionError("QuickXorHash disagrees with itself")
    md5 = hashlib.md5(usedforsecurity=False)
    started_md5 = time.process_time()
    fd = os.open(spec["path"], os.O_RDONLY)
    try:
        for offset in range(0, spec["size"], spec["chunk"]):
            md5.update(os.pread(fd, spec["chunk"], offset))
    finally:
        os.close(fd)
    md5_cpu_with_reads = time.process_time() - started_md5
    return {
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "mb_per_s": round(spec["size"] / wall / MB),
        "md5_with_reads_cpu_seconds": round(md5_cpu_with_reads, 3),
    }


def page_cache_write(spec: dict[str, Any]) -> dict[str, Any]:
    """The machine, not Kite: writing ``size`` bytes to a new file after settling, then again at once.

    On a VM whose host takes back the guest's free memory (virtio-balloon free page reporting), pages freed more
    than about a second ago cost a host fault on first touch; this shows how much of a download's time that is.
    """
    piece = bytearray(os.urandom(4 * MiB))
    times = []
    for settle in (spec["settle"], 0.0):
        time.sleep(settle)
        path = Path(spec["workdir"]) / f"scratch-{uuid.uuid4().hex[:8]}.bin"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        started = time.perf_counter()
        try:
            for _ in range(0, spec["size"], len(piece)):
                os.write(fd, bytes(piece))
            times.append(time.perf_counter() - started)
        finally:
            os.close(fd)
            path.unlink()
    return {"after_settle_seconds": round(times[0], 3), "right_after_free_seconds": round(times[1], 3)}


class PlainGraph:
    """The baseline: an upload session and a content download by hand over ``http.client``.

    Nothing but moving bytes: no hashing while sending or receiving (the server's answer and the file are checked
    afterwards, untimed), no temp file, no fsync, no name check, one connection per host, one thread, one 1 MiB
    buffer used throughout.
    """

    def __init__(self, graph_url: str, token: str, timeout: float = 300):
        url = urlsplit(graph_url)
        self.prefix = url.path.rstrip("/")
        self.timeout = timeout
        self.auth = {"Authorization": f"Bearer {token}"}
        self.buffer = memoryview(bytearray(PIECE))
        self._connections: dict[str, http.client.HTTPConnection] = {}
        self.graph = self._connection(url.netloc)
        self.emulator_wait = 0.0  # last upload: wait for the answer to its final fragment; last download: to headers

    def _connection(self, netloc: str) -> http.client.HTTPConnection:
        connection = self._connections.get(netloc)
        if connection is None:
            host, _, port = netloc.rpartition(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
            self._connections[netloc] = connection
        return connection

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()

    def _call(self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Any:
        self.graph.request(method, self.prefix + target, body=body, headers={**self.auth, **(headers or {})})
        response = self.graph.getresponse()
        payload = response.read()
        if response.status >= 400:
            raise RuntimeError(f"{method} {target} answered {response.status}: {payload[:200]!r}")
        return response, payload

    def upload(self, path: Path, name: str, chunk: int) -> dict[str, Any]:
        size = path.stat().st_size
        body = {"item": {"@microsoft.graph.conflictBehavior": "fail", "name": name}}
        _, payload = self._call(
            "POST",
            f"{APPROOT}:/{quote(name, safe='')}:/createUploadSession",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )
        upload_url = urlsplit(json.loads(payload)["uploadUrl"])
        connection = self._connection(upload_url.netloc)  # no Authorization on the upload URL
        target = upload_url.path + (f"?{upload_url.query}" if upload_url.query else "")
        with open(path, "rb", buffering=0) as source:
            for offset in range(0, size, chunk):
                length = min(chunk, size - offset)
                connection.putrequest("PUT", target, skip_accept_encoding=True)
                connection.putheader("Content-Length", str(length))
                connection.putheader("Content-Range", f"bytes {offset}-{offset + length - 1}/{size}")
                connection.endheaders()
                remaining = length
                while remaining:
                    got = source.readinto(self.buffer[: min(PIECE, remaining)])
                    if not got:
                        raise RuntimeError(f"{path} ended early")
                    connection.send(self.buffer[:got])
                    remaining -= got
                sent = time.perf_counter()
                reply = connection.getresponse()
                answer = reply.read()
                if reply.status == 202 and offset + length < size:
                    continue
                self.emulator_wait = time.perf_counter() - sent
                if reply.status not in (200, 201):
                    raise RuntimeError(f"fragment at {offset} answered {reply.status}: {answer[:200]!r}")
                return dict(json.loads(answer))
        raise RuntimeError("an empty file has no fragments to send")

    def download(self, item_id: str, destination: Path) -> int:
        response, _ = self._call("GET", f"/me/drive/items/{quote(item_id, safe='')}/content")
        if response.status != 302:
            raise RuntimeError(f"content answered {response.status}, not a redirect")
        location = urlsplit(response.getheader("Location"))
        connection = self._connection(location.netloc)  # no Authorization on the download host
        started = time.perf_counter()
        connection.request("GET", location.path + (f"?{location.query}" if location.query else ""))
        stream = connection.getresponse()
        self.emulator_wait = time.perf_counter() - started
        if stream.status != 200:
            raise RuntimeError(f"download answered {stream.status}: {stream.read()[:200]!r}")
        received = 0
        with open(destination, "wb", buffering=0) as sink:
            while got := stream.readinto(self.buffer):
                sink.write(self.buffer[:got])
                received += got
        return received

    def delete(self, item_id: str) -> None:
        self._call("DELETE", f"/me/drive/items/{quote(item_id, safe='')}")


def plain_upload(spec: dict[str, Any]) -> dict[str, Any]:
    client = PlainGraph(spec["graph_url"], spec["credentials"]["access_token"])
    try:
        tiny = _tiny_file(spec["workdir"])
        client.delete(client.upload(tiny, tiny.name, spec["chunk"])["id"])
        tiny.unlink()
        time.sleep(spec["settle"])
        with Probe(spec["emulator_pid"]) as probe:
            item = client.upload(Path(spec["path"]), f"plain-{uuid.uuid4().hex[:8]}.bin", spec["chunk"])
        stored = item["file"]["hashes"]["quickXorHash"]
        if int(item["size"]) != spec["size"] or stored != spec["qxh"]:
            raise AssertionError(f"plain upload stored {item['size']} bytes with QuickXorHash {stored}")
        return probe.report(spec["size"], item_id=item["id"], emulator_wait_seconds=round(client.emulator_wait, 3))
    finally:
        client.close()


def plain_download(spec: dict[str, Any]) -> dict[str, Any]:
    """The streamed GET; then, outside the timed part, what the backend does besides: an fsync of the file."""
    client = PlainGraph(spec["graph_url"], spec["credentials"]["access_token"])
    try:
        tiny = _tiny_file(spec["workdir"])
        tiny_id = client.upload(tiny, tiny.name, spec["chunk"])["id"]
        client.download(tiny_id, tiny)
        client.delete(tiny_id)
        tiny.unlink()
        destination = Path(spec["workdir"]) / f"plain-download-{uuid.uuid4().hex[:8]}.bin"
        time.sleep(spec["settle"])
        with Probe(spec["emulator_pid"]) as probe:
            received = client.download(spec["item_id"], destination)
        try:
            started = time.perf_counter()
            with open(destination, "rb+") as written:
                os.fsync(written.fileno())
            fsync_seconds = time.perf_counter() - started
            md5 = file_md5(destination)
        finally:
            destination.unlink()
        if received != spec["size"] or md5 != spec["md5"]:
            raise AssertionError(f"plain download got {received} bytes with MD5 {md5}")
        return probe.report(
            spec["size"], fsync_seconds=round(fsync_seconds, 3), emulator_wait_seconds=round(client.emulator_wait, 3)
        )
    finally:
        client.close()


# -- the runs ---------------------------------------------------------------------------------------------
def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Runner:
    """Runs operations on one test file against one emulator, each in a fresh process."""

    def __init__(self, emulator: EmulatorProcess, workdir: Path, size_mib: int, chunk: int, settle: float):
        self.emulator = emulator
        self.settle = settle
        self.workdir = workdir
        self.chunk = chunk
        self.path = workdir / f"source-{size_mib}MiB-{uuid.uuid4().hex[:6]}.bin"
        self.size = size_mib * MiB
        self.md5 = make_file(self.path, self.size)
        self.qxh = file_quickxorhash(self.path)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)

    def run(self, function: Callable[[dict[str, Any]], dict[str, Any]], **extra: Any) -> dict[str, Any]:
        spec = {
            "graph_url": self.emulator.graph_url,
            "env": self.emulator.env,
            "credentials": self.emulator.credentials(),
            "emulator_pid": self.emulator.pid,
            "workdir": str(self.workdir),
            "path": str(self.path),
            "size": self.size,
            "md5": self.md5,
            "qxh": self.qxh,
            "chunk": self.chunk,
            "settle": self.settle,
            **extra,
        }
        self.emulator.clock()
        result = isolated(function, spec)
        work = self.emulator.clock()
        result["emulator_work_seconds"] = round(sum(work.values()), 3)
        result["loadavg_1min"] = round(os.getloadavg()[0], 2)
        self.emulator.forget_sessions()  # a finished session still holds every byte it received
        return result


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary = summarize(runs)
    for key in ("emulator_wait_seconds", "emulator_work_seconds", "hash_seconds", "hash_thread_cpu_seconds"):
        if key in runs[0]:
            summary[key] = round(statistics.median(run[key] for run in runs), 3)
    if "emulator_work_seconds" in runs[0]:
        net = statistics.median(run["seconds"] - run["emulator_work_seconds"] for run in runs)
        summary["seconds_without_emulator_work"] = round(net, 3)
    summary["runs"] = summary.pop("runs")  # keep the runs last
    return summary


def _ratios(ours: dict[str, Any], plain: dict[str, Any]) -> dict[str, Any]:
    pairs = [a["seconds"] / b["seconds"] for a, b in zip(ours["runs"], plain["runs"], strict=True)]
    net = ours["seconds_without_emulator_work"] / plain["seconds_without_emulator_work"]
    return {
        "ratio_to_baseline": round(ours["seconds"] / plain["seconds"], 2),
        "ratio_min": round(min(pairs), 2),
        "ratio_max": round(max(pairs), 2),
        "ratio_without_emulator_work": round(net, 2),
    }


def run_main(runner: Runner, repeat: int) -> dict[str, Any]:
    keys = ("upload", "download", "baseline_upload", "baseline_download")
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    page_cache: list[dict[str, Any]] = []
    for number in range(1, repeat + 1):
        _say(f"run {number}/{repeat}: backend upload, baseline upload, backend download, baseline download …")
        up = runner.run(backend_upload)
        plain_up = runner.run(plain_upload)
        item_id = up.pop("item_id")
        plain_up.pop("item_id")
        down = runner.run(backend_download, item_id=item_id)
        plain_down = runner.run(plain_download, item_id=item_id)
        runner.emulator.delete_all()
        for key, run in zip(keys, (up, down, plain_up, plain_down), strict=True):
            runs[key].append(run)
        page_cache.append(runner.run(page_cache_write))
    summary: dict[str, Any] = {key: _summary(value) for key, value in runs.items()}
    summary["upload"].update(_ratios(summary["upload"], summary["baseline_upload"]))
    summary["download"].update(_ratios(summary["download"], summary["baseline_download"]))
    fsync = summary["baseline_download"]["fsync_seconds"]
    summary["download"]["ratio_without_emulator_work_and_fsync"] = round(
        (summary["download"]["seconds_without_emulator_work"] - fsync)
        / summary["baseline_download"]["seconds_without_emulator_work"],
        2,
    )
    summary["page_cache_write"] = {
        "after_settle_seconds": statistics.median(run["after_settle_seconds"] for run in page_cache),
        "right_after_free_seconds": statistics.median(run["right_after_free_seconds"] for run in page_cache),
        "runs": page_cache,
    }
    return summary


def run_hash_share(runner: Runner, repeat: int) -> dict[str, Any]:
    """The backend with QuickXorHash timed, and with it replaced by nothing; and the hash alone."""
    keys = ("upload_timed_hash", "upload_no_hash", "download_timed_hash", "download_no_hash")
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    alone = []
    for number in range(1, repeat + 1):
        _say(f"QuickXorHash share, run {number}/{repeat}: uploads and downloads, hash timed / hash left out …")
        timed = runner.run(backend_upload, hash="timed")
        none = runner.run(backend_upload, hash="none")
        item_id = timed.pop("item_id")
        none.pop("item_id")
        timed_down = runner.run(backend_download, item_id=item_id, hash="timed")
        none_down = runner.run(backend_download, item_id=item_id, hash="none")
        runner.emulator.delete_all()
        for key, run in zip(keys, (timed, none, timed_down, none_down), strict=True):
            runs[key].append(run)
        alone.append(runner.run(hash_alone))
    summary: dict[str, Any] = {key: _summary(value) for key, value in runs.items()}
    best = min(alone, key=lambda run: run["cpu_seconds"])
    summary["hash_alone"] = {**best, "runs": alone}
    return summary


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _machine() -> dict[str, Any]:
    host = machine()

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    host["packages"] = {name: version(name) for name in ("httpx", "httpcore", "h11", "anyio", "msal")}
    host.update(source_version())
    return host


# -- output -----------------------------------------------------------------------------------------------
def _mb(row: dict[str, Any]) -> str:
    return f"{row['mb_per_s']:.0f}"


def print_main(main: dict[str, Any]) -> None:
    chunk = main["chunk_kib"] / 1024
    print(f"\n{main['size_mib']} MiB file, {chunk:g} MiB fragments, median of {main['repeat']} (MB = 10^6 B)")
    header = ["", "s", "MB/s", "ratio (range)", "s w/o emulator work", "ratio", "peak MiB", "CPU s", "emulator CPU s"]
    rows = []
    for key in ("upload", "baseline_upload", "download", "baseline_download"):
        got = main[key]
        ratio = without = ""
        if "ratio_min" in got:
            ratio = f"{got['ratio_to_baseline']:.2f} ({got['ratio_min']:.2f}-{got['ratio_max']:.2f})"
            without = f"{got['ratio_without_emulator_work']:.2f}"
        rows.append(
            [
                key.replace("_", " "),
                f"{got['seconds']:.2f}",
                _mb(got),
                ratio,
                f"{got['seconds_without_emulator_work']:.2f}",
                without,
                f"{got['peak_rss_growth_mib']:.1f}",
                f"{got['cpu_seconds']:.2f}",
                f"{got['emulator_cpu_seconds']:.2f}",
            ]
        )
    print(_table(header, rows))
    up, down = main["baseline_upload"], main["baseline_download"]
    print(
        f"Emulator work (both sides wait for it): upload commit {up['emulator_work_seconds']:.2f} s "
        f"(client's wait for the last answer {up['emulator_wait_seconds']:.2f} s), download preparation "
        f"{down['emulator_work_seconds']:.2f} s (wait for headers {down['emulator_wait_seconds']:.2f} s). "
        f"fsync of the downloaded file (the backend does it, the baseline does not): {down['fsync_seconds']:.2f} s; "
        f"download ratio without emulator work and fsync: "
        f"{main['download']['ratio_without_emulator_work_and_fsync']:.2f}."
    )
    cache = main["page_cache_write"]
    print(
        f"Writing {main['size_mib']} MiB to a new file (the machine, no network): "
        f"{cache['after_settle_seconds']:.2f} s after settling {main['settle_seconds']:g} s, "
        f"{cache['right_after_free_seconds']:.2f} s right after freeing "
        f"as much (first touch of memory the VM host had taken back)."
    )


def print_hash_share(share: dict[str, Any]) -> None:
    print("\nQuickXorHash's share (median)")
    header = ["", "s", "MB/s", "CPU s", "hash s (in update)", "hash thread CPU s", "peak MiB"]
    rows = []
    for key in ("upload_timed_hash", "upload_no_hash", "download_timed_hash", "download_no_hash"):
        got = share[key]
        rows.append(
            [
                key.replace("_", " "),
                f"{got['seconds']:.2f}",
                _mb(got),
                f"{got['cpu_seconds']:.2f}",
                f"{got['hash_seconds']:.2f}" if "hash_seconds" in got else "",
                f"{got['hash_thread_cpu_seconds']:.2f}" if "hash_thread_cpu_seconds" in got else "",
                f"{got['peak_rss_growth_mib']:.1f}",
            ]
        )
    print(_table(header, rows))
    alone = share["hash_alone"]
    print(
        f"The hash alone over the file in fragment-sized updates: {alone['seconds']:.2f} s "
        f"({alone['mb_per_s']} MB/s), {alone['cpu_seconds']:.2f} CPU s."
    )
    for way in ("upload", "download"):
        timed, none = share[f"{way}_timed_hash"], share[f"{way}_no_hash"]
        line = (
            f"{way}: {timed['hash_seconds']:.2f} s inside QuickXorHash.update "
            f"({timed['hash_seconds'] / timed['seconds'] * 100:.0f} % of the operation's time); "
            f"without hashing {none['seconds']:.2f} s instead of {timed['seconds']:.2f} s, "
            f"{none['cpu_seconds']:.2f} CPU s instead of {timed['cpu_seconds']:.2f}"
        )
        share_outside = timed["hash_seconds"] / timed["seconds_without_emulator_work"] * 100
        line += f"; {share_outside:.0f} % of the time outside the emulator's work"
        print(line)


def main(argv: list[str] | None = None) -> int:
    from kite_desktop.storage.onedrive_backend import CHUNK_SIZE

    parser = argparse.ArgumentParser(
        prog="python -m bench.onedrive_transfer", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the file moved each way (default 1024)")
    parser.add_argument(
        "--chunk-kib",
        type=int,
        default=CHUNK_SIZE // 1024,
        help=f"upload fragment size, a multiple of 320 (default {CHUNK_SIZE // 1024}: the backend's CHUNK_SIZE)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; medians reported (default 3)")
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=SETTLE_SECONDS,
        help=f"pause before each timed operation, so all start from the same memory state (default {SETTLE_SECONDS:g})",
    )
    parser.add_argument("--skip-hash-share", action="store_true", help="leave out the QuickXorHash-share runs")
    parser.add_argument("--workdir", help="where the test files go (default: the system temp folder)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.size_mib <= 0 or args.repeat <= 0 or args.chunk_kib <= 0 or args.chunk_kib * 1024 % FRAGMENT_UNIT:
        parser.error("sizes and --repeat must be positive; --chunk-kib a multiple of 320")
    _stop_on_sigterm()
    host = _machine()
    chunk = args.chunk_kib * 1024
    section = f"{args.size_mib}mib_chunk_{args.chunk_kib}kib"
    results: dict[str, Any] = {}
    with _workdir(args.workdir) as workdir, EmulatorProcess() as emulator:
        _say(f"writing a {args.size_mib} MiB test file …")
        runner = Runner(emulator, workdir, args.size_mib, chunk, args.settle_seconds)
        try:
            main = run_main(runner, args.repeat)
            main = {
                "measured_at": _now(),
                "size_mib": args.size_mib,
                "chunk_kib": args.chunk_kib,
                "repeat": args.repeat,
                "settle_seconds": args.settle_seconds,
                "memory_target_mib": MEMORY_TARGET_MIB,
                "memory_target_met": all(
                    main[key]["peak_rss_growth_mib"] < MEMORY_TARGET_MIB for key in ("upload", "download")
                ),
                **main,
                "machine": {**host, "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
            }
            results[f"main_{section}"] = main
            print_main(main)
            if not args.skip_hash_share:
                share = run_hash_share(runner, args.repeat)
                share = {
                    "measured_at": _now(),
                    "size_mib": args.size_mib,
                    "chunk_kib": args.chunk_kib,
                    "repeat": args.repeat,
                    **share,
                    "machine": {**host, "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
                }
                results[f"hash_share_{section}"] = share
                print_hash_share(share)
        finally:
            runner.close()
    save(results, args.output)
    print(f"\nresults written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
