"""Sinks: the results, summary and errors tables as Parquet (pyarrow) or CSV (stdlib), on the
local disk or on any pyarrow filesystem named by a URI (``s3://``, ``gs://``, ``file://``...).

Parquet and URIs need pyarrow (``pip install "emoar[ray]"`` or ``pip install pyarrow``); CSV to a
local path works everywhere.
"""

from __future__ import annotations

import csv
import io
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ERROR_COLUMNS",
    "SUMMARY_COLUMNS",
    "OutputError",
    "ParquetUnavailableError",
    "ResolvedOut",
    "TableWriter",
    "arrow_schema",
    "column_types",
    "is_uri",
    "resolve_out",
    "sibling_uri",
    "write_table",
]

SUMMARY_COLUMNS = (
    "source",
    "media",
    "chunks",
    "frames_analysed",
    "faces",
    "dominant_expression",
    "errors",
    "error",
)
ERROR_COLUMNS = ("source", "chunk", "error")

_INT = {"chunk", "frame", "track_id", "uncertain", "chunks", "frames_analysed", "faces", "errors"}
_STR = {"source", "media", "expression", "dominant_expression", "error"}


class ParquetUnavailableError(RuntimeError):
    """pyarrow is not installed."""


class OutputError(ValueError):
    """``--out`` names a filesystem that cannot be used (unknown scheme, no credentials,
    unreachable); the message says what to do."""


def column_types(columns: Sequence[str]) -> dict[str, str]:
    """Column -> ``int64`` / ``string`` / ``double`` (the Parquet schema; CSV is text)."""
    return {c: "int64" if c in _INT else "string" if c in _STR else "double" for c in columns}


def arrow_schema(columns: Sequence[str]) -> Any:
    """The pyarrow schema of a table with ``columns`` (:func:`column_types`)."""
    import pyarrow as pa

    types = column_types(columns)
    pa_type = {"int64": pa.int64(), "string": pa.string(), "double": pa.float64()}
    return pa.schema([pa.field(c, pa_type[types[c]]) for c in columns])


def table_format(path: str | os.PathLike[str]) -> str:
    """``"parquet"`` or ``"csv"`` from the file name (or the URI's last part).

    Raises:
        ValueError: another ending.
    """
    name = str(path)
    if is_uri(name):
        name = name.split("?", 1)[0]  # s3://bucket/r.parquet?region=...
    suf = Path(name.rstrip("/").rsplit("/", 1)[-1]).suffix.lower()
    if suf in (".parquet", ".pq"):
        return "parquet"
    if suf == ".csv":
        return "csv"
    raise ValueError(f"--out must end in .parquet or .csv, got '{path}'")


class TableWriter:
    """Rows appended in batches to a Parquet or CSV file (by its ending), through a temporary
    file renamed on :meth:`close`, so a crash never leaves half a table and memory holds at most
    ``row_group`` rows.

    Raises:
        ParquetUnavailableError: a ``.parquet`` path without pyarrow installed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        columns: Sequence[str],
        *,
        row_group: int = 65536,
        filesystem: Any = None,
    ) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        self.fmt = table_format(path)
        self._fs = filesystem  # a pyarrow filesystem (path is then its path, not a local one)
        self._tmp = str(path) + ".tmp"
        self._buf: list[Sequence[Any]] = []
        self._row_group = row_group
        self._csv: Any = None
        self._pq: Any = None
        self._stream: Any = None
        if self.fmt == "csv":
            if self._fs is None:
                self._f: Any = open(self._tmp, "w", newline="")  # noqa: SIM115 - closed in close()
            else:
                self._stream = self._fs.open_output_stream(self._tmp)
                self._f = io.TextIOWrapper(self._stream, newline="", encoding="utf-8")
            self._csv = csv.writer(self._f)
            self._csv.writerow(self.columns)
        else:
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError as e:
                raise ParquetUnavailableError(
                    "writing Parquet needs pyarrow: pip install pyarrow (or write --out results.csv)"
                ) from e
            self._schema = arrow_schema(self.columns)
            self._pa = pa
            sink: Any = self._tmp
            if self._fs is not None:
                sink = self._stream = self._fs.open_output_stream(self._tmp)
            self._pq = pq.ParquetWriter(sink, self._schema)

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        """Append rows (lists in ``columns`` order)."""
        if self._csv is not None:
            self._csv.writerows(["" if v is None else v for v in r] for r in rows)
            return
        self._buf.extend(rows)
        if len(self._buf) >= self._row_group:
            self._flush()

    def _flush(self) -> None:
        if self._pq is None or not self._buf:
            return
        pa = self._pa
        cols = list(zip(*self._buf, strict=True))
        arrays = [
            pa.array(list(v), type=self._schema.field(c).type)
            for c, v in zip(self.columns, cols, strict=True)
        ]
        self._pq.write_table(pa.Table.from_arrays(arrays, schema=self._schema))
        self._buf = []

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self._csv is not None:
            self._f.close()
        else:
            self._flush()
            self._pq.close()
            if self._stream is not None:
                self._stream.close()
        if self._fs is None:
            os.replace(self._tmp, self.path)
        else:
            self._fs.move(self._tmp, str(self.path))


def write_table(
    path: str | os.PathLike[str],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    filesystem: Any = None,
) -> None:
    """Write a whole table at once (see :class:`TableWriter`)."""
    w = TableWriter(path, columns, filesystem=filesystem)
    w.write(rows)
    w.close()


def sibling(out: str | os.PathLike[str], name: str) -> Path:
    """``results.parquet`` + ``summary`` -> ``results.summary.parquet``."""
    p = Path(out)
    return p.with_name(f"{p.stem}.{name}{p.suffix}")


def sibling_uri(out: str, name: str) -> str:
    """:func:`sibling` for a path or a URI, as a string (``s3://b/r.parquet`` ->
    ``s3://b/r.summary.parquet``)."""
    if not is_uri(out):
        return str(sibling(out, name))
    base, q, query = out.partition("?")
    head, _, tail = base.rstrip("/").rpartition("/")
    stem, dot, suffix = tail.rpartition(".")
    return (f"{head}/{stem}.{name}.{suffix}" if dot else f"{head}/{tail}.{name}") + q + query


def is_uri(out: str | os.PathLike[str]) -> bool:
    """Whether ``--out`` is a URI (``scheme://...``) rather than a local path."""
    return "://" in str(out)


_HINTS = {
    "s3": "set AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an "
    "instance role) and the bucket's region (AWS_DEFAULT_REGION, or ?region=... on the URI), and "
    "check that the bucket exists",
    "gs": "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file (or run `gcloud auth "
    "application-default login`) and check that the bucket exists",
    "hdfs": "HDFS needs a Java runtime and Hadoop client libraries (JAVA_HOME, HADOOP_HOME, CLASSPATH)",
    "abfs": "set AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (or another Azure credential)",
}


@dataclass(frozen=True)
class ResolvedOut:
    """Where ``--out`` lives.

    Attributes:
        uri: ``--out`` as given.
        filesystem: the pyarrow filesystem (None: a plain local path, no pyarrow needed).
        path: the path on that filesystem (a local path for ``file://`` and plain paths).
        local: True for plain paths and ``file://`` URIs (the manifest and ``--resume`` work).
    """

    uri: str
    filesystem: Any
    path: str
    local: bool


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def resolve_out(out: str, *, check_seconds: float = 20.0) -> ResolvedOut:
    """Resolve ``--out`` to a filesystem and path, and check that its folder can be reached.

    A plain path needs nothing; a URI needs pyarrow and is checked by listing its parent folder
    (at most ``check_seconds``), so missing credentials or an unreachable service fail before any
    analysis.

    Raises:
        OutputError: an unknown scheme, missing credentials, an unreachable filesystem (the
            message says what to do).
        ParquetUnavailableError: a URI without pyarrow installed.
    """
    if not is_uri(out):
        return ResolvedOut(out, None, str(out), True)
    scheme = out.split("://", 1)[0].lower()
    hint = _HINTS.get(scheme, "")
    try:
        import pyarrow.fs as pafs
    except ImportError as e:
        raise ParquetUnavailableError("writing to a URI needs pyarrow: pip install pyarrow") from e
    try:
        fs, path = pafs.FileSystem.from_uri(out)
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
        msg = _first_line(e)
        if "Unrecognized filesystem type" in msg:
            raise OutputError(
                f"--out '{out}': unknown filesystem '{scheme}://'. Use a local path, file://, s3://, "
                "gs://, hdfs:// or abfs:// (any pyarrow filesystem URI)"
            ) from e
        raise OutputError(
            f"--out '{out}': cannot open the filesystem ({msg})" + (f"; {hint}" if hint else "")
        ) from e
    local = isinstance(fs, pafs.LocalFileSystem)
    if not local:
        parent = path.rstrip("/").rpartition("/")[0] or path
        result: list[Any] = []

        def probe() -> None:
            try:
                result.append(fs.get_file_info(parent))
            except Exception as e:  # noqa: BLE001
                result.append(e)

        th = threading.Thread(target=probe, daemon=True)
        th.start()
        th.join(check_seconds)
        if not result:
            raise OutputError(
                f"--out '{out}': no answer from the filesystem within {check_seconds:.0f} s; check the "
                "network" + (f", and {hint}" if hint else "")
            )
        if isinstance(result[0], BaseException):
            raise OutputError(
                f"--out '{out}': cannot reach the filesystem ({_first_line(result[0])})"
                + (f"; {hint}" if hint else "")
            ) from result[0]
    return ResolvedOut(out, fs, path, local)
