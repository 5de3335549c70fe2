"""Start the window: arguments, QApplication, single instance, qasync loop, boot and orderly quit."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from kite_desktop import APP_ID, APP_NAME, __version__


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kite-desktop", description="Kite Desktop: your documents, your storage.")
    parser.add_argument("--version", action="version", version=f"kite-desktop {__version__}")
    parser.add_argument("--profile", metavar="DIR", help="profile directory (default: $KITE_PROFILE_DIR or app data)")
    parser.add_argument(
        "--minimised", "--minimized", action="store_true", help="start in the tray without showing the window"
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or folders to upload")
    parser.add_argument("--quit-after-start", action="store_true", help=argparse.SUPPRESS)  # smoke tests
    return parser.parse_args(argv)


def run_gui(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("QT_API", "pyside6")
    import qasync
    from PySide6.QtWidgets import QApplication

    from kite_desktop.core.logs import configure_logging
    from kite_desktop.core.profile import Profile
    from kite_desktop.ui import icons
    from kite_desktop.ui.single_instance import SingleInstance

    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(icons.icon("kite-desktop"))

    profile = Profile.resolve(args.profile).ensure()
    configure_logging(profile.log_dir, os.environ.get("KITE_LOG_LEVEL", "INFO"))
    instance = SingleInstance(profile)
    paths = [os.path.abspath(p) if "://" not in p else p for p in args.paths]
    if not instance.acquire():
        if instance.send(paths):
            print("Kite is already running; your files were handed to it.", file=sys.stderr)
            return 0
        print(f"Kite is already running with the profile {profile.root}, but it does not answer.", file=sys.stderr)
        return 1
    try:
        return qasync.run(boot(app, profile, instance, paths, args.quit_after_start, args.minimised))
    except RuntimeError as exc:
        # The desktop session ended Qt's loop under us (log out, shutdown): nothing more can run.
        if "Event loop stopped" not in str(exc):
            raise
        return 0
    finally:
        instance.release()


async def boot(
    app: object,
    profile: object,
    instance: object,
    paths: list[str],
    quit_after_start: bool = False,
    minimised: bool = False,
) -> int:
    from PySide6.QtWidgets import QApplication

    from kite_desktop.app import build_service
    from kite_desktop.core.errors import KiteError
    from kite_desktop.ui.bridge import ServiceBridge
    from kite_desktop.ui.main_window import MainWindow
    from kite_desktop.ui.single_instance import SingleInstance
    from kite_desktop.ui.tray import TrayController

    assert isinstance(app, QApplication) and isinstance(instance, SingleInstance)
    quit_requested = asyncio.Event()
    app.aboutToQuit.connect(quit_requested.set)
    try:
        service = await asyncio.to_thread(build_service, profile.root)  # type: ignore[attr-defined]
    except KiteError as exc:
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.critical(None, exc.title, f"{exc.message}\n\n{exc.hint}")
        return 1
    bridge = ServiceBridge(service)
    window = MainWindow(service, bridge)
    window.attach_tray(TrayController(window))
    # Qt must not end the event loop by itself: quitting goes through quit_requested, so the coroutines
    # below can stop the transfers and close the catalog before the loop ends.
    app.setQuitOnLastWindowClosed(False)
    window.quit_requested.connect(quit_requested.set)
    instance.message_received.connect(window.handle_instance_message)
    if not window.keep_running_in_tray:
        logging.getLogger(__name__).info("no system tray: closing the window quits")

    if (minimised or service.settings.start_minimised) and window.keep_running_in_tray:
        logging.getLogger(__name__).info("starting in the tray")
    else:
        window.show()
    await window.start()
    if quit_after_start:
        print(f"kite-desktop started: {window.connection_model.rowCount()} connection(s), window shown")
        window.quit()
    if paths:
        window.add_files(paths)
    await quit_requested.wait()
    if window.tray is not None:
        window.tray.hide()
    await window.shutdown()
    await service.close()
    return 0
