"""Upload and download of a large file through the Google Drive emulator: time, throughput, peak memory.

    python -m bench.google_drive_transfer [--size-mib 1024] [--chunk-mib 8] [--sweep] [--repeat 3]

(``--chunk-mib`` defaults to the backend's ``DEFAULT_CHUNK_SIZE``.)

What is measured (docs/performance.md, "Google Drive backend", has the figures and how to read them):

* ``GoogleDriveBackend.upload_file`` of a ``--size-mib`` file, then ``download_file`` of it back, checked by MD5;
* the baseline: the same bytes moved by a minimal ``http.client`` client speaking the same protocol to the same
  emulator (a resumable session, one ``PUT`` per chunk of the same size sent straight from the file in 1 MiB
  pieces; a single streamed ``GET ?alt=media`` written to disk in 1 MiB pieces). The ratio is backend time /
  baseline time (medians over ``--repeat`` runs, backend and baseline interleaved), so 1.0 means "as fast as a
  plain transfer";
* ``--sweep``: for each chunk size in ``SWEEP_CHUNKS_MIB``, an upload (and its baseline), a download, four uploads
  at once and four downloads at once (the app's transfer queue runs 3-4) of a ``--sweep-size-mib`` file on plain
  loopback, then the uploads again with a simulated per-request latency (``--sweep-latency-ms``), which loopback
  lacks.

The emulator runs in a process of its own (it keeps every uploaded byte in memory, which must not be counted),
and every measured operation runs in a freshly spawned interpreter: imports, the backend built, a tiny upload
(and a tiny download) as warm-up, then the operation. Peak memory is the growth of that process's resident set
over its size just before the operation: ``VmHWM`` reset through ``/proc/self/clear_refs`` where the kernel allows
it, and a thread sampling ``/proc/self/statm`` every 10 ms in any case; the larger is reported. (tracemalloc
would miss the C allocations: socket buffers, hashlib, what the allocator keeps after a free.) CPU seconds of the
measuring process and of the emulator are recorded too: they depend much less than wall time on what else the
machine is doing.

Results are printed and written to ``bench/results/google_drive_transfer.json`` (sections not run this time are
kept from the previous file).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import gc
import hashlib
import http.client
import importlib.metadata
import json
import logging
import multiprocessing
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MiB = 1024 * 1024
MB = 1_000_000
PIECE = MiB  # what the baseline reads from disk / from the socket at a time
SWEEP_CHUNKS_MIB = (1, 2, 4, 8, 16, 32)
CONCURRENT_UPLOADS = 4
MEMORY_TARGET_MIB = 64
FILE_FIELDS = "id,name,mimeType,size,md5Checksum,modifiedTime,parents"  # what the backend asks for
OCTET_STREAM = "application/octet-stream"
RESULTS = Path(__file__).resolve().parent / "results" / "google_drive_transfer.json"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
_spawn = multiprocessing.get_context("spawn")


# -- the emulator, in a process of its own ----------------------------------------------------------------
def _serve_emulator(conn: Any, latency: float) -> None:
    """Child process: run a ``GoogleEmulator`` and answer the parent's requests until it says stop or goes away."""
    from tests.emulators.google import GoogleEmulator

    with GoogleEmulator() as emulator:
        if latency > 0:  # every request waits this long before it is read: a stand-in for a WAN round trip
            emulator.faults.add("*", r".", delay=latency, times=0)
        conn.send({"root_url": emulator.root_url})
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                break
            if message != "tokens":
                break
            conn.send(emulator.issue_tokens())


class EmulatorProcess:
    """``GoogleEmulator`` in a child process; ``root_url`` and fresh ``tokens()`` come over a pipe.

    The child is stopped on exit however the ``with`` block ends, and killed if it does not stop; it also exits
    by itself when the pipe breaks (the parent died).
    """

    def __init__(self, latency: float = 0.0):
        self.latency = latency
        self.root_url = ""
        self._conn: Any = None
        self._process: Any = None

    def __enter__(self) -> EmulatorProcess:
        self._conn, child = _spawn.Pipe()
        self._process = _spawn.Process(
            target=_serve_emulator, args=(child, self.latency), name="google-emulator", daemon=True
        )
        self._process.start()
        child.close()
        try:
            if not self._conn.poll(60):
                raise RuntimeError("the Google emulator did not start within 60 s")
            self.root_url = self._conn.recv()["root_url"]
        except BaseException:
            self.__exit__()
            raise
        return self

    @property
    def pid(self) -> int:
        return int(self._process.pid)

    def tokens(self) -> dict[str, Any]:
        self._conn.send("tokens")
        return dict(self._conn.recv())

    def __exit__(self, *exc: object) -> None:
        end_process(self._conn, self._process, "stop")


def end_process(conn: Any, process: Any, stop_message: Any) -> None:
    """Ask a helper process to stop, then make sure it has: terminate, then kill, a few seconds each."""
    with contextlib.suppress(OSError, ValueError):
        conn.send(stop_message)
    with contextlib.suppress(OSError):
        conn.close()
    process.join(5)
    if process.is_alive():
        process.terminate()
        process.join(5)
    if process.is_alive():
        process.kill()
        process.join(5)


def source_version() -> dict[str, Any]:
    """Which code was measured: the commit, and whether ``kite_desktop/`` differed from it (read-only git calls)."""
    root = Path(__file__).resolve().parent.parent
    found: dict[str, Any] = {}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        run = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        found["commit"] = run.stdout.strip() or None
        run = subprocess.run(
            ["git", "status", "--porcelain", "--", "kite_desktop"], cwd=root, capture_output=True, text=True, timeout=10
        )
        found["kite_desktop_modified"] = bool(run.stdout.strip())
    return found


# -- memory and CPU ---------------------------------------------------------------------------------------
def _rss() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * PAGE


def _hwm() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise KeyError("VmHWM")


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of another process (0 if it cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Probe:
    """Wall time, CPU time (this process, and the emulator's) and peak RSS growth over the ``with`` block."""

    def __init__(self, emulator_pid: int = 0, interval: float = 0.01):
        self.emulator_pid = emulator_pid
        self.interval = interval
        self.baseline = self.sampled_peak = self.hwm_peak = self.after = 0
        self.seconds = self.cpu = self.emulator_cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._hwm = False

    def __enter__(self) -> Probe:
        gc.collect()
        self._hwm = _reset_hwm()
        self.baseline = self.sampled_peak = _rss()
        self._thread.start()
        self.emulator_cpu = -_cpu_of(self.emulator_pid) if self.emulator_pid else 0.0
        self.cpu = -time.process_time()
        self.seconds = -time.perf_counter()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.sampled_peak = max(self.sampled_peak, _rss())

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter()
        self.cpu += time.process_time()
        self.emulator_cpu += _cpu_of(self.emulator_pid) if self.emulator_pid else 0.0
        self._stop.set()
        self._thread.join()
        self.after = _rss()
        self.sampled_peak = max(self.sampled_peak, self.after)
        self.hwm_peak = _hwm() if self._hwm else 0

    def report(self, size: int, **extra: Any) -> dict[str, Any]:
        peak = max(self.sampled_peak, self.hwm_peak)
        return {
            "seconds": round(self.seconds, 3),
            "bytes": size,
            "mb_per_s": round(size / self.seconds / MB, 1),
            "cpu_seconds": round(self.cpu, 2),
            "emulator_cpu_seconds": round(self.emulator_cpu, 2),
            "rss_baseline_mib": round(self.baseline / MiB, 1),
            "peak_rss_growth_mib": round((peak - self.baseline) / MiB, 1),
            "sampled_peak_growth_mib": round((self.sampled_peak - self.baseline) / MiB, 1),
            "hwm_peak_growth_mib": round((self.hwm_peak - self.baseline) / MiB, 1) if self._hwm else None,
            "rss_growth_after_mib": round((self.after - self.baseline) / MiB, 1),
            **extra,
        }


# -- test data --------------------------------------------------------------------------------------------
def make_file(path: Path, size: int) -> str:
    """Write ``size`` random-looking bytes (a 16 MiB random block, each MiB stamped with a counter); its MD5.

    The file is flushed to disk before returning, so no write-back of it competes with the first measurement.
    """
    block = bytearray(os.urandom(16 * MiB))
    md5 = hashlib.md5(usedforsecurity=False)
    written = 0
    with open(path, "wb") as out:
        while written < size:
            for at in range(0, len(block), MiB):
                block[at : at + 8] = ((written + at) // MiB).to_bytes(8, "little")
            piece = memoryview(block)[: min(len(block), size - written)]
            out.write(piece)
            md5.update(piece)
            written += len(piece)
        out.flush()
        os.fsync(out.fileno())
    return md5.hexdigest()


def file_md5(path: Path) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb", buffering=0) as source:
        while piece := source.read(8 * MiB):
            md5.update(piece)
    return md5.hexdigest()


# -- measured operations: each runs in a fresh interpreter ------------------------------------------------
def isolated(function: Callable[[dict[str, Any]], dict[str, Any]], spec: dict[str, Any]) -> dict[str, Any]:
    """``function(spec)`` in a newly spawned Python, so no earlier operation's heap hides this one's growth."""
    with ProcessPoolExecutor(max_workers=1, mp_context=_spawn) as pool:
        return pool.submit(function, spec).result()


class _RetryCounter(logging.Handler):
    """Counts the backend's "retrying" log lines: a measurement that needed retries is not a clean one."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "retrying" in message or "starting a new one" in message:
            self.count += 1

    @classmethod
    def install(cls) -> _RetryCounter:
        counter = cls()
        logger = logging.getLogger("kite_desktop")
        logger.addHandler(counter)
        logger.setLevel(logging.INFO)
        return counter


def _backend(spec: dict[str, Any]) -> Any:
    from kite_desktop.storage.google_drive_backend import GoogleDriveBackend

    return GoogleDriveBackend(spec["tokens"], api_root=spec["root_url"], chunk_size=spec["chunk"])


def _tiny_file(workdir: str) -> Path:
    """A 4 KiB warm-up file. Its last byte is never CR: the emulator's multipart parser drops a final CR."""
    path = Path(workdir) / f"warmup-{uuid.uuid4().hex[:8]}.bin"
    path.write_bytes(os.urandom(4095) + b".")
    return path


async def warm_up(backend: Any, workdir: str) -> None:
    """One tiny upload, download and delete: the backend is built, libraries imported, threads started."""
    tiny = _tiny_file(workdir)
    info = await backend.upload_file(tiny, tiny.name, OCTET_STREAM)
    await backend.download_file(info.key, tiny)
    await backend.delete_object(info.key)
    tiny.unlink()


def backend_upload(spec: dict[str, Any]) -> dict[str, Any]:
    """``upload_file`` of ``spec["path"]``, ``spec["copies"]`` times at once under distinct names."""
    counter = _RetryCounter.install()

    async def run() -> dict[str, Any]:
        backend = _backend(spec)
        try:
            tiny = _tiny_file(spec["workdir"])
            await backend.delete_object((await backend.upload_file(tiny, tiny.name, OCTET_STREAM)).key)
            tiny.unlink()
            path, copies, tag = Path(spec["path"]), spec["copies"], uuid.uuid4().hex[:8]
            with Probe(spec["emulator_pid"]) as probe:
                infos = await asyncio.gather(
                    *(backend.upload_file(path, f"bench-{tag}-{i}.bin", OCTET_STREAM) for i in range(copies))
                )
            for info in infos:
                if info.size != spec["size"] or info.hash != spec["md5"]:
                    raise AssertionError(f"uploaded {info.size} bytes with MD5 {info.hash}, expected {spec['md5']}")
            return probe.report(spec["size"] * copies, retries=counter.count, file_ids=[i.key for i in infos])
        finally:
            await backend.aclose()

    return asyncio.run(run())


def backend_download(spec: dict[str, Any]) -> dict[str, Any]:
    """``download_file`` of ``spec["file_id"]``, ``spec["copies"]`` times at once; every copy's MD5 checked after."""
    counter = _RetryCounter.install()

    async def run() -> dict[str, Any]:
        backend = _backend(spec)
        try:
            await warm_up(backend, spec["workdir"])
            tag = uuid.uuid4().hex[:8]
            destinations = [Path(spec["workdir"]) / f"download-{tag}-{i}.bin" for i in range(spec["copies"])]
            try:
                with Probe(spec["emulator_pid"]) as probe:
                    await asyncio.gather(*(backend.download_file(spec["file_id"], path) for path in destinations))
                for path in destinations:
                    md5 = file_md5(path)
                    if md5 != spec["md5"]:
                        raise AssertionError(f"downloaded MD5 {md5}, expected {spec['md5']}")
            finally:
                for path in destinations:
                    path.unlink(missing_ok=True)
            return probe.report(spec["size"] * spec["copies"], retries=counter.count)
        finally:
            await backend.aclose()

    return asyncio.run(run())


class PlainDrive:
    """The baseline: Drive's resumable upload and ``alt=media`` download by hand over one ``http.client`` connection.

    Nothing but moving bytes: no MD5 while sending (the server's answer is compared afterwards), no temp file, no
    fsync, one connection, one thread, one 1 MiB buffer used throughout.
    """

    def __init__(self, root_url: str, token: str, timeout: float = 120):
        url = urlsplit(root_url)
        self.connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=timeout)
        self.auth = {"Authorization": f"Bearer {token}"}
        self.buffer = memoryview(bytearray(PIECE))

    def close(self) -> None:
        self.connection.close()

    def _call(self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Any:
        self.connection.request(method, target, body=body, headers={**self.auth, **(headers or {})})
        response = self.connection.getresponse()
        payload = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {target} answered {response.status}: {payload[:200]!r}")
        return response, payload

    def upload(self, path: Path, name: str, chunk: int) -> dict[str, Any]:
        size = path.stat().st_size
        response, _ = self._call(
            "POST",
            f"/upload/drive/v3/files?uploadType=resumable&fields={FILE_FIELDS}",
            json.dumps({"name": name}).encode(),
            {
                "Content-Type": "application/json; charset=UTF-8",
                "X-Upload-Content-Type": OCTET_STREAM,
                "X-Upload-Content-Length": str(size),
            },
        )
        session = urlsplit(response.getheader("Location"))
        target = f"{session.path}?{session.query}"
        with open(path, "rb", buffering=0) as source:
            for offset in range(0, size, chunk):
                length = min(chunk, size - offset)
                self.connection.putrequest("PUT", target, skip_accept_encoding=True)
                self.connection.putheader("Content-Length", str(length))
                self.connection.putheader("Content-Range", f"bytes {offset}-{offset + length - 1}/{size}")
                self.connection.endheaders()
                remaining = length
                while remaining:
                    got = source.readinto(self.buffer[: min(PIECE, remaining)])
                    if not got:
                        raise RuntimeError(f"{path} ended early")
                    self.connection.send(self.buffer[:got])
                    remaining -= got
                reply = self.connection.getresponse()
                payload = reply.read()
                if reply.status == 308 and offset + length < size:
                    continue
                if reply.status not in (200, 201):
                    raise RuntimeError(f"chunk at {offset} answered {reply.status}: {payload[:200]!r}")
                return dict(json.loads(payload))
        raise RuntimeError("an empty file has no chunks to send")

    def download(self, file_id: str, destination: Path) -> int:
        self.connection.request("GET", f"/drive/v3/files/{file_id}?alt=media", headers=self.auth)
        response = self.connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"download answered {response.status}: {response.read()[:200]!r}")
        received = 0
        with open(destination, "wb", buffering=0) as sink:
            while got := response.readinto(self.buffer):
                sink.write(self.buffer[:got])
                received += got
        return received

    def metadata(self, file_id: str) -> dict[str, Any]:
        return dict(json.loads(self._call("GET", f"/drive/v3/files/{file_id}?fields={FILE_FIELDS}")[1]))

    def delete(self, file_id: str) -> None:
        self._call("DELETE", f"/drive/v3/files/{file_id}")


def plain_upload(spec: dict[str, Any]) -> dict[str, Any]:
    client = PlainDrive(spec["root_url"], spec["tokens"]["access_token"])
    try:
        tiny = _tiny_file(spec["workdir"])
        client.delete(client.upload(tiny, tiny.name, spec["chunk"])["id"])
        tiny.unlink()
        with Probe(spec["emulator_pid"]) as probe:
            result = client.upload(Path(spec["path"]), f"plain-{uuid.uuid4().hex[:8]}.bin", spec["chunk"])
        if int(result["size"]) != spec["size"] or result["md5Checksum"] != spec["md5"]:
            raise AssertionError(f"plain upload stored {result['size']} bytes with MD5 {result['md5Checksum']}")
        return probe.report(spec["size"], file_ids=[result["id"]])
    finally:
        client.close()


def plain_download(spec: dict[str, Any]) -> dict[str, Any]:
    """The streamed GET; then, outside the timed part, what the backend does besides: fsync, a metadata GET."""
    client = PlainDrive(spec["root_url"], spec["tokens"]["access_token"])
    try:
        tiny = _tiny_file(spec["workdir"])
        tiny_id = client.upload(tiny, tiny.name, spec["chunk"])["id"]
        client.download(tiny_id, tiny)
        client.delete(tiny_id)
        tiny.unlink()
        destination = Path(spec["workdir"]) / f"plain-download-{uuid.uuid4().hex[:8]}.bin"
        with Probe(spec["emulator_pid"]) as probe:
            received = client.download(spec["file_id"], destination)
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
        started = time.perf_counter()
        client.metadata(spec["file_id"])
        metadata_seconds = time.perf_counter() - started
        return probe.report(
            spec["size"], fsync_seconds=round(fsync_seconds, 3), metadata_get_seconds=round(metadata_seconds, 3)
        )
    finally:
        client.close()


def delete_files(emulator: EmulatorProcess, file_ids: list[str]) -> None:
    """Free the emulator's copies of files no longer needed (it holds them all in memory)."""
    client = PlainDrive(emulator.root_url, emulator.tokens()["access_token"])
    try:
        for file_id in file_ids:
            client.delete(file_id)
    finally:
        client.close()


# -- the runs ---------------------------------------------------------------------------------------------
def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Runner:
    """Runs operations on one test file against one emulator, each in a fresh process."""

    def __init__(self, emulator: EmulatorProcess, workdir: Path, size_mib: int):
        self.emulator = emulator
        self.workdir = workdir
        self.path = workdir / f"source-{size_mib}MiB-{uuid.uuid4().hex[:6]}.bin"
        self.size = size_mib * MiB
        self.md5 = make_file(self.path, self.size)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)

    def run(self, function: Callable[[dict[str, Any]], dict[str, Any]], chunk_mib: int, **extra: Any) -> dict[str, Any]:
        spec = {
            "root_url": self.emulator.root_url,
            "tokens": self.emulator.tokens(),
            "emulator_pid": self.emulator.pid,
            "workdir": str(self.workdir),
            "path": str(self.path),
            "size": self.size,
            "md5": self.md5,
            "chunk": chunk_mib * MiB,
            "copies": 1,
            **extra,
        }
        return isolated(function, spec)

    def delete(self, file_ids: list[str]) -> None:
        delete_files(self.emulator, file_ids)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the timings, the worst of the memory figures, and every run as it was."""
    seconds = [run["seconds"] for run in runs]
    median = statistics.median(seconds)
    summary: dict[str, Any] = {
        "seconds": round(median, 3),
        "seconds_min": min(seconds),
        "seconds_max": max(seconds),
        "bytes": runs[0]["bytes"],
        "mb_per_s": round(runs[0]["bytes"] / median / MB, 1),
        "cpu_seconds": round(statistics.median(run["cpu_seconds"] for run in runs), 2),
        "emulator_cpu_seconds": round(statistics.median(run["emulator_cpu_seconds"] for run in runs), 2),
        "peak_rss_growth_mib": max(run["peak_rss_growth_mib"] for run in runs),
        "rss_growth_after_mib": max(run["rss_growth_after_mib"] for run in runs),
    }
    for key in ("retries", "fsync_seconds", "metadata_get_seconds"):
        if key in runs[0]:
            values = [run[key] for run in runs]
            summary[key] = sum(values) if key == "retries" else round(statistics.median(values), 3)
    summary["runs"] = runs
    return summary


def _ratio(ours: dict[str, Any], plain: dict[str, Any]) -> dict[str, Any]:
    pairs = [a["seconds"] / b["seconds"] for a, b in zip(ours["runs"], plain["runs"], strict=True)]
    return {
        "ratio_to_baseline": round(ours["seconds"] / plain["seconds"], 2),
        "ratio_min": round(min(pairs), 2),
        "ratio_max": round(max(pairs), 2),
    }


def run_main(emulator: EmulatorProcess, workdir: Path, size_mib: int, chunk_mib: int, repeat: int) -> dict[str, Any]:
    _say(f"writing a {size_mib} MiB test file …")
    runner = Runner(emulator, workdir, size_mib)
    keys = ("upload", "download", "baseline_upload", "baseline_download")
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    try:
        for number in range(1, repeat + 1):
            _say(f"run {number}/{repeat}: backend upload ({chunk_mib} MiB chunks), baseline upload, downloads …")
            up = runner.run(backend_upload, chunk_mib)
            file_id = up.pop("file_ids")[0]
            plain_up = runner.run(plain_upload, chunk_mib)
            down = runner.run(backend_download, chunk_mib, file_id=file_id)
            plain_down = runner.run(plain_download, chunk_mib, file_id=file_id)
            runner.delete([file_id, *plain_up.pop("file_ids")])
            for key, run in zip(runs, (up, down, plain_up, plain_down), strict=True):
                run["loadavg_1min"] = os.getloadavg()[0]
                runs[key].append(run)
    finally:
        runner.close()
    summary = {key: summarize(value) for key, value in runs.items()}
    summary["upload"].update(_ratio(summary["upload"], summary["baseline_upload"]))
    summary["download"].update(_ratio(summary["download"], summary["baseline_download"]))
    # The emulator hashes the whole content for every metadata answer (Drive keeps md5Checksum stored), and the
    # backend asks for the metadata before downloading: that part of its time is the emulator's, not the backend's.
    emulator_part = summary["baseline_download"]["metadata_get_seconds"]
    summary["download"]["ratio_without_emulator_metadata"] = round(
        (summary["download"]["seconds"] - emulator_part) / summary["baseline_download"]["seconds"], 2
    )
    return {"measured_at": _now(), "size_mib": size_mib, "chunk_mib": chunk_mib, "repeat": repeat, **summary}


def run_sweep(emulator: EmulatorProcess, workdir: Path, size_mib: int, repeat: int, full: bool) -> list[dict[str, Any]]:
    """Per chunk size: uploads; with ``full`` also the baseline upload, a download, and concurrent transfers."""
    latency = f" with {emulator.latency * 1000:.0f} ms per request" if emulator.latency else ""
    _say(f"writing a {size_mib} MiB test file for the sweep{latency} …")
    runner = Runner(emulator, workdir, size_mib)
    runs: dict[int, dict[str, list[dict[str, Any]]]] = {chunk: {} for chunk in SWEEP_CHUNKS_MIB}
    try:
        for number in range(1, repeat + 1):
            for chunk_mib in SWEEP_CHUNKS_MIB:
                _say(f"sweep{latency}, run {number}/{repeat}: {chunk_mib} MiB chunks …")
                found = runs[chunk_mib]
                up = runner.run(backend_upload, chunk_mib)
                doomed = up.pop("file_ids")
                found.setdefault("upload", []).append(up)
                if full:
                    plain_up = runner.run(plain_upload, chunk_mib)
                    doomed += plain_up.pop("file_ids")
                    found.setdefault("baseline_upload", []).append(plain_up)
                    found.setdefault("download", []).append(runner.run(backend_download, chunk_mib, file_id=doomed[0]))
                    many = runner.run(backend_upload, chunk_mib, copies=CONCURRENT_UPLOADS)
                    doomed += many.pop("file_ids")
                    found.setdefault(f"upload_x{CONCURRENT_UPLOADS}", []).append(many)
                    many = runner.run(backend_download, chunk_mib, file_id=doomed[0], copies=CONCURRENT_UPLOADS)
                    found.setdefault(f"download_x{CONCURRENT_UPLOADS}", []).append(many)
                runner.delete(doomed)
    finally:
        runner.close()
    rows = []
    for chunk_mib, found in runs.items():
        row: dict[str, Any] = {"chunk_mib": chunk_mib, "size_mib": size_mib}
        row.update({key: summarize(value) for key, value in found.items()})
        if full:
            row["upload"].update(_ratio(row["upload"], row["baseline_upload"]))
        rows.append(row)
    return rows


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def machine() -> dict[str, Any]:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    memory = 0
    with contextlib.suppress(OSError, StopIteration), open("/proc/meminfo") as meminfo:
        memory = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1]) * 1024
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "memory_gib": round(memory / 1024**3, 1),
        "kernel": platform.release(),
        "libc": " ".join(platform.libc_ver()),
        "python": platform.python_version(),
        "packages": {name: version(name) for name in ("google-api-python-client", "httplib2", "google-auth", "httpx")},
        "loadavg_at_start": _loadavg(),
    }


# -- output -----------------------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_main(main: dict[str, Any]) -> None:
    print(f"\n{main['size_mib']} MiB file, {main['chunk_mib']} MiB chunks, median of {main['repeat']} (MB = 10^6 B)")
    header = ["", "s", "MB/s", "ratio (range)", "peak MiB", "CPU s", "emulator CPU s"]
    rows = []
    for key in ("upload", "baseline_upload", "download", "baseline_download"):
        got = main[key]
        ratio = ""
        if "ratio_min" in got:
            ratio = f"{got['ratio_to_baseline']:.2f} ({got['ratio_min']:.2f}-{got['ratio_max']:.2f})"
        rows.append(
            [
                key.replace("_", " "),
                f"{got['seconds']:.2f}",
                f"{got['mb_per_s']:.0f}",
                ratio,
                f"{got['peak_rss_growth_mib']:.1f}",
                f"{got['cpu_seconds']:.2f}",
                f"{got['emulator_cpu_seconds']:.2f}",
            ]
        )
    print(_table(header, rows))
    extra = main["baseline_download"]
    print(
        f"In the backend's download time but not the baseline's: the emulator's files.get of this file "
        f"{extra['metadata_get_seconds']:.2f} s (it hashes the content for every metadata answer), "
        f"fsync of the downloaded file {extra['fsync_seconds']:.2f} s. Download ratio without the emulator's "
        f"part: {main['download']['ratio_without_emulator_metadata']:.2f}."
    )


def print_sweep(rows: list[dict[str, Any]], title: str) -> None:
    print(f"\n{title}")
    full = "download" in rows[0]
    header = ["chunk MiB", "up s", "up MB/s", "up peak MiB"]
    if full:
        n = CONCURRENT_UPLOADS
        header += ["ratio", "down MB/s", "down peak MiB", f"{n}x up MB/s", f"{n}x up peak MiB"]
        header += [f"{n}x down MB/s", f"{n}x down peak MiB"]
    body = []
    for row in rows:
        up = row["upload"]
        line = [row["chunk_mib"], f"{up['seconds']:.2f}", f"{up['mb_per_s']:.0f}", f"{up['peak_rss_growth_mib']:.1f}"]
        if full:
            down, many = row["download"], row[f"upload_x{CONCURRENT_UPLOADS}"]
            many_down = row[f"download_x{CONCURRENT_UPLOADS}"]
            line += [
                f"{up['ratio_to_baseline']:.2f}",
                f"{down['mb_per_s']:.0f}",
                f"{down['peak_rss_growth_mib']:.1f}",
                f"{many['mb_per_s']:.0f}",
                f"{many['peak_rss_growth_mib']:.1f}",
                f"{many_down['mb_per_s']:.0f}",
                f"{many_down['peak_rss_growth_mib']:.1f}",
            ]
        body.append(line)
    print(_table(header, body))


def save(results: dict[str, Any], path: Path) -> None:
    previous: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        previous = json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**previous, **results}, indent=2) + "\n")


def _stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so the ``with`` blocks stop the emulator and remove the test files."""

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


@contextlib.contextmanager
def _workdir(parent: str | None) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="kite-bench-", dir=parent) as name:
        yield Path(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.google_drive_transfer", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the file moved each way (default 1024)")
    from kite_desktop.storage.google_drive_backend import DEFAULT_CHUNK_SIZE

    default_chunk = max(1, DEFAULT_CHUNK_SIZE // MiB)
    parser.add_argument(
        "--chunk-mib",
        type=int,
        default=default_chunk,
        help=f"chunk size for the main run (default {default_chunk}: the backend's DEFAULT_CHUNK_SIZE)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; medians reported (default 3)")
    parser.add_argument("--sweep", action="store_true", help=f"also sweep the chunk sizes {SWEEP_CHUNKS_MIB} MiB")
    parser.add_argument("--sweep-size-mib", type=int, default=256, help="file size for the sweep (default 256)")
    parser.add_argument(
        "--sweep-latency-ms",
        type=float,
        default=100,
        help="per-request latency for a second, upload-only sweep; 0 skips it (default 100)",
    )
    parser.add_argument("--skip-main", action="store_true", help="only the sweep")
    parser.add_argument("--workdir", help="where the test files go (default: the system temp folder)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.chunk_mib <= 0 or args.size_mib <= 0 or args.sweep_size_mib <= 0 or args.repeat <= 0:
        parser.error("sizes and --repeat must be positive")
    _stop_on_sigterm()
    host = machine()  # each section carries it: a later run of one section keeps the others' as they were
    results: dict[str, Any] = {}
    with _workdir(args.workdir) as workdir:
        with EmulatorProcess() as emulator:
            if not args.skip_main:
                main = run_main(emulator, workdir, args.size_mib, args.chunk_mib, args.repeat)
                main["machine"] = {**host, "loadavg_at_end": _loadavg()}
                results[f"main_{args.size_mib}mib_chunk_{args.chunk_mib}mib"] = main
                print_main(main)
            if args.sweep:
                rows = run_sweep(emulator, workdir, args.sweep_size_mib, args.repeat, full=True)
                results[f"sweep_{args.sweep_size_mib}mib"] = {
                    "measured_at": _now(),
                    "latency_ms": 0,
                    "repeat": args.repeat,
                    "rows": rows,
                    "machine": {**host, "loadavg_at_end": _loadavg()},
                }
                title = f"chunk-size sweep, {args.sweep_size_mib} MiB file, loopback, median of {args.repeat}"
                print_sweep(rows, title)
        if args.sweep and args.sweep_latency_ms > 0:
            with EmulatorProcess(latency=args.sweep_latency_ms / 1000) as emulator:
                rows = run_sweep(emulator, workdir, args.sweep_size_mib, args.repeat, full=False)
            results[f"sweep_{args.sweep_size_mib}mib_latency_{args.sweep_latency_ms:g}ms"] = {
                "measured_at": _now(),
                "latency_ms": args.sweep_latency_ms,
                "repeat": args.repeat,
                "rows": rows,
                "machine": {**host, "loadavg_at_end": _loadavg()},
            }
            title = f"upload sweep, {args.sweep_size_mib} MiB file, {args.sweep_latency_ms:g} ms per request"
            print_sweep(rows, title)
    save(results, args.output)
    print(f"\nresults written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
