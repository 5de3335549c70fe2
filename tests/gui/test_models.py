"""The Qt models on their own, checked by Qt's own model tester, and the Qt binding's sanity."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from PySide6.QtCore import QObject, QPersistentModelIndex, Qt, Signal

from kite_desktop.core.models import Connection, ConnectionConfig, ConnectionStatus, Document, Provider
from kite_desktop.core.transfers import Transfer, TransferKind, TransferState
from kite_desktop.ui.connection_model import ConnectionListModel
from kite_desktop.ui.document_model import DocumentFilterProxy, DocumentTableModel, SortRole
from kite_desktop.ui.transfer_model import TransferTableModel


def document(name: str, size: int) -> Document:
    return Document(
        id=name,
        connection_id="c",
        remote_key=name,
        name=name,
        size=size,
        content_type="application/pdf",
        modified=datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
    )


def test_document_model_passes_the_model_tester(qtmodeltester):
    model = DocumentTableModel()
    model.set_documents("c", [document("b.pdf", 10), document("a.pdf", 2000), document("Taxes/c.pdf", 5)])
    qtmodeltester.check(model)
    proxy = DocumentFilterProxy()
    proxy.setSourceModel(model)
    qtmodeltester.check(proxy)


def test_document_model_shows_sizes_for_people_and_sorts_them_as_numbers():
    model = DocumentTableModel()
    model.set_documents("c", [document("small.pdf", 900), document("big.pdf", 12_000_000)])
    proxy = DocumentFilterProxy()
    proxy.setSourceModel(model)
    proxy.sort(2, Qt.SortOrder.AscendingOrder)
    assert [proxy.index(r, 2).data() for r in range(2)] == ["900 B", "12.0 MB"]
    assert proxy.index(0, 1).data() == "PDF"


def test_connection_model_passes_the_model_tester(qtmodeltester):
    model = ConnectionListModel()
    config = ConnectionConfig("l", "Local", Provider.LOCAL, {"folder": "/home/me/Documents/Kite"})
    model.set_connections([Connection(config, ConnectionStatus.REQUIRES_REAUTH)])
    qtmodeltester.check(model)
    assert "Needs reconnect" in model.index(0).data(Qt.ItemDataRole.ToolTipRole)


def test_transfer_model_passes_the_model_tester(qtmodeltester):
    model = TransferTableModel()
    running = Transfer(TransferKind.UPLOAD, "c", "a.pdf", 100, source=Path("/tmp/a.pdf"), done=50)
    running.state = TransferState.RUNNING
    skipped = Transfer(TransferKind.UPLOAD, "c", "fifo", 0, state=TransferState.SKIPPED, message="It is a FIFO.")
    model.add([running, skipped])
    qtmodeltester.check(model)
    assert model.index(0, 1).data().startswith("50%")
    assert model.index(1, 3).data() == "Skipped: It is a FIFO."
    model.remove([running])
    assert model.rowCount() == 1


class _Emitter(QObject):
    flag = Signal(bool)
    thing = Signal(object)


def test_qt_binding_keeps_reference_counts_of_signal_arguments(qapp):
    """PySide6 6.12.0 drops a reference to True on every emission and the app aborts later; refuse it."""
    emitter = _Emitter()
    emitter.flag.connect(lambda value: None)
    before = sys.getrefcount(True)
    for _ in range(50):
        emitter.flag.emit(True)
        emitter.thing.emit(object())
    assert sys.getrefcount(True) >= before


def test_a_new_listing_of_the_same_connection_changes_rows_in_place(qtmodeltester):
    """A finished upload adds one row where it belongs; the others (and what the view shows of them) stay."""
    model = DocumentTableModel()
    proxy = DocumentFilterProxy()
    proxy.setSourceModel(model)
    first = [document(f"doc-{n:03}.pdf", n) for n in range(50)]
    assert model.set_documents("c", first) is True  # a first listing: reset
    qtmodeltester.check(model)
    proxy.sort(2, Qt.SortOrder.DescendingOrder)
    kept = proxy.index(10, 0)
    kept_name = kept.data()
    pinned = QPersistentModelIndex(kept)
    resets: list[bool] = []
    model.modelReset.connect(lambda: resets.append(True))

    second = [d for d in first if d.name != "doc-049.pdf"] + [document("new.pdf", 25)]
    assert model.set_documents("c", second) is False
    assert resets == []
    sizes = [proxy.index(r, 2).data(SortRole) for r in range(proxy.rowCount())]
    assert sizes == sorted(sizes, reverse=True) and 25 in sizes and 49 not in sizes
    assert pinned.isValid() and pinned.data() == kept_name
    assert model.set_documents("other", second) is True  # another connection: a fresh start


def test_sorting_ten_thousand_documents_keeps_every_row(qtmodeltester):
    model = DocumentTableModel()
    model.set_documents("c", [document(f"d{n}.pdf", (n * 7919) % 10_000) for n in range(10_000)])
    proxy = DocumentFilterProxy()
    proxy.setSourceModel(model)
    proxy.sort(2, Qt.SortOrder.AscendingOrder)
    sizes = [model.document_at(r).size for r in range(model.rowCount())]
    assert sizes == sorted(sizes) and len(set(model.document_at(r).id for r in range(10_000))) == 10_000


def test_changes_worked_out_elsewhere_land_on_the_right_rows():
    """Rows removed above a changed row: the change still lands on its document, not on its old row number."""
    model = DocumentTableModel()
    docs = [document(f"{c}.pdf", 10) for c in "abcdef"]
    model.set_documents("c", docs)
    bigger = document("e.pdf", 99)
    second = [d for d in docs if d.name not in ("a.pdf", "c.pdf")]
    second = [bigger if d.name == "e.pdf" else d for d in second]
    plan = model.changes_to(second, model.snapshot())
    assert model.set_documents("c", second, plan) is False
    assert [(model.document_at(r).name, model.document_at(r).size) for r in range(model.rowCount())] == [
        ("b.pdf", 10),
        ("d.pdf", 10),
        ("e.pdf", 99),
        ("f.pdf", 10),
    ]
    stale = model.changes_to([*second, document("g.pdf", 1)], model.snapshot())
    model.set_documents("c", [*second, document("h.pdf", 1)])  # the rows changed after that plan was made
    assert model.set_documents("c", [*second, document("g.pdf", 1)], stale) is False
    assert [model.document_at(r).name for r in range(model.rowCount())] == ["b.pdf", "d.pdf", "e.pdf", "f.pdf", "g.pdf"]
