"""One price file in: closes and timestamps, sorted and unique, and how they were read.

The layout comes from :mod:`csvformats`, the stamps from :mod:`timecolumn`. pandas reads
only the time, price and symbol columns, a million rows at a time, so memory stays near
the size of the result rather than of the file.

Every problem is one ``UsageError`` line naming the file and the line or column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from perfmode.base.text import QUOTE_LIMIT, cut, quote
from perfmode.env.csvformats import Layout, sniff
from perfmode.env.summary import DataSummary
from perfmode.env.timeaxis import gaps, is_daily, periods_per_year, stamp
from perfmode.env.timecolumn import TimeColumn, TimeReading
from perfmode.errors import UsageError

CHUNK_ROWS = 1_000_000
# Prices the environment computes with: returns and equity stay far from float64's overflow
# and subnormal range (1e308, 1e-320 read as numbers, then wreck every figure).
MIN_PRICE = 1e-9
MAX_PRICE = 1e12
_LISTED_SYMBOLS = 10


@dataclass(frozen=True, eq=False)
class PriceFile:
    close: np.ndarray
    """float64, all positive."""
    time: np.ndarray
    """datetime64[ns], strictly increasing (UTC where the file gave offsets or Unix times)."""
    summary: DataSummary


def read_prices(
    path: Path, *, symbol: str | None = None, date_format: str | None = None
) -> PriceFile:
    """Read ``path``; ``symbol`` picks one instrument of a multi-symbol file, ``date_format``
    ("day-first" or "month-first") says the order where every date reads both ways."""
    return _Reader(Path(path), sniff(Path(path)), symbol, date_format).read()


class _Reader:
    """The file in chunks (blank rows dropped, one symbol kept, prices and stamps checked),
    then all of it sorted and summed up; the symbol column is :class:`_Symbols`' job."""

    def __init__(
        self, path: Path, layout: Layout, symbol: str | None, date_format: str | None
    ) -> None:
        self.path, self.layout = path, layout
        self.symbols = _Symbols(path, layout, symbol)
        self.time = TimeColumn(
            path,
            [layout.columns[c] for c in layout.time_cols],
            [layout.sample_values(c) for c in layout.time_cols],
            layout.first_line(),
            date_format,
        )
        self.used = sorted(
            {*layout.time_cols, layout.close_col}
            | ({layout.symbol_col} if layout.symbol_col is not None else set())
        )
        self.pos = {c: i for i, c in enumerate(self.used)}
        self.closes: list[np.ndarray] = []
        self.rows_read = 0
        self.null_rows = 0

    # --- reading ---------------------------------------------------------------

    def read(self) -> PriceFile:
        L = self.layout
        # Symbols as categories, stamps as bytes: no Python object per row.
        dtype = self.time.dtypes(L.time_cols)
        if L.symbol_col is not None:
            dtype[L.symbol_col] = "category"
        try:
            reader = pd.read_csv(
                self.path,
                sep=L.separator,
                header=0 if L.header else None,
                skiprows=L.skiprows,
                index_col=False,  # a separator at the end of every row is not an index
                usecols=self.used,
                dtype=dtype,
                decimal=L.decimal,
                thousands=L.thousands,
                keep_default_na=False,
                na_values=[""],
                skip_blank_lines=False,
                skipinitialspace=True,
                encoding=L.encoding,
                chunksize=CHUNK_ROWS,
            )
        except (pd.errors.ParserError, ValueError, OSError) as e:
            raise self._unreadable(e) from None
        with reader:
            while True:
                try:
                    chunk = next(reader)
                except StopIteration:
                    break
                except (pd.errors.ParserError, ValueError, OSError) as e:
                    raise self._unreadable(e) from None
                self._take(chunk)
        return self._finish()

    def _unreadable(self, e: Exception) -> UsageError:
        if isinstance(e, UnicodeDecodeError):
            return UsageError(
                f"{self.path}: not a text CSV file (cannot decode it as {self.layout.encoding})"
            )
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return UsageError(f"{self.path}: cannot read it as CSV: {first}")

    def _column(self, chunk: pd.DataFrame, col: int) -> pd.Series:
        return chunk.iloc[:, self.pos[col]]

    def _take(self, chunk: pd.DataFrame) -> None:
        L = self.layout
        lines = chunk.index.to_numpy(dtype=np.int64) + L.first_line()
        times = [self._column(chunk, c).to_numpy() for c in L.time_cols]
        close = self._column(chunk, L.close_col)
        close_empty = close.isna().to_numpy().copy()
        if close.dtype == object or pd.api.types.is_string_dtype(close.dtype):
            close_empty |= close.fillna("").astype(str).str.strip().eq("").to_numpy()
        blank = close_empty.copy()
        for t in times:
            blank &= _empty(t)
        if L.symbol_col is not None:
            sym = self._column(chunk, L.symbol_col)
            blank &= sym.isna().to_numpy()
        keep = ~blank
        if L.symbol_col is not None:
            keep &= self.symbols.pick(sym, keep)
            if self.symbols.mixed():
                return  # refused at the end, once every symbol is known
        raw_close = close
        if not keep.all():
            sel = np.flatnonzero(keep)
            lines, times, raw_close = lines[sel], [t[sel] for t in times], close.iloc[sel]
        self.rows_read += len(lines)
        values, null = _close_values(raw_close, L)
        if null.any():
            self.null_rows += int(null.sum())
            ok = ~null
            lines, times, values = lines[ok], [t[ok] for t in times], values[ok]
            raw_close = raw_close.iloc[np.flatnonzero(ok)]
        problems = [_close_problem(raw_close, values, lines, L), self.time.take(times, lines)]
        found = [p for p in problems if p is not None]
        if found:
            raise UsageError(f"{self.path}: {min(found)[1]}")
        self.closes.append(values)

    # --- the whole file --------------------------------------------------------

    def _finish(self) -> PriceFile:
        self.symbols.check(self.rows_read)
        if not sum(len(x) for x in self.closes):
            raise UsageError(f"{self.path}: no rows of prices (only a header?)")
        close = np.concatenate(self.closes)
        self.closes.clear()
        ns, reading = self.time.finish()
        ns, close, newest_first, duplicates = _sorted_unique(ns, close)
        time = ns.view("datetime64[ns]")
        return PriceFile(close, time, self._summary(time, reading, newest_first, duplicates))

    def _summary(
        self,
        time: np.ndarray,
        reading: TimeReading,
        newest_first: bool,
        duplicates: int,
    ) -> DataSummary:
        L = self.layout
        daily = is_daily(time)
        n_gaps, largest = gaps(time)
        return DataSummary(
            source=str(self.path),
            layout=L.kind,
            rows=len(time),
            first=stamp(time[0], daily),
            last=stamp(time[-1], daily),
            bars_per_year=periods_per_year(time),
            price_column=L.columns[L.close_col],
            time_columns=tuple(self.time.names),
            time_format=reading.time_format,
            date_order=reading.date_order,
            date_order_reason=reading.date_order_reason,
            time_zone=reading.time_zone,
            encoding=L.encoding,
            separator=L.separator,
            decimal=L.decimal,
            thousands=L.thousands,
            symbol_column=L.columns[L.symbol_col] if L.symbol_col is not None else None,
            symbol=self.symbols.name(),
            rows_read=self.rows_read,
            null_rows=self.null_rows,
            duplicates_dropped=duplicates,
            newest_first=newest_first,
            gaps=n_gaps,
            largest_gap=largest,
            notes=self.symbols.notes(),
        )


class _Symbols:
    """The symbol column: which symbols the file holds, which rows are the one asked for,
    and a file that mixes several when none was."""

    def __init__(self, path: Path, layout: Layout, symbol: str | None) -> None:
        self.path, self.layout = path, layout
        self.want = symbol.strip() if symbol else None
        self.seen: set[str] = set()

    def pick(self, sym: pd.Series, keep: np.ndarray) -> np.ndarray:
        names = [str(c).strip() for c in sym.cat.categories]
        codes = sym.cat.codes.to_numpy()
        self.seen |= {names[c] for c in np.unique(codes[keep & (codes >= 0)])}
        if self.want is None:
            return np.ones(len(codes), dtype=bool)
        wanted = self.want.casefold()
        return np.isin(codes, [i for i, name in enumerate(names) if name.casefold() == wanted])

    def mixed(self) -> bool:
        return self.want is None and len(self.seen) > 1

    def check(self, rows_read: int) -> None:
        listed = sorted(self.seen)
        shown = ", ".join(listed[:_LISTED_SYMBOLS])
        if len(listed) > _LISTED_SYMBOLS:
            shown += f" and {len(listed) - _LISTED_SYMBOLS} more"
        if self.mixed():
            raise UsageError(
                f"{self.path}: holds {len(listed)} symbols ({shown}); pick one with "
                "--symbol NAME or env.symbol in the config"
            )
        if self.want is not None and self.layout.symbol_col is not None and rows_read == 0:
            raise UsageError(
                f"{self.path}: symbol {self.want!r} is not in the file (it holds {shown}); "
                "pick one of those with --symbol NAME or env.symbol"
            )

    def name(self) -> str | None:
        """The symbol the prices are of, as the file spells it; None without a column."""
        if self.layout.symbol_col is None:
            return None
        if self.want is None:
            return next(iter(self.seen)) if len(self.seen) == 1 else None
        wanted = self.want.casefold()
        return next((s for s in sorted(self.seen) if s.casefold() == wanted), self.want)

    def notes(self) -> tuple[str, ...]:
        if self.want is not None and self.layout.symbol_col is None:
            return (
                f"symbol {self.want!r} asked for, but the file has no symbol column: all rows used",
            )
        return ()


def _close_values(raw: pd.Series, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Prices as float64 (NaN where unreadable) and the ``null`` rows Yahoo writes."""
    if pd.api.types.is_numeric_dtype(raw.dtype):
        return raw.to_numpy(dtype=np.float64), np.zeros(len(raw), dtype=bool)
    # A column pandas could not read as numbers: a bad value or null somewhere.
    text = raw.fillna("").astype(str).str.strip()
    null = text.str.lower().eq("null").to_numpy()
    if layout.thousands:
        text = text.str.replace(layout.thousands, "", regex=False)
    if layout.decimal != ".":
        text = text.str.replace(layout.decimal, ".", regex=False)
    return pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64), null


def _close_problem(
    raw: pd.Series, values: np.ndarray, lines: np.ndarray, layout: Layout
) -> tuple[int, str] | None:
    """The first price outside what the environment accepts: (line, message)."""
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~((values >= MIN_PRICE) & (values <= MAX_PRICE)))
    if not len(bad):
        return None
    i = int(bad[0])
    original = raw.iloc[i]
    name = layout.columns[layout.close_col]
    if pd.isna(original) or not str(original).strip():
        why = "is empty"
    elif not np.isfinite(values[i]):
        why = f"is {_cell(original)}, not a number"
    elif values[i] <= 0:
        why = f"is {_cell(original)}; prices must be positive"
    else:
        why = (
            f"is {_cell(original)}, outside the prices accepted ({MIN_PRICE:g} to "
            f"{MAX_PRICE:g}); rescale the column (e.g. to another unit)"
        )
    return int(lines[i]), f"line {lines[i]}: {name} {why}"


def _sorted_unique(ns: np.ndarray, close: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, int]:
    """Sorted by time; of rows with the same stamp the last one in the file stays (an
    appended download that overlaps holds the newer copy)."""
    step = np.diff(ns)
    newest_first = bool(len(step)) and float(np.mean(step < 0)) > 0.5
    if len(step) and not (step > 0).all():
        if (step < 0).all():
            ns, close = ns[::-1], close[::-1]
        else:
            order = np.argsort(ns, kind="stable")
            ns, close = ns[order], close[order]
    keep = np.append(ns[1:] != ns[:-1], True)
    duplicates = int(len(ns) - keep.sum())
    if duplicates:
        ns, close = ns[keep], close[keep]
    return np.ascontiguousarray(ns), np.ascontiguousarray(close), newest_first, duplicates


def _empty(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "S":
        return values == b""
    if values.dtype.kind in "iu":
        return np.zeros(len(values), dtype=bool)
    return np.asarray(pd.isna(values), dtype=bool)


def _cell(value: object) -> str:
    # Text in quotes, so a stray space shows; numbers as written (not numpy's repr); cut,
    # so a 50 MB cell is not a 50 MB message.
    return quote(value) if isinstance(value, str) else cut(str(value), QUOTE_LIMIT)
