"""How a price file was understood, for ``perfmode data check`` and the trainer's log."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

_SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_ENCODINGS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with BOM",
    "utf-16": "UTF-16",
    "latin-1": "Latin-1",
}


@dataclass(frozen=True)
class DataSummary:
    source: str
    """The file path, or "synthetic"."""
    layout: str
    """"header line", "MetaTrader 4 history, no header (...)", "synthetic", ..."""
    rows: int
    """Rows used: after blank lines, skipped rows and duplicate stamps are gone."""
    first: str
    last: str
    bars_per_year: float
    price_column: str = "close"
    time_columns: tuple[str, ...] = ()
    time_format: str | None = None
    """The stamps' layout, as "DD.MM.YYYY hh:mm:ss.fff" or "Unix time (ms)"."""
    date_order: str | None = None
    """day-first, month-first, year-first or month name (None when there is no date text)."""
    date_order_reason: str | None = None
    """The row that proves the order ("line 220: '13.01.2017 ...'"), or "date_format"."""
    time_zone: str = "not given; taken as written"
    encoding: str | None = None
    separator: str | None = None
    decimal: str | None = None
    thousands: str | None = None
    symbol_column: str | None = None
    symbol: str | None = None
    rows_read: int = 0
    """Data rows in the file (of the chosen symbol), blank lines not counted."""
    null_rows: int = 0
    """Rows whose price is ``null`` (Yahoo's mark for a day without trades): skipped."""
    duplicates_dropped: int = 0
    """Rows whose stamp repeats an earlier one; the later row is kept."""
    newest_first: bool = False
    gaps: int = 0
    """Spacings longer than 4 days and 5 usual steps: missing data, not weekends."""
    largest_gap: dict[str, Any] | None = None
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["time_columns"] = list(self.time_columns)
        out["notes"] = list(self.notes)
        return out

    def lines(self) -> list[tuple[str, str]]:
        """(label, text) rows for a person reading ``perfmode data check``."""
        rows: list[tuple[str, str]] = [("File", self.source)]
        if self.encoding is None:
            rows.append(("Layout", self.layout))
        else:
            encoding = _ENCODINGS.get(self.encoding, self.encoding)
            rows.append(("Layout", f"{self.layout}; {self._numbers()}; {encoding}"))
            cols = " + ".join(repr(c) for c in self.time_columns)
            time = f"{cols}, {self.time_format}" if self.time_format else cols
            if self.date_order:
                why = f" ({self.date_order_reason})" if self.date_order_reason else ""
                time += f", {self.date_order}{why}"
            rows.append(("Time", time))
            rows.append(("Time zone", self.time_zone))
            rows.append(("Price", repr(self.price_column)))
            if self.symbol_column is not None or self.symbol is not None:
                col = f" (column {self.symbol_column!r})" if self.symbol_column else ""
                rows.append(("Symbol", f"{self.symbol or 'none'}{col}"))
        rows.append(("Rows", self._rows()))
        span = f"{self.first} .. {self.last}"
        if self.newest_first:
            span += " (newest first in the file; sorted)"
        rows.append(("Range", span))
        if self.encoding is not None:
            rows.append(("Gaps", self._gaps()))
        rows.append(("Bars per year", f"{self.bars_per_year:,.6g}"))
        rows += [("Note", note) for note in self.notes]
        return rows

    def one_line(self) -> str:
        """The summary the trainer and ``evaluate`` log once at start."""
        parts = [f"{self.rows:,} rows {self.first} .. {self.last}"]
        if self.encoding is not None:
            time = " + ".join(self.time_columns)
            fmt = f" {self.time_format}" if self.time_format else ""
            order = f", {self.date_order}" if self.date_order else ""
            parts.append(f"time {time!r}{fmt}{order}, {self.time_zone}")
            parts.append(f"price {self.price_column!r}")
            if self.symbol:
                parts.append(f"symbol {self.symbol}")
            dropped = self._dropped()
            if dropped:
                parts.append(dropped)
            parts.append(f"{self.gaps} gaps" if self.gaps != 1 else "1 gap")
        parts.append(f"{self.bars_per_year:,.6g} bars/year")
        return f"Data {self.source}: " + "; ".join(parts)

    def _numbers(self) -> str:
        sep = _SEPARATORS.get(self.separator or "", repr(self.separator))
        dec = "decimal comma" if self.decimal == "," else "decimal point"
        thousands = f", thousands {self.thousands!r}" if self.thousands else ""
        return f"{sep}-separated, {dec}{thousands}"

    def _rows(self) -> str:
        dropped = self._dropped()
        if self.encoding is None or not dropped:
            return f"{self.rows:,}"
        return f"{self.rows:,} used of {self.rows_read:,} ({dropped})"

    def _dropped(self) -> str:
        parts = []
        if self.duplicates_dropped:
            stamps = "stamp" if self.duplicates_dropped == 1 else "stamps"
            parts.append(f"{self.duplicates_dropped:,} duplicate {stamps} dropped")
        if self.null_rows:
            rows = "row" if self.null_rows == 1 else "rows"
            parts.append(f"{self.null_rows:,} null {rows} skipped")
        return ", ".join(parts)

    def _gaps(self) -> str:
        if not self.gaps or self.largest_gap is None:
            return "none longer than 4 days"
        g = self.largest_gap
        return f"{self.gaps:,} longer than 4 days; largest {g['from']} .. {g['to']} ({g['days']:g} days)"
