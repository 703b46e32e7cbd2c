"""A child's output, read in bounded chunks and kept in bounded memory.

The judge never reads "a line": a hostile child can print a gigabyte without a newline. Bytes arrive in chunks
of at most CHUNK_BYTES; each line is cut at `max_line_chars` (the rest of it is dropped until its newline), only
the last `tail_lines` lines are kept, and `total` counts every byte so the caller can stop a child that talks
without end.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

CHUNK_BYTES = 64 * 1024  # one os.read at most
MAX_LINE_CHARS = 4096
CUT_MARK = " [...]"


class OutputTail:
    """Feed raw bytes; complete lines go to `on_line` (if any) and into the tail."""

    def __init__(self, tail_lines: int, on_line: Callable[[str], None] | None = None,
                 max_line_chars: int = MAX_LINE_CHARS):
        self.lines: deque[str] = deque(maxlen=max(1, tail_lines))
        self.on_line = on_line
        self.max_line_bytes = max_line_chars
        self.total = 0
        self._partial = bytearray()
        self._cut = False  # the current line went over the cap: drop the rest of it

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            self._add(piece)
            if end < 0:
                break
            self._emit()
            start = end + 1

    def close(self) -> None:
        """The child is gone: what it printed after its last newline is a line too."""
        if self._partial or self._cut:
            self._emit()

    def text(self) -> str:
        return "\n".join(self.lines)

    def _add(self, piece: bytes) -> None:
        room = self.max_line_bytes - len(self._partial)
        if len(piece) > room:
            self._cut = True
        if room > 0:
            self._partial += piece[:room]

    def _emit(self) -> None:
        line = self._partial.decode("utf-8", errors="replace").removesuffix("\r") + (CUT_MARK if self._cut else "")
        self._partial.clear()
        self._cut = False
        self.lines.append(line)
        if self.on_line is not None:
            try:
                self.on_line(line)
            except Exception:  # a progress display must never break the run it displays
                pass
