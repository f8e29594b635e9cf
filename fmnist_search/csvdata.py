"""Kaggle-style CSV files: an optional id column, a label column, 784 pixel columns (0-255).

Read strictly. pandas quietly turns the extra leading fields of a long row into an index and
pads a short row with NaN, so one field too many (a trailing comma, an unquoted id) would shift
ids and labels into the pixels and still "work". So every row is checked to have exactly the
header's fields before pandas parses the file, and every message names the file and the line.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist_search.errors import UserError
from fmnist_search.images import CLASS_NAMES, IMAGE_SHAPE, N_PIXELS

COMPRESSED = {".gz": ("gzip", gzip.open), ".bz2": ("bzip2", bz2.open), ".xz": ("xz", lzma.open)}
PIXEL_NAME = re.compile(r"pixel\d+")


@dataclass
class CsvData:
    x: np.ndarray
    y: np.ndarray | None
    ids: np.ndarray | None
    lines: np.ndarray | None = None  # each row's line number in the file, for messages


def read_csv(path: str | Path, label_column: str = "label", id_column: str = "id",
             require_labels: bool = True, require_id: bool = False,
             option: str = "CSV file") -> CsvData:
    """Read and check one CSV; ``option`` (e.g. ``--train-csv``) names it in messages."""
    path = Path(path)
    raw = _read_bytes(path, option)
    _check_text(raw, path)
    lines = _check_rows(raw, path)
    frame = _parse(raw, path)
    if len(frame) != len(lines):  # a quoted value spanning lines: count rows instead
        lines = np.arange(2, len(frame) + 2)
    ids, labels = _pop_columns(frame, path, label_column, id_column, require_labels, require_id,
                               option)
    pixels = _checked_pixels(frame, path, lines)
    y = _checked_labels(labels, path, lines) if labels is not None else None
    return CsvData(pixels.reshape(-1, *IMAGE_SHAPE), y, ids, lines)


def duplicate_ids(table: CsvData, path: str | Path) -> str | None:
    """A warning naming a repeated id and its lines, or None: a submission keyed by id needs
    each id once, but the rows are still predicted (nothing is dropped)."""
    if table.ids is None or len(table.ids) == 0:
        return None
    ids = np.asarray(table.ids)
    _, first, counts = np.unique(ids, return_index=True, return_counts=True)
    repeated = np.nonzero(counts > 1)[0]
    if not len(repeated):
        return None
    example = ids[first[repeated[0]]]
    rows = np.nonzero(ids == example)[0][:3]
    where = ", ".join(str(table.lines[r]) if table.lines is not None else str(r + 2) for r in rows)
    return (f"{path} repeats {len(repeated)} id(s), e.g. {_show(example)} on lines {where}; "
            "the predictions keep every row, so the output repeats them too.")


# --------------------------------------------------------------------------- bytes and lines


def _read_bytes(path: Path, option: str) -> bytes:
    """The file's bytes, decompressed by suffix (.gz, .bz2, .xz, .zip) as pandas would."""
    from fmnist_search.preflight import check_path

    check_path(path, option)
    if path.is_dir():
        raise UserError(f"{option} {path} is a directory; a CSV file is expected.")
    if not path.is_file():
        raise UserError(f"{option} {path}: no such file.")
    suffix = path.suffix.lower()
    kind, opener = COMPRESSED.get(suffix, ("zip" if suffix == ".zip" else "", None))
    try:
        if kind == "zip":
            return _zip_member(path)
        if opener is None:
            return path.read_bytes()
        with opener(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile) as exc:
        what = f"a readable {kind} file" if kind else "readable"
        raise UserError(f"{option} {path} is not {what} ({exc}). Give a plain .csv file, or "
                        "a .csv.gz / .bz2 / .xz / .zip that really is compressed so.") from exc


def _zip_member(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        if len(names) != 1:
            raise UserError(f"{path} holds {len(names)} files; a zipped CSV must hold exactly one.")
        return archive.read(names[0])


def _check_text(raw: bytes, path: Path) -> None:
    if raw.isascii() and b"\x00" not in raw:
        return
    try:
        raw.decode("utf-8")
        position = raw.find(b"\x00")
    except UnicodeDecodeError as exc:
        position = exc.start
    if position < 0:
        return
    line = raw.count(b"\n", 0, position) + 1
    raise UserError(f"{path} is not a text CSV file: byte {position} (line {line}) is not "
                    "UTF-8 text. A CSV of an id, a label and 784 pixel values is expected.")


def _check_rows(raw: bytes, path: Path) -> np.ndarray:
    """Every row has exactly the header's fields; returns the data rows' line numbers."""
    rows = _quoted_rows(raw) if b'"' in raw else _plain_rows(raw)
    first = next(rows, None)
    if first is None:
        raise UserError(f"{path} is empty: a CSV needs a header line (label, pixel0 ... "
                        "pixel783) and one line per image.")
    _check_header(first[1], path)
    width = len(first[1])
    lines = []
    for number, fields in rows:
        if len(fields) != width:
            raise UserError(_width_problem(path, number, fields, width))
        lines.append(number)
    if not lines:
        raise UserError(f"{path} has a header but no data rows: it holds no image.")
    return np.asarray(lines)


def _plain_rows(raw: bytes) -> Iterator:
    """(line number, fields) per non-blank line, by counting commas (no quotes in the file).

    The header is split into its names; data rows are only counted, since a list of 785
    strings per row would cost more than the pandas parse itself.
    """
    start, number, header = 0, 1, True
    raw_len = len(raw)
    while start < raw_len:
        end = raw.find(b"\n", start)
        end = raw_len if end < 0 else end
        stop = end - 1 if end > start and raw[end - 1] == 13 else end
        if stop > start:
            if header:
                yield number, raw[start:stop].decode("utf-8").lstrip("\ufeff").split(",")
                header = False
            else:
                yield number, _Fields(raw, start, stop)
        start, number = end + 1, number + 1


class _Fields:
    """The fields of one unquoted line, counted without splitting it."""

    def __init__(self, raw: bytes, start: int, stop: int) -> None:
        self.count = raw.count(b",", start, stop) + 1
        self.trailing_comma = raw[stop - 1] == ord(",")

    def __len__(self) -> int:
        return self.count


def _quoted_rows(raw: bytes) -> Iterator:
    reader = csv.reader(io.StringIO(raw.decode("utf-8").lstrip("\ufeff")))
    header = True
    for row in reader:
        if not row:
            continue
        if header:
            yield reader.line_num, row
            header = False
        else:
            yield reader.line_num, row


SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "'|'"}


def _check_header(names: list[str], path: Path) -> None:
    if len(names) == 1:  # one column: another delimiter (a European spreadsheet's ';')?
        found = [word for sep, word in SEPARATORS.items() if sep in names[0]]
        if found:
            raise UserError(f"{path} line 1 (the header) is one column whose name holds "
                            f"{found[0]}: the file is separated by {found[0]}, not commas. A "
                            "CSV here separates its fields with commas (label,pixel0,...); save "
                            "or convert it with ',' as the delimiter.")
    for i, name in enumerate(names):
        if not name.strip():
            hint = " (the header line ends with a comma)" if i == len(names) - 1 else ""
            raise UserError(f"{path} line 1 (the header): column {i + 1} has no name{hint}.")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UserError(f"{path} line 1 (the header) names column '{name}' twice.")
        seen.add(name)


def _width_problem(path: Path, number: int, fields, width: int) -> str:
    count = len(fields)
    trailing = (fields.trailing_comma if isinstance(fields, _Fields)
                else bool(fields) and fields[-1] == "")
    if count > width and trailing:
        hint = "the line ends with a comma"
    elif count > width:
        hint = "an extra value, or a comma inside a value"
    else:
        hint = "a value is missing"
    return (f"{path} line {number} has {count} fields but the header has {width} ({hint}); "
            "every row must have exactly the header's fields.")


# --------------------------------------------------------------------------- columns


def _parse(raw: bytes, path: Path):
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(raw), header=0, index_col=False, low_memory=False,
                            encoding="utf-8-sig")
    except (ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"{path} is not a readable CSV file: {exc}") from exc
    return frame


def _pop_columns(frame, path: Path, label_column: str, id_column: str, require_labels: bool,
                 require_id: bool, option: str):
    columns = [str(c) for c in frame.columns]
    for name, flag, needed in ((label_column, "--label-column", require_labels),
                               (id_column, "--id-column", require_id)):
        if needed and name not in columns:
            why = ("a training CSV needs one, holding each image's class id" if
                   option == "--train-csv" else f"named with {flag}")
            shown = ", ".join(repr(c) for c in columns[:4])
            raise UserError(f"{path} has no '{name}' column ({why}); its columns are "
                            f"{shown}{', ...' if len(columns) > 4 else ''} "
                            f"({len(columns)} in all).")
    ids = frame.pop(id_column).to_numpy() if id_column in columns else None
    labels = frame.pop(label_column) if label_column in columns else None
    if frame.shape[1] != N_PIXELS:
        raise UserError(_pixel_count_problem(frame, path, label_column, id_column))
    _check_pixel_names(frame, path, label_column, id_column)
    return ids, labels


def _check_pixel_names(frame, path: Path, label_column: str, id_column: str) -> None:
    """784 columns left, but one named otherwise among pixelN ones (an id column named
    ``foo``): reading it as a pixel would shift the image and invent ids."""
    names = [str(c) for c in frame.columns]
    others = [c for c in names if not PIXEL_NAME.fullmatch(c)]
    if others and len(others) < len(names):
        raise UserError(
            f"{path} has a column {others[0]!r} that is not the id ('{id_column}'), the label "
            f"('{label_column}') nor a pixel (pixel0 ... pixel783). If it holds the ids or the "
            "labels, name it with --id-column or --label-column; otherwise remove it.")


def _pixel_count_problem(frame, path: Path, label_column: str, id_column: str) -> str:
    others = [str(c) for c in frame.columns if not PIXEL_NAME.fullmatch(str(c))]
    text = (f"{path} has {frame.shape[1]} pixel columns besides the id and label columns "
            f"('{id_column}', '{label_column}'); expected {N_PIXELS} (28x28).")
    if others:
        shown = ", ".join(repr(c) for c in others[:3])
        text += (f" Not named like a pixel (pixelN): {shown}; if that is the id or the label "
                 "column, name it with --id-column or --label-column.")
    return text


def _line(lines: np.ndarray, row: int) -> int:
    return int(lines[row])


def _checked_pixels(frame, path: Path, lines: np.ndarray) -> np.ndarray:
    import pandas as pd

    # Only columns pandas did not read as numbers need converting (a per-column to_numeric
    # over 784 columns would double the reading time of a 60,000-row file).
    text = [c for c, kind in frame.dtypes.items() if not pd.api.types.is_numeric_dtype(kind)]
    numeric = frame.assign(**{c: pd.to_numeric(frame[c], errors="coerce") for c in text})
    values = numeric.to_numpy(dtype=np.float64)
    bad = np.isnan(values) | (values < 0) | (values > 255)
    if bad.any():
        row, col = (int(v[0]) for v in np.nonzero(bad))
        raise UserError(
            f"{path} line {_line(lines, row)}, column '{frame.columns[col]}': "
            f"{_cell(frame.iat[row, col])} is not a pixel value (a number from 0 to 255)."
        )
    return values.round().astype(np.uint8)


def _checked_labels(labels, path: Path, lines: np.ndarray) -> np.ndarray:
    import pandas as pd

    numeric = pd.to_numeric(labels, errors="coerce")
    valid = numeric.notna() & numeric.isin(range(len(CLASS_NAMES)))
    if not valid.all():
        row = int(np.nonzero(~valid.to_numpy())[0][0])
        raise UserError(
            f"{path} line {_line(lines, row)}: label {_show(labels.iat[row])} is not a class "
            f"id (a whole number from 0 to {len(CLASS_NAMES) - 1})."
        )
    return numeric.to_numpy().astype(np.uint8)


def _show(value) -> str:
    """A cell as the user wrote it (numpy scalars print as np.int64(...) with repr)."""
    if isinstance(value, float | np.floating) and np.isnan(value):
        return "(empty)"
    return repr(value.item()) if isinstance(value, np.generic) else repr(value)


def _cell(value) -> str:
    shown = _show(value)
    return "an empty value" if shown == "(empty)" else f"value {shown}"
