"""Plain-text tables for terminal output (the CLI and the demo)."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[int] = ()) -> str:
    """Aligned columns; the columns listed in `numeric` are right-aligned so digits line up."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def short_address(address: str) -> str:
    """0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 -> 0xf39F…2266."""
    return f"{address[:6]}…{address[-4:]}"
