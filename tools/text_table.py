"""The one fixed-width table printer of the command lines and benchmarks (pure: rows in, lines out)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def format_table(rows: Sequence[Sequence[str]], *, right: Iterable[int] = (), indent: str = "",
                 loose: Iterable[int] = ()) -> list[str]:
    """One line per row, columns padded to their widest cell and separated by two spaces; columns in `right` are
    right-aligned (numbers), columns in `loose` are neither padded nor counted (a free-text last column)."""
    right, loose = set(right), set(loose)
    count = max((len(row) for row in rows), default=0)
    widths = [0 if i in loose else max((len(row[i]) for row in rows if i < len(row)), default=0) for i in range(count)]
    lines = []
    for row in rows:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines
