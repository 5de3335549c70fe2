"""Regenerate the application icon at the usual sizes from ``resources/icons/kite-desktop.svg``.

Writes ``resources/icons/hicolor/<n>x<n>/apps/kite-desktop.png`` for the freedesktop icon theme (the name
matches ``Icon=kite-desktop`` in the .desktop file), ``packaging/kite-desktop.ico`` (Windows) and
``packaging/kite-desktop.icns`` (macOS). The PNGs are drawn by Qt's own SVG renderer, the same one the
window uses; Pillow (the ``dist`` extra) only packs them into .ico and .icns. Run it after changing the SVG:

    python packaging/make_icons.py
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SVG = ROOT / "resources" / "icons" / "kite-desktop.svg"
HICOLOR = ROOT / "resources" / "icons" / "hicolor"
ICON_NAME = "kite-desktop"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # 256 is the largest a .ico holds
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)  # 1024 is 512@2x on Retina screens


def render(svg: Path, size: int) -> bytes:
    """The SVG drawn on a transparent ``size`` x ``size`` square, as PNG bytes."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF, Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"cannot read {svg}")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.convertToFormat(QImage.Format.Format_ARGB32).save(buffer, "PNG")
    buffer.close()
    return bytes(data.data())


def png_path(size: int) -> Path:
    return HICOLOR / f"{size}x{size}" / "apps" / f"{ICON_NAME}.png"


def write_if_changed(path: Path, data: bytes) -> bool:
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PIL import Image
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    pngs = {size: render(SVG, size) for size in sorted({*SIZES, *ICO_SIZES, *ICNS_SIZES})}
    del app
    changed = [png_path(size) for size in SIZES if write_if_changed(png_path(size), pngs[size])]

    images = {size: Image.open(io.BytesIO(data)).convert("RGBA") for size, data in pngs.items()}
    ico = io.BytesIO()
    largest = images[max(ICO_SIZES)]
    # Pillow writes one entry per size; append_images hands it our own renderings instead of downscales.
    largest.save(
        ico, format="ICO", sizes=[(s, s) for s in ICO_SIZES], append_images=[images[s] for s in ICO_SIZES[:-1]]
    )
    icns = io.BytesIO()
    images[max(ICNS_SIZES)].save(icns, format="ICNS", append_images=[images[s] for s in ICNS_SIZES[:-1]])
    for path, data in (
        (ROOT / "packaging" / "kite-desktop.ico", ico.getvalue()),
        (ROOT / "packaging" / "kite-desktop.icns", icns.getvalue()),
    ):
        if write_if_changed(path, data):
            changed.append(path)
    for path in changed:
        print(f"wrote {path.relative_to(ROOT)}")
    if not changed:
        print("icons are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
