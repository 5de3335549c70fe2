"""Upload throughput of the real service by number of concurrent transfers: MiB/s, wall time, peak RSS.

    python -m bench.transfer_concurrency                        # Drive emulator: 8 × 64 MiB at 1, 2, 4, 8 at once
    python -m bench.transfer_concurrency --provider both        # the same against the OneDrive emulator too
    python -m bench.transfer_concurrency --quick                # 4 × 16 MiB, one run each, loopback only
    python -m bench.transfer_concurrency --plot-only            # redraw the figure from the results file

What is measured (docs/performance.md, "Concurrent transfers", has the figures):

For each concurrency ``c`` in ``--concurrency`` and each emulated per-request latency in ``--latency-ms`` (0 is
plain loopback; 100 stands in for a WAN round trip and the service's own per-request work), a freshly spawned
interpreter runs the app's ``KiteService`` (``app.build_service`` on a throwaway profile, in-memory token store,
one cloud connection) on a real ``QApplication`` (offscreen) and a qasync loop, as the app does; it sets
``service.transfers.max_concurrent = c``, uploads a 4 KiB file as warm-up, then times
``await service.upload(connection, files)`` of ``--files`` distinct ``--size-mib`` files until
``service.transfers.wait_idle()`` returns. Every file is then checked to be in the catalog with its size.

Reported per run: wall seconds, MiB/s (all files' bytes / wall seconds), the client's CPU seconds, the emulator's
CPU seconds, the peak growth of the client's resident set over its size before the uploads
(``bench.google_drive_transfer.Probe``: ``VmHWM`` reset + a 10 ms sampler), and the absolute peak RSS. Medians over
``--repeat`` runs (the runs of the different concurrencies are interleaved, so a slow spell on the shared machine
does not fall on one setting only).

The emulator runs in a process of its own (``bench.service_emulators``) and is emptied after every run. Results are
merged into ``bench/results/transfer_concurrency.json``; the figure goes to ``docs/performance-concurrency.png``
(matplotlib, in the bench-only extra: ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.google_drive_transfer import Probe, _hwm, _stop_on_sigterm, _table, _workdir, isolated
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
RESULTS = Path(__file__).resolve().parent / "results" / "transfer_concurrency.json"
FIGURE = Path(__file__).resolve().parent.parent / "docs" / "performance-concurrency.png"


# -- one run: in a freshly spawned interpreter ------------------------------------------------------------
def measure(spec: dict[str, Any]) -> dict[str, Any]:
    workdir = Path(spec["workdir"])
    isolate_environment(workdir, spec["env"])
    _app, loop = qt_application()
    try:
        return loop.run_until_complete(_upload_all(spec))
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


async def _upload_all(spec: dict[str, Any]) -> dict[str, Any]:
    workdir = Path(spec["workdir"])
    service, connection = await open_service(
        workdir / f"profile-{uuid.uuid4().hex[:6]}", spec["provider"], spec["credentials"]
    )
    try:
        tiny = workdir / f"warmup-{uuid.uuid4().hex[:6]}.bin"
        tiny.write_bytes(b"warm-up " * 511 + b"warm-up.")  # no final CR: the Drive emulator's multipart parser drops it
        await service.upload(connection, [str(tiny)])
        await service.transfers.wait_idle()
        tiny.unlink()
        service.transfers.max_concurrent = spec["concurrency"]
        paths = [Path(p) for p in spec["paths"]]
        size = sum(p.stat().st_size for p in paths)
        with Probe(spec["emulator_pid"]) as probe:
            await service.upload(connection, [str(p) for p in paths])
            await service.transfers.wait_idle()
        peak_rss = _hwm()
        stored = {d.name: d.size for d in await service.cached_documents(connection)}
        for path in paths:
            if stored.get(path.name) != path.stat().st_size:
                raise AssertionError(f"{path.name} is not in the catalog with its size (found {stored.get(path.name)})")
        report = probe.report(size)
        report["mib_per_s"] = round(size / MiB / probe.seconds, 1)
        report["peak_rss_mib"] = round(peak_rss / MiB, 1)
        return report
    finally:
        await service.close()


# -- the runs ---------------------------------------------------------------------------------------------
def run_series(
    provider: str, latency_ms: float, args: argparse.Namespace, workdir: Path, paths: list[Path]
) -> dict[str, Any]:
    runs: dict[int, list[dict[str, Any]]] = {c: [] for c in args.concurrency}
    load = loadavg()
    with ServiceEmulator(provider, latency=latency_ms / 1000) as emulator:
        for number in range(1, args.repeat + 1):
            for concurrency in args.concurrency:
                say(
                    f"{provider}, {latency_ms:g} ms per request, run {number}/{args.repeat}: "
                    f"{len(paths)} × {args.size_mib} MiB, {concurrency} at once …"
                )
                spec = {
                    "provider": provider,
                    "env": emulator.env,
                    "credentials": emulator.credentials(),
                    "emulator_pid": emulator.pid,
                    "workdir": str(workdir),
                    "paths": [str(p) for p in paths],
                    "concurrency": concurrency,
                }
                got = isolated(measure, spec)
                got["loadavg_1min"] = round(loadavg()[0], 2)
                runs[concurrency].append(got)
                emulator.clear()
                time.sleep(args.settle_seconds)
    rows = []
    for concurrency, found in runs.items():
        seconds = statistics.median(r["seconds"] for r in found)
        rows.append(
            {
                "concurrency": concurrency,
                "seconds": round(seconds, 3),
                "seconds_min": min(r["seconds"] for r in found),
                "seconds_max": max(r["seconds"] for r in found),
                "mib_per_s": round(found[0]["bytes"] / MiB / seconds, 1),
                "cpu_seconds": round(statistics.median(r["cpu_seconds"] for r in found), 2),
                "emulator_cpu_seconds": round(statistics.median(r["emulator_cpu_seconds"] for r in found), 2),
                "peak_rss_growth_mib": max(r["peak_rss_growth_mib"] for r in found),
                "peak_rss_mib": max(r["peak_rss_mib"] for r in found),
                "runs": found,
            }
        )
    return {
        "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "provider": provider,
        "latency_ms": latency_ms,
        "files": len(paths),
        "size_mib": args.size_mib,
        "repeat": args.repeat,
        "rows": rows,
        "loadavg_at_start": load,
        "loadavg_at_end": loadavg(),
    }


def print_series(section: str, series: dict[str, Any]) -> None:
    print(
        f"\n{section}: {series['files']} × {series['size_mib']} MiB, {series['latency_ms']:g} ms per request, "
        f"median of {series['repeat']}; load average {series['loadavg_at_start']} → {series['loadavg_at_end']}"
    )
    header = [
        "at once",
        "s (min-max)",
        "MiB/s",
        "client CPU s",
        "emulator CPU s",
        "peak RSS growth MiB",
        "peak RSS MiB",
    ]
    rows = [
        [
            row["concurrency"],
            f"{row['seconds']:.2f} ({row['seconds_min']:.2f}-{row['seconds_max']:.2f})",
            f"{row['mib_per_s']:.0f}",
            f"{row['cpu_seconds']:.2f}",
            f"{row['emulator_cpu_seconds']:.2f}",
            f"{row['peak_rss_growth_mib']:.1f}",
            f"{row['peak_rss_mib']:.0f}",
        ]
        for row in series["rows"]
    ]
    print(_table(header, rows))


def plot(results: dict[str, Any], path: Path) -> bool:
    """Throughput and peak RSS growth by concurrency, one line per provider and latency; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("matplotlib is not installed (pip install -e '.[bench]'): no figure drawn")
        return False
    series = [s for s in results.values() if isinstance(s, dict) and "rows" in s and not s.get("quick")]
    if not series:
        return False
    series.sort(key=lambda s: (s["provider"], s["latency_ms"]))
    figure, (speed, memory) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    names = {"google": "Google Drive", "onedrive": "OneDrive"}
    for found in series:
        xs = [row["concurrency"] for row in found["rows"]]
        style = "-" if found["latency_ms"] == 0 else "--"
        marker = "o" if found["provider"] == "google" else "s"
        color = "tab:blue" if found["provider"] == "google" else "tab:green"
        label = f"{names.get(found['provider'], found['provider'])}, " + (
            "loopback" if found["latency_ms"] == 0 else f"{found['latency_ms']:g} ms per request"
        )
        speed.plot(xs, [row["mib_per_s"] for row in found["rows"]], style, marker=marker, color=color, label=label)
        memory.plot(
            xs, [row["peak_rss_growth_mib"] for row in found["rows"]], style, marker=marker, color=color, label=label
        )
    first = series[0]
    for axes, title, unit in (
        (speed, "Upload throughput", "MiB/s"),
        (memory, "Peak RSS growth of the app's process", "MiB"),
    ):
        axes.set_xscale("log", base=2)
        axes.set_xticks([1, 2, 4, 8], labels=["1", "2", "4", "8"])
        axes.set_xlabel("transfers at once (service.transfers.max_concurrent)")
        axes.set_ylabel(unit)
        axes.set_title(title, fontsize=10)
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
    speed.legend(fontsize=8)
    figure.suptitle(
        f"KiteService uploading {first['files']} × {first['size_mib']} MiB to the emulators "
        f"(median of {first['repeat']}; 2 vCPUs, emulator on the same machine)",
        fontsize=10,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return True


def load(path: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        return dict(json.loads(path.read_text()))
    return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.transfer_concurrency", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--provider", choices=("google", "onedrive", "both"), default="google")
    parser.add_argument("--files", type=int, default=8, help="files uploaded in each run (default 8)")
    parser.add_argument("--size-mib", type=int, default=64, help="size of each file (default 64)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8], help="default 1 2 4 8")
    parser.add_argument(
        "--latency-ms", type=float, nargs="+", default=[0, 100], help="per-request latencies (default 0 100)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each setting; medians reported (default 3)")
    parser.add_argument("--settle-seconds", type=float, default=1.0, help="pause after each run (default 1)")
    parser.add_argument("--quick", action="store_true", help="4 × 16 MiB, one run, loopback, unless given otherwise")
    parser.add_argument("--plot-only", action="store_true", help="only redraw the figure from --output")
    parser.add_argument("--workdir", help="where the test files go (default: the system temp folder)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})")
    parser.add_argument("--figure", type=Path, default=FIGURE, help=f"the plot (default {FIGURE})")
    args = parser.parse_args(argv)
    if args.plot_only:
        drawn = plot(load(args.output), args.figure)
        print(f"figure written to {args.figure}" if drawn else "no figure drawn")
        return 0 if drawn else 1
    if args.quick:
        for key, full, quick in (("files", 8, 4), ("size_mib", 64, 16), ("repeat", 3, 1)):
            if getattr(args, key) == full:
                setattr(args, key, quick)
        if args.latency_ms == [0, 100]:
            args.latency_ms = [0]
    if min(args.files, args.size_mib, args.repeat, *args.concurrency) <= 0 or min(args.latency_ms) < 0:
        parser.error("sizes, counts and concurrencies must be positive")
    _stop_on_sigterm()
    host = machine()
    providers = ["google", "onedrive"] if args.provider == "both" else [args.provider]
    results: dict[str, Any] = {}
    with _workdir(args.workdir) as workdir:
        paths = upload_files(workdir, args.files, args.size_mib)
        for provider in providers:
            for latency_ms in args.latency_ms:
                series = run_series(provider, latency_ms, args, workdir, paths)
                series["quick"] = args.quick
                series["machine"] = host
                section = f"{provider}_{args.files}x{args.size_mib}mib_latency_{latency_ms:g}ms"
                results[section] = series
                print_series(section, series)
    merged = {**load(args.output), **results}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(merged, indent=2) + "\n")
    print(f"\nresults written to {args.output}")
    if not args.quick and plot(merged, args.figure):
        print(f"figure written to {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
