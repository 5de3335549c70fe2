"""How late a 10 ms QTimer fires while the real service uploads and lists: the event loop's stalls.

    python -m bench.event_loop_stalls                          # Google Drive emulator: 4 × 256 MiB + 10,000 documents
    python -m bench.event_loop_stalls --quick                  # 4 × 16 MiB + 1,000 documents, about 30 s
    python -m bench.event_loop_stalls --provider both          # the same against the OneDrive emulator too
    python -m bench.event_loop_stalls --quick --diagnose       # also sample the Qt thread's stack during stalls

What is measured (docs/performance.md, "Event-loop stalls during transfers", has the figures):

In a freshly spawned interpreter, a real ``QApplication`` (``QT_QPA_PLATFORM=offscreen`` unless set otherwise)
and a qasync loop run the app's own ``KiteService`` (``app.build_service`` on a throwaway profile, an in-memory
token store, one cloud connection to the emulator). After a warm-up (the backend built, one 4 KiB upload, one
second idle), the measured phase starts ``--uploads`` concurrent uploads of ``--size-mib`` files
(``service.transfers.max_concurrent`` set to the same number) and, at the same time, ``service.refresh`` of a
connection whose folder the emulator was seeded with ``--documents`` small documents. It ends when the queue is
idle and the listing has returned.

Throughout, a single-shot ``QTimer`` (``Qt.PreciseTimer``) re-armed for ``--interval-ms`` at every firing measures
its own lateness: the monotonic time at which it fired minus the time it was due. Anything that keeps the Qt
thread busy (an asyncio callback, a Qt event, a slot) or keeps it from running (the GIL held by a worker thread,
no free CPU) shows up as lateness. Reported per phase: samples, duration, p50/p99/max lateness, and whether the
targets (p99 < 16 ms, max < 50 ms) are met.

``--diagnose`` adds a watchdog thread that, whenever the timer is overdue by more than ``--stall-ms`` (16), takes
the Qt thread's Python stack every ``--sample-ms`` (2) and reports where the overdue time was spent. It perturbs
the measurement a little (the watchdog needs the GIL too), so the headline figures come from runs without it.
``--slow-callback-ms N`` turns on asyncio debug mode, whose qasync implementation logs every callback that ran
longer than N ms; ``--py-spy`` records the measuring process with ``py-spy record --nonblocking --threads``.

The emulator runs in a process of its own (``bench.service_emulators``). Results are printed and merged into
``bench/results/event_loop_stalls.json``, one section per kind of run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from bench.google_drive_transfer import _cpu_of, _stop_on_sigterm, _table, _workdir, isolated
from bench.service_emulators import (
    ServiceEmulator,
    isolate_environment,
    loadavg,
    machine,
    open_service,
    qt_application,
    say,
    upload_files,
)

MiB = 1024 * 1024
RESULTS = Path(__file__).resolve().parent / "results" / "event_loop_stalls.json"
P99_TARGET_MS = 16.0
MAX_TARGET_MS = 50.0


# -- the lateness probe: runs on the Qt thread ------------------------------------------------------------
class LatenessProbe:
    """A single-shot QTimer re-armed at every firing; each firing's lateness is kept with the current phase."""

    def __init__(self, interval_ms: int):
        from PySide6.QtCore import Qt, QTimer

        self.interval_ms = interval_ms
        self.interval = interval_ms / 1000
        self.origin = time.monotonic()
        self.phase = ""
        self.due = 0.0
        self.samples: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)  # (at, lateness)
        self.phase_started: dict[str, float] = {}
        self.phase_ended: dict[str, float] = {}
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._fire)

    def enter(self, phase: str) -> None:
        now = time.monotonic()
        if self.phase:
            self.phase_ended[self.phase] = now - self.origin
        self.phase = phase
        self.phase_started[phase] = now - self.origin
        if not self._timer.isActive():
            self._arm()

    def stop(self) -> None:
        self._timer.stop()
        if self.phase:
            self.phase_ended[self.phase] = time.monotonic() - self.origin
        self.phase = ""

    def _arm(self) -> None:
        self._timer.start(self.interval_ms)
        self.due = time.monotonic() + self.interval

    def _fire(self) -> None:
        now = time.monotonic()
        late = now - self.due
        self._arm()
        if self.phase:
            self.samples[self.phase].append((now - self.origin, late))

    def overdue(self) -> float:
        """Seconds the timer is past due right now (negative: not yet due). Read from the watchdog thread."""
        return time.monotonic() - self.due if self.phase else -1.0


class StallSampler:
    """A watchdog thread: while the timer is overdue by more than ``threshold``, sample the Qt thread's stack.

    Each sample is keyed by the due time of the timer firing it delayed, so it can be matched with the lateness
    the timer then measured. Only Python frames are seen (a C call shows as the Python line that made it), and
    the watchdog needs the GIL to look: a stall caused by another thread holding the GIL is seen late, as the
    Qt thread waiting at whatever line it was about to run.
    """

    def __init__(self, probe: LatenessProbe, threshold: float, every: float):
        self.probe = probe
        self.threshold = threshold
        self.every = every
        self.main = threading.main_thread().ident
        self.samples: dict[float, list[dict[str, Any]]] = collections.defaultdict(list)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stall-sampler", daemon=True)

    def __enter__(self) -> StallSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            overdue = self.probe.overdue()
            if overdue <= self.threshold:
                continue
            frames = sys._current_frames()
            main = frames.get(self.main)
            if main is None:
                continue
            others = {}
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in frames.items():
                if ident in (self.main, threading.get_ident()):
                    continue
                top = _stack(frame, 1)
                if top and not _idle_frame(top[-1]):
                    others[names.get(ident, str(ident))] = _where(top[-1])
            self.samples[self.probe.due].append(
                {
                    "overdue_ms": round(overdue * 1000, 1),
                    "phase": self.probe.phase,
                    "stack": [_where(f) for f in _stack(main, 150)],
                    "busy_threads": others,
                }
            )


def _stack(frame: Any, limit: int) -> traceback.StackSummary:
    """The innermost ``limit`` frames, outermost first, without reading source files (no I/O in the watchdog)."""
    found = traceback.StackSummary.extract(traceback.walk_stack(frame), limit=limit, lookup_lines=False)
    found.reverse()
    return found


def _where(frame: traceback.FrameSummary) -> str:
    path = frame.filename
    for marker in ("/kite_desktop/", "/site-packages/", "/lib/python3"):
        if marker in path:
            path = path[path.index(marker) + 1 :]
            break
    return f"{path}:{frame.lineno} {frame.name}"


def _idle_frame(frame: traceback.FrameSummary) -> bool:
    """Threads waiting (on a lock, a queue, a socket) are not competing for the GIL."""
    return frame.name in {"wait", "_wait_for_tstate_lock", "get", "select", "poll", "readinto", "recv_into", "accept"}


# -- the measured scenario: runs in a freshly spawned interpreter -----------------------------------------
def measure(spec: dict[str, Any]) -> dict[str, Any]:
    workdir = Path(spec["workdir"])
    isolate_environment(workdir, spec["env"])
    slow_callbacks: list[dict[str, Any]] = []
    if spec["slow_callback_ms"]:
        _collect_slow_callbacks(slow_callbacks)
    app, loop = qt_application()
    if spec["slow_callback_ms"]:
        loop.set_debug(True)
        loop.slow_callback_duration = spec["slow_callback_ms"] / 1000
    try:
        result = loop.run_until_complete(_scenario(spec, app))
        if spec["slow_callback_ms"]:
            result["slow_callbacks"] = sorted(slow_callbacks, key=lambda c: -c["seconds"])[:40]
            result["slow_callbacks_count"] = len(slow_callbacks)
        return result
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def _collect_slow_callbacks(found: list[dict[str, Any]]) -> None:
    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.msg == "Executing %s took %.3f seconds":
                found.append({"callback": str(record.args[0]), "seconds": float(record.args[1])})  # type: ignore[index]

    logger = logging.getLogger("qasync")
    logger.addHandler(Collect(logging.WARNING))
    logger.setLevel(logging.WARNING)
    logger.propagate = False


async def _scenario(spec: dict[str, Any], app: Any) -> dict[str, Any]:
    workdir = Path(spec["workdir"])
    profile = workdir / f"profile-{uuid.uuid4().hex[:6]}"
    service, connection = await open_service(profile, spec["provider"], spec["credentials"])
    window = None
    if spec["window"]:
        from kite_desktop.ui.bridge import ServiceBridge
        from kite_desktop.ui.main_window import MainWindow

        # The window shows the cloud connection: its table holds the listing and reloads as documents arrive.
        await service.select_connection(connection)
        window = MainWindow(service, ServiceBridge(service))
        window.show()
        await window.start()
    probe = LatenessProbe(spec["interval_ms"])
    sampler = StallSampler(probe, spec["stall_ms"] / 1000, spec["sample_ms"] / 1000) if spec["diagnose"] else None
    spy = None
    try:
        if sampler is not None:
            sampler.__enter__()
        # Warm-up: the backend is built, the Kite folder found, the client libraries imported and the thread pool
        # started, by one small upload. Then one second of nothing: the timer's own floor.
        probe.enter("warm-up")
        tiny = workdir / f"warmup-{uuid.uuid4().hex[:6]}.bin"
        tiny.write_bytes(os.urandom(4095) + b".")  # no final CR: the Drive emulator's multipart parser drops it
        await service.upload(connection, [str(tiny)])
        await service.transfers.wait_idle()
        probe.enter("idle")
        await asyncio.sleep(1.0)

        service.transfers.max_concurrent = spec["uploads"]
        if spec["py_spy"]:
            spy = _start_py_spy(Path(spec["py_spy"]), spec["py_spy_native"])
        marks: dict[str, float] = {}
        cpu, emulator_cpu = -time.process_time(), -_cpu_of(spec["emulator_pid"])
        probe.enter("measured")
        started = time.monotonic()

        async def listing() -> list[Any]:
            documents = await service.refresh(connection)
            marks["listing_done_s"] = time.monotonic() - started
            return documents

        listed = asyncio.ensure_future(listing())
        await service.upload(connection, spec["paths"])
        await service.transfers.wait_idle()
        marks["uploads_done_s"] = time.monotonic() - started
        documents = await listed
        seconds = time.monotonic() - started
        cpu += time.process_time()
        emulator_cpu += _cpu_of(spec["emulator_pid"])
        # What the loop does in reaction (a window reloading its table, deferred saves) comes after.
        probe.enter("after")
        await asyncio.sleep(spec["after_s"])
        probe.stop()
        if sampler is not None:
            sampler.__exit__()
        if spy is not None:
            _stop_py_spy(spy)
            spy = None
        uploaded = sum(Path(p).stat().st_size for p in spec["paths"])
        await _check_uploaded(service, connection, spec["paths"])
        if len(documents) < spec["documents"]:
            raise AssertionError(f"the listing found {len(documents)} documents, expected {spec['documents']} or more")
        result: dict[str, Any] = {
            "seconds": round(seconds, 3),
            **{key: round(value, 3) for key, value in marks.items()},
            "documents_listed": len(documents),
            "uploaded_bytes": uploaded,
            "upload_mb_per_s": round(uploaded / marks["uploads_done_s"] / 1e6, 1),
            "client_cpu_seconds": round(cpu, 2),
            "emulator_cpu_seconds": round(emulator_cpu, 2),
            "phases": {
                phase: summarize(samples, probe.phase_ended[phase] - probe.phase_started[phase])
                for phase, samples in probe.samples.items()
            },
            "worst": worst(probe.samples["measured"], probe.phase_started["measured"], 25),
        }
        if sampler is not None:
            result["diagnosis"] = diagnose(sampler.samples, spec["stall_ms"])
        return result
    finally:
        probe.stop()
        if sampler is not None:
            sampler.__exit__()
        if spy is not None:
            _stop_py_spy(spy)
        if window is not None:
            await window.shutdown()
        await service.close()


async def _check_uploaded(service: Any, connection: str, paths: list[str]) -> None:
    """Every file is in the catalog with its size (read from the catalog, whatever the queue keeps)."""
    stored = {d.name: d.size for d in await service.cached_documents(connection)}
    for path in map(Path, paths):
        if stored.get(path.name) != path.stat().st_size:
            raise AssertionError(f"{path.name} is not in the catalog with its size (found {stored.get(path.name)})")


def _start_py_spy(output: Path, native: bool) -> subprocess.Popen[bytes]:
    output.parent.mkdir(parents=True, exist_ok=True)
    command = ["py-spy", "record", "--pid", str(os.getpid()), "--rate", "500", "--threads"]
    # Native frames need py-spy to stop the process for each sample, which adds lateness of its own.
    command.append("--native" if native else "--nonblocking")
    command += ["--format", "raw", "--output", str(output)]
    with open(output.with_suffix(".log"), "wb") as log:
        spy = subprocess.Popen(command, stdout=log, stderr=log)
    time.sleep(1.0)  # let it attach
    return spy


def _stop_py_spy(spy: subprocess.Popen[bytes]) -> None:
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()


# -- summaries --------------------------------------------------------------------------------------------
def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (sorted here)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def summarize(samples: list[tuple[float, float]], seconds: float) -> dict[str, Any]:
    late = [lateness * 1000 for _, lateness in samples]
    if not late:
        return {"samples": 0, "seconds": round(seconds, 3)}
    over = {f"over_{limit}ms": sum(1 for x in late if x > limit) for limit in (16, 50, 100)}
    return {
        "samples": len(late),
        "seconds": round(seconds, 3),
        "p50_ms": round(percentile(late, 0.50), 2),
        "p90_ms": round(percentile(late, 0.90), 2),
        "p99_ms": round(percentile(late, 0.99), 2),
        "max_ms": round(max(late), 2),
        "min_ms": round(min(late), 2),
        **over,
        "stalled_seconds_over_16ms": round(sum(x for x in late if x > 16) / 1000, 3),
    }


def worst(samples: list[tuple[float, float]], origin: float, count: int) -> list[dict[str, float]]:
    ranked = sorted(samples, key=lambda s: -s[1])[:count]
    return [{"at_s": round(at - origin, 3), "late_ms": round(late * 1000, 1)} for at, late in ranked]


def diagnose(samples: dict[float, list[dict[str, Any]]], stall_ms: float) -> dict[str, Any]:
    """Per phase, where the Qt thread was while the timer was overdue: the innermost project frame and the
    innermost frame, weighted by sample count; and which other threads were running Python code meanwhile."""
    phases: dict[str, dict[str, Any]] = {}
    for stall in samples.values():
        for sample in stall:
            found = phases.setdefault(
                sample["phase"],
                {
                    "stalls": set(),
                    "samples": 0,
                    "kite": collections.Counter(),
                    "innermost": collections.Counter(),
                    "busy": collections.Counter(),
                    "examples": {},
                },
            )
            found["stalls"].add(id(stall))
            found["samples"] += 1
            stack = sample["stack"]
            ours = [frame for frame in stack if frame.startswith("kite_desktop/")]
            key = ours[-1] if ours else "(no kite_desktop frame)"
            found["kite"][key] += 1
            found["innermost"][stack[-1] if stack else "?"] += 1
            found["examples"].setdefault(key, stack[-16:])
            for where in sample["busy_threads"].values():
                found["busy"][where] += 1
    return {
        "stall_threshold_ms": stall_ms,
        "phases": {
            phase: {
                "stalls_sampled": len(found["stalls"]),
                "samples": found["samples"],
                "innermost_kite_frame": found["kite"].most_common(12),
                "innermost_frame": found["innermost"].most_common(12),
                "other_threads_running_python": found["busy"].most_common(12),
                "example_stacks": found["examples"],
            }
            for phase, found in phases.items()
        },
    }


# -- the runs ---------------------------------------------------------------------------------------------
def run(provider: str, args: argparse.Namespace, workdir: Path, paths: list[Path]) -> dict[str, Any]:
    with ServiceEmulator(provider) as emulator:
        say(f"{provider}: seeding {args.documents} documents …")
        emulator.seed(args.documents, args.document_bytes)
        spec = {
            "provider": provider,
            "env": emulator.env,
            "credentials": emulator.credentials(),
            "emulator_pid": emulator.pid,
            "workdir": str(workdir),
            "paths": [str(p) for p in paths],
            "documents": args.documents,
            "uploads": args.uploads,
            "interval_ms": args.interval_ms,
            "window": args.window,
            "diagnose": args.diagnose,
            "stall_ms": args.stall_ms,
            "sample_ms": args.sample_ms,
            "after_s": args.after_s,
            "py_spy_native": args.py_spy_native,
            "slow_callback_ms": args.slow_callback_ms,
            "py_spy": str(args.py_spy.with_name(f"{args.py_spy.stem}-{provider}{args.py_spy.suffix}"))
            if args.py_spy
            else "",
        }
        say(
            f"{provider}: {args.uploads} × {args.size_mib} MiB uploads and the listing, "
            f"timer every {args.interval_ms} ms …"
        )
        load = loadavg()
        result = isolated(measure, spec)
        measured, after = result["phases"]["measured"], result["phases"].get("after", {})
        p99 = max(measured["p99_ms"], after.get("p99_ms", 0.0))
        worst_ms = max(measured["max_ms"], after.get("max_ms", 0.0))
        return {
            "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "provider": provider,
            "uploads": args.uploads,
            "size_mib": args.size_mib,
            "documents": args.documents,
            "document_bytes": args.document_bytes,
            "interval_ms": args.interval_ms,
            "window": args.window,
            "diagnose": args.diagnose,
            "slow_callback_ms": args.slow_callback_ms,
            "targets": {
                "p99_below_ms": P99_TARGET_MS,
                "max_below_ms": MAX_TARGET_MS,
                "judged_on": "the measured phase and the second after it, each",
                "p99_ms": p99,
                "max_ms": worst_ms,
                "p99_met": p99 < P99_TARGET_MS,
                "max_met": worst_ms < MAX_TARGET_MS,
            },
            **result,
            "loadavg_at_start": load,
            "loadavg_at_end": loadavg(),
        }


def print_run(section: str, run: dict[str, Any]) -> None:
    print(f"\n{section}: {run['uploads']} × {run['size_mib']} MiB uploads + listing of {run['documents']} documents")
    print(
        f"uploads done at {run['uploads_done_s']:.2f} s ({run['upload_mb_per_s']:.0f} MB/s), listing done at "
        f"{run['listing_done_s']:.2f} s; client CPU {run['client_cpu_seconds']:.2f} s, emulator CPU "
        f"{run['emulator_cpu_seconds']:.2f} s; load average {run['loadavg_at_start']} → {run['loadavg_at_end']}"
    )
    header = ["phase", "samples", "s", "p50 ms", "p90 ms", "p99 ms", "max ms", ">16 ms", ">50 ms"]
    rows = []
    for phase, got in run["phases"].items():
        rows.append(
            [
                phase,
                got["samples"],
                f"{got['seconds']:.2f}",
                f"{got['p50_ms']:.2f}",
                f"{got['p90_ms']:.2f}",
                f"{got['p99_ms']:.2f}",
                f"{got['max_ms']:.1f}",
                got["over_16ms"],
                got["over_50ms"],
            ]
        )
    print(_table(header, rows))
    targets = run["targets"]
    print(
        f"targets: p99 < {P99_TARGET_MS:g} ms {'met' if targets['p99_met'] else 'MISSED'}, "
        f"max < {MAX_TARGET_MS:g} ms {'met' if targets['max_met'] else 'MISSED'}"
    )
    print(
        "worst firings (s into the run: ms late): "
        + ", ".join(f"{w['at_s']:.2f}: {w['late_ms']:.0f}" for w in run["worst"][:10])
    )
    if "diagnosis" in run:
        threshold = run["diagnosis"]["stall_threshold_ms"]
        for phase, found in run["diagnosis"]["phases"].items():
            print(
                f"\n{phase}: the Qt thread while the timer was over {threshold:g} ms late ({found['samples']} samples)"
            )
            for where, count in found["innermost_kite_frame"][:8]:
                print(f"  {count:5d}  {where}")
            print("  innermost frames:")
            for where, count in found["innermost_frame"][:8]:
                print(f"  {count:5d}  {where}")
            print("  other threads running Python meanwhile:")
            for where, count in found["other_threads_running_python"][:8]:
                print(f"  {count:5d}  {where}")
    if "slow_callbacks" in run:
        print(f"\nasyncio callbacks slower than {run['slow_callback_ms']:g} ms: {run['slow_callbacks_count']}")
        for callback in run["slow_callbacks"][:10]:
            print(f"  {callback['seconds'] * 1000:7.1f} ms  {callback['callback'][:150]}")


def save(results: dict[str, Any], path: Path) -> None:
    previous: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        previous = json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**previous, **results}, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.event_loop_stalls", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--provider", choices=("google", "onedrive", "both"), default="google")
    parser.add_argument("--uploads", type=int, default=4, help="concurrent uploads (default 4)")
    parser.add_argument("--size-mib", type=int, default=256, help="size of each uploaded file (default 256)")
    parser.add_argument("--documents", type=int, default=10_000, help="documents seeded and listed (default 10000)")
    parser.add_argument("--document-bytes", type=int, default=64, help="size of each seeded document (default 64)")
    parser.add_argument("--quick", action="store_true", help="4 × 16 MiB and 1,000 documents unless given otherwise")
    parser.add_argument("--interval-ms", type=int, default=10, help="the timer's interval (default 10)")
    parser.add_argument("--after-s", type=float, default=1.0, help="seconds measured after the work (default 1)")
    parser.add_argument("--window", action="store_true", help="also show the real main window on the service")
    parser.add_argument("--diagnose", action="store_true", help="sample the Qt thread's stack during stalls")
    parser.add_argument("--stall-ms", type=float, default=16, help="overdue time that counts as a stall (16)")
    parser.add_argument("--sample-ms", type=float, default=2, help="the watchdog's sampling period (2)")
    parser.add_argument("--slow-callback-ms", type=float, default=0, help="log asyncio callbacks slower than this")
    parser.add_argument("--py-spy", type=Path, help="record the measuring process with py-spy into this raw file")
    parser.add_argument("--py-spy-native", action="store_true", help="with --py-spy: C and C++ frames too")
    parser.add_argument("--workdir", help="where the test files go (default: the system temp folder)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})")
    parser.add_argument("--label", default="", help="suffix for the results section's name")
    args = parser.parse_args(argv)
    if args.quick:
        defaults = {"size_mib": 256, "documents": 10_000}
        quick = {"size_mib": 16, "documents": 1_000}
        for key, value in quick.items():
            if getattr(args, key) == defaults[key]:
                setattr(args, key, value)
    if min(args.uploads, args.size_mib, args.interval_ms) <= 0 or args.documents < 0:
        parser.error("sizes and counts must be positive")
    _stop_on_sigterm()
    host = machine()
    providers = ["google", "onedrive"] if args.provider == "both" else [args.provider]
    results: dict[str, Any] = {}
    with _workdir(args.workdir) as workdir:
        paths = upload_files(workdir, args.uploads, args.size_mib)
        for provider in providers:
            got = run(provider, args, workdir, paths)
            got["machine"] = host
            section = f"{provider}_{args.uploads}x{args.size_mib}mib_{args.documents}docs"
            if args.window:
                section += "_window"
            if args.diagnose or args.slow_callback_ms or args.py_spy:
                section += "_diagnosis"
            if args.label:
                section += f"_{args.label}"
            results[section] = got
            print_run(section, got)
    save(results, args.output)
    print(f"\nresults written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
