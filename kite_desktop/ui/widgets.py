"""Small widgets of the main window: the empty state, the drop overlay and the message banner."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from kite_desktop.ui import icons


class EmptyState(QWidget):
    """Shown instead of the table while a connection holds no documents."""

    add_files_clicked = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("emptyState")
        picture = QLabel(self)
        picture.setPixmap(icons.pixmap("empty-drop", 112))
        picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title = QLabel("Drop files here", self)
        self.title.setObjectName("emptyTitle")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        self.title.setFont(font)
        self.subtitle = QLabel("Drag documents or folders onto this window, or choose them yourself.", self)
        self.subtitle.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.subtitle.setWordWrap(True)
        self.subtitle.setEnabled(False)
        button = QPushButton("Add files…", self)
        button.setObjectName("emptyAddFiles")
        button.clicked.connect(self.add_files_clicked)
        self.add_button = button
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        layout.addWidget(picture)
        layout.addSpacing(8)
        layout.addWidget(self.title)
        layout.addWidget(self.subtitle)
        layout.addSpacing(12)
        layout.addLayout(row)
        layout.addStretch(3)

    def show_ready(self, name: str) -> None:
        self.add_button.show()
        self.title.setText("Drop files here")
        self.subtitle.setText(
            f"Drag documents or folders onto this window to keep them in {name}, or choose them yourself."
        )

    def show_unavailable(self, name: str, status: str) -> None:
        self.add_button.hide()
        phrases = {
            "Needs reconnect": "needs you to sign in again",
            "Offline": "cannot be reached",
            "Error": "has a problem",
        }
        self.title.setText(f"{name} {phrases.get(status, 'is unavailable')}")
        self.subtitle.setText("Its documents will show here once it can be reached again. See the message above.")


class DropOverlay(QLabel):
    """Covers the documents while something is dragged over the window, saying where it will go."""

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setObjectName("dropOverlay")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setStyleSheet(
            "#dropOverlay { background: rgba(31, 122, 140, 40); border: 3px dashed #1f7a8c;"
            " border-radius: 12px; color: #14505c; font-size: 18pt; font-weight: bold; }"
        )
        self.hide()

    def show_for(self, connection_name: str) -> None:
        self.setText(f"Drop to add to {connection_name}")
        parent = self.parentWidget()
        if parent is not None:
            self.setGeometry(parent.rect().adjusted(8, 8, -8, -8))
        self.raise_()
        self.show()


class Banner(QFrame):
    """A non-modal message above the documents, with an optional action and a close button."""

    action_clicked = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("banner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.text = QLabel(self)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action = QPushButton(self)
        self.action.hide()
        self.action.clicked.connect(self.action_clicked)
        close = QPushButton("Dismiss", self)
        close.clicked.connect(self.hide)
        self.close_button = close
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.action)
        layout.addWidget(close)
        self.hide()

    def show_message(
        self, text: str, *, warning: bool = True, action: str | None = None, dismiss: str = "Dismiss"
    ) -> None:
        colour = "#fff4e5; border: 1px solid #f0b45a" if warning else "#e8f4f6; border: 1px solid #8cc3cd"
        self.setStyleSheet(f"#banner {{ background: {colour}; border-radius: 6px; }} #banner QLabel {{ color: #222; }}")
        self.text.setText(text)
        self.close_button.setText(dismiss)
        self.action.setVisible(action is not None)
        if action:
            self.action.setText(action)
        self.show()
