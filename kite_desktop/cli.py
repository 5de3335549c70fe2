"""``kite``: the command line on the same core and catalog as the window.

Exit statuses: 0 all done; 1 some items failed or were skipped; 2 usage error; 3 connection or document
not found; 4 the connection needs reconnecting; 5 any other error. ``--json`` prints machine-readable
output on stdout; ``--quiet`` prints only errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TextIO

from kite_desktop import __version__
from kite_desktop.core.errors import CloudConnectionError, KiteError, NotFoundError
from kite_desktop.core.formatting import human_size, human_speed
from kite_desktop.core.logs import configure_logging
from kite_desktop.core.models import ConnectionStatus, Document, Provider, SignIn
from kite_desktop.core.service import KiteService
from kite_desktop.core.transfers import Totals, Transfer, TransferState

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_REAUTH, EXIT_ERROR = range(6)


class Output:
    """Where the command writes: results on stdout, messages and progress on stderr."""

    def __init__(self, args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr):
        self.json = bool(args.json)
        self.quiet = bool(args.quiet)
        self.out = out
        self.err = err
        self._progress_shown = False

    def result(self, text: str) -> None:
        if not self.json and not self.quiet:
            print(text, file=self.out)

    def data(self, payload: Any) -> None:
        if self.json:
            json.dump(payload, self.out, indent=2, ensure_ascii=False, default=str)
            self.out.write("\n")

    def info(self, text: str) -> None:
        if not self.quiet and not self.json:
            self.end_progress()
            print(text, file=self.err)

    def error(self, text: str) -> None:
        self.end_progress()
        print(f"kite: {text}", file=self.err)

    def progress(self, totals: Totals) -> None:
        if self.quiet or not self.err.isatty():
            return
        width = 30
        filled = int(totals.fraction * width)
        bar = "#" * filled + "-" * (width - filled)
        line = (
            f"\r[{bar}] {totals.fraction:4.0%}  {human_size(totals.done_bytes)} of {human_size(totals.total_bytes)}"
            f"  {human_speed(totals.speed)}  {totals.finished}/{totals.finished + totals.active} files "
        )
        self.err.write(line)
        self.err.flush()
        self._progress_shown = True

    def end_progress(self) -> None:
        if self._progress_shown:
            self.err.write("\n")
            self.err.flush()
            self._progress_shown = False


def _document_json(document: Document) -> dict[str, Any]:
    return {
        "id": document.id,
        "name": document.name,
        "key": document.remote_key,
        "size": document.size,
        "type": document.content_type,
        "modified": document.modified.isoformat() if document.modified else None,
        "hash": document.hash,
        "state": document.state,
    }


def _transfer_json(transfer: Transfer) -> dict[str, Any]:
    return {
        "name": transfer.name,
        "source": str(transfer.source or transfer.destination or ""),
        "size": transfer.size,
        "state": transfer.state.value,
        "message": transfer.message,
        "document_id": transfer.result.id if transfer.result else None,
    }


# -- commands ------------------------------------------------------------------------------------------
async def cmd_connections(service: KiteService, args: argparse.Namespace, out: Output) -> int:
    connections = service.connections()
    out.data(
        [
            {
                "id": c.id,
                "name": c.name,
                "provider": c.provider.value,
                "status": c.status.value,
                "detail": c.detail,
                "account": c.account,
                "folder": c.config.options.get("folder"),
            }
            for c in connections
        ]
    )
    for c in connections:
        where = c.config.options.get("folder") or c.account
        out.result(f"{c.name}\t{c.provider.label}\t{c.status.label}\t{where}\t{c.id}")
    return EXIT_OK


async def cmd_ls(service: KiteService, args: argparse.Namespace, out: Output) -> int:
    config = service.find_connection(args.connection)
    documents = await service.refresh(config.id)
    out.data([_document_json(d) for d in documents])
    for d in documents:
        modified = d.modified.strftime("%Y-%m-%d %H:%M") if d.modified else ""
        out.result(f"{human_size(d.size):>10}  {modified:16}  {d.name}")
    if not documents:
        out.info(f"{config.name} holds no documents yet.")
    return EXIT_OK


async def cmd_upload(service: KiteService, args: argparse.Namespace, out: Output) -> int:
    config = service.find_connection(args.to)
    service.transfers.totals_changed.connect(out.progress)
    batch = await service.upload(config.id, args.paths, adopt=True)
    resumed = [t for t in batch.transfers if t.resume]
    if resumed:
        out.info(f"going on with {len(resumed)} upload(s) an earlier run left unfinished")
    for skipped in batch.skipped:
        out.error(f"skipped {skipped.source}: {skipped.reason}")
    await service.transfers.wait_idle()
    out.end_progress()
    states = [t.state for t in batch.transfers]
    for transfer in batch.transfers:
        if transfer.state is TransferState.DONE:
            note = f" ({transfer.message})" if transfer.message else ""
            out.result(f"uploaded {transfer.name}{note}")
        else:
            out.error(f"{transfer.state.label.lower()} {transfer.source}: {transfer.message}")
    out.data(
        {
            "uploaded": [_transfer_json(t) for t in batch.transfers if t.state is TransferState.DONE],
            "failed": [_transfer_json(t) for t in batch.transfers if t.state is not TransferState.DONE],
            "skipped": [{"source": s.source, "reason": s.reason} for s in batch.skipped],
        }
    )
    done = states.count(TransferState.DONE)
    problems = len(states) - done + len(batch.skipped)
    out.info(f"{done} uploaded to {config.name}, {problems} not uploaded.")
    waiting = states.count(TransferState.PAUSED)
    if waiting:
        out.info(f"{waiting} wait in the queue; they go on when you run this command again or open Kite Desktop.")
    if problems and service.connection(config.id).status is ConnectionStatus.REQUIRES_REAUTH:
        return EXIT_REAUTH
    if not batch.transfers and not batch.skipped:
        out.error("nothing to upload")
        return EXIT_USAGE
    return EXIT_OK if problems == 0 else EXIT_PARTIAL


async def cmd_get(service: KiteService, args: argparse.Namespace, out: Output) -> int:
    config = service.find_connection(args.connection)
    document = await service.find_document(config.id, args.document)
    target = Path(args.output) if args.output else Path.cwd() / document.name.rsplit("/", 1)[-1]
    if target.is_dir():
        target = target / document.name.rsplit("/", 1)[-1]
    service.transfers.totals_changed.connect(out.progress)
    transfer = await service.download(document, target)
    await service.transfers.wait_idle()
    out.end_progress()
    if transfer.state is not TransferState.DONE:
        out.error(f"could not download {document.name}: {transfer.message}")
        return EXIT_ERROR
    out.data({"document": _document_json(document), "path": str(target)})
    out.result(str(target))
    return EXIT_OK


async def cmd_rm(service: KiteService, args: argparse.Namespace, out: Output) -> int:
    config = service.find_connection(args.connection)
    document = await service.find_document(config.id, args.document)
    await service.delete(document)
    out.data({"deleted": _document_json(document)})
    out.result(f"deleted {document.name}")
    return EXIT_OK


async def cmd_set_folder(service: KiteService, args: argparse.Namespace, out: Output) -> int:
    config = service.find_connection(args.connection)
    await service.set_local_folder(config.id, Path(args.folder))
    out.result(f"{config.name} now keeps documents in {Path(args.folder).expanduser().absolute()}")
    return EXIT_OK


async def _sign_in(provider: str, out: Output, open_it: bool) -> SignIn:
    from kite_desktop.auth.google_signin import GoogleSignIn
    from kite_desktop.auth.microsoft_signin import MicrosoftSignIn
    from kite_desktop.auth.signin import open_browser

    flow = GoogleSignIn() if provider == "google" else MicrosoftSignIn()
    url = await flow.start()
    opened = open_it and await open_browser(url)
    if opened:
        out.info("Waiting for you to finish in the browser… (Ctrl+C cancels)")
    else:
        out.info(f"Open this address in a browser to sign in (Ctrl+C cancels):\n{url}")
    return await flow.finish()


async def cmd_connect(service: KiteService, args: argparse.Namespace, out: Output) -> int:
    signed_in = await _sign_in(args.provider, out, not args.no_browser)
    config = await service.connect_account(signed_in)
    out.data({"id": config.id, "name": config.name, "provider": config.provider.value, "account": signed_in.account})
    out.result(f"connected {signed_in.account} ({config.provider.label}) as connection {config.name}")
    return EXIT_OK


async def cmd_reconnect(service: KiteService, args: argparse.Namespace, out: Output) -> int:
    config = service.find_connection(args.connection)
    if config.provider is Provider.LOCAL:
        out.error("a local-folder connection has no sign-in")
        return EXIT_USAGE
    provider = "google" if config.provider is Provider.GOOGLE_DRIVE else "onedrive"
    signed_in = await _sign_in(provider, out, not args.no_browser)
    await service.reconnect(config.id, signed_in)
    out.result(f"reconnected {config.name}")
    return EXIT_OK


async def cmd_disconnect(service: KiteService, args: argparse.Namespace, out: Output) -> int:
    config = service.find_connection(args.connection)
    await service.remove_connection(config.id)
    out.result(f"removed {config.name}; its documents stay in the storage")
    return EXIT_OK


def cmd_desktop_entry(args: argparse.Namespace, out: Output) -> int:
    """Put Kite in this user's applications menu, or take it out (Linux; needs no profile or service)."""
    from kite_desktop import desktop_entry

    if args.action == "install":
        written = desktop_entry.install_desktop_entry()
        out.data({"action": "install", "desktop_file": str(desktop_entry.desktop_file_path()), "files": written})
        out.result(f"Kite Desktop is in the applications menu: {desktop_entry.desktop_file_path()}")
        out.info(f"{len(written)} files written under {desktop_entry.data_home()}")
        return EXIT_OK
    removed = desktop_entry.remove_desktop_entry()
    out.data({"action": "remove", "desktop_file": str(desktop_entry.desktop_file_path()), "files": removed})
    if removed:
        out.result(f"Kite Desktop is no longer in the applications menu ({len(removed)} files removed)")
    else:
        out.result("Kite Desktop was not in the applications menu; nothing to remove")
    return EXIT_OK


Command = Callable[[KiteService, argparse.Namespace, Output], Coroutine[Any, Any, int]]
PlainCommand = Callable[[argparse.Namespace, Output], int]


def _common_options(*, with_defaults: bool) -> argparse.ArgumentParser:
    """Options taken before or after the command name. The commands' copies have no defaults, or argparse
    would reset ``kite --profile DIR ls`` to the default profile when it parses ``ls``."""
    extra: dict[str, Any] = {} if with_defaults else {"default": argparse.SUPPRESS}
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--profile", metavar="DIR", help="profile directory (default: $KITE_PROFILE_DIR or app data)", **extra
    )
    common.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout", **extra)
    common.add_argument("-q", "--quiet", action="store_true", help="print only errors", **extra)
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options(with_defaults=False)
    parser = argparse.ArgumentParser(
        prog="kite",
        description="Kite: your documents, in storage you own.",
        parents=[_common_options(with_defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"kite {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("connections", parents=[common], help="list connections and their status")
    p.set_defaults(func=cmd_connections)
    p = sub.add_parser("ls", parents=[common], help="list a connection's documents")
    p.add_argument("connection", metavar="CONNECTION", help="connection name or id")
    p.set_defaults(func=cmd_ls)
    p = sub.add_parser("upload", parents=[common], help="upload files and folders")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--to", required=True, metavar="CONNECTION", help="connection name or id")
    p.set_defaults(func=cmd_upload)
    p = sub.add_parser("get", parents=[common], help="download a document")
    p.add_argument("connection", metavar="CONNECTION")
    p.add_argument("document", metavar="DOCUMENT", help="document name or id")
    p.add_argument("-o", "--output", metavar="PATH", help="file or folder to save to (default: here)")
    p.set_defaults(func=cmd_get)
    p = sub.add_parser("rm", parents=[common], help="delete a document")
    p.add_argument("connection", metavar="CONNECTION")
    p.add_argument("document", metavar="DOCUMENT", help="document name or id")
    p.set_defaults(func=cmd_rm)
    p = sub.add_parser("connect", parents=[common], help="connect a Google Drive or OneDrive account")
    p.add_argument("provider", choices=["google", "onedrive"])
    p.add_argument("--no-browser", action="store_true", help="print the sign-in address instead of opening it")
    p.set_defaults(func=cmd_connect)
    p = sub.add_parser("reconnect", parents=[common], help="sign in again to a connection that needs it")
    p.add_argument("connection", metavar="CONNECTION")
    p.add_argument("--no-browser", action="store_true", help="print the sign-in address instead of opening it")
    p.set_defaults(func=cmd_reconnect)
    p = sub.add_parser("disconnect", parents=[common], help="remove a connection (documents stay in the storage)")
    p.add_argument("connection", metavar="CONNECTION")
    p.set_defaults(func=cmd_disconnect)
    p = sub.add_parser("set-folder", parents=[common], help="choose the folder of a local connection")
    p.add_argument("connection", metavar="CONNECTION")
    p.add_argument("folder", metavar="FOLDER")
    p.set_defaults(func=cmd_set_folder)
    p = sub.add_parser(
        "desktop-entry",
        parents=[common],
        help="add Kite Desktop to the applications menu, or remove it (Linux)",
        description="install: the .desktop file (starting this Kite Desktop), icons and AppStream metainfo in "
        "$XDG_DATA_HOME (~/.local/share); remove: the same files again.",
    )
    p.add_argument("action", choices=["install", "remove"])
    p.set_defaults(plain=cmd_desktop_entry)
    return parser


async def _run(args: argparse.Namespace, out: Output) -> int:
    from kite_desktop.app import build_service

    service = await asyncio.to_thread(build_service, args.profile)
    configure_logging(service.profile.log_dir, os.environ.get("KITE_LOG_LEVEL", "INFO"))
    try:
        for notice in service.notices:
            out.info(notice)
        func: Command = args.func
        return await func(service, args, out)
    finally:
        await service.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(args)
    plain: PlainCommand | None = getattr(args, "plain", None)
    try:
        if plain is not None:  # a command about this computer, not the documents: no profile, no service
            return plain(args, out)
        return asyncio.run(_run(args, out))
    except NotFoundError as exc:
        out.error(exc.describe())
        return EXIT_NOT_FOUND
    except CloudConnectionError as exc:
        out.error(f"{exc.describe()} Open Kite Desktop to reconnect.")
        return EXIT_REAUTH
    except KiteError as exc:
        out.error(f"{exc.title}: {exc.describe()}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130
    except Exception as exc:  # a library's own error: one line, not a traceback
        out.error(f"{type(exc).__name__}: {exc}")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
