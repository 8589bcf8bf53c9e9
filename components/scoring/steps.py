"""Score a customer file in chunks and rank the customers by the value of a call.

    read (CSV or Parquet, streamed with pyarrow) -> validate each chunk against
    the data contract (duplicate ids caught across chunks) -> score accepted rows
    with the bundle's `ChurnModel` -> reasons, best suggestion and its what-if
    -> expected value of a call -> rank

Expected value of contacting a customer, with the `economics` section (the
per-customer form of `components.training.evaluate.expected_profit`, the
label replaced by the churn probability):

    expected_value = churn_probability * offer_acceptance * customer_value - offer_cost

Rejected cells are written exactly as validation reports them (row is the
1-based data row of the whole file, customerID, column, value, reason,
detail). Duplicate ids reject every copy, across chunks too: a copy seen in
an earlier chunk is removed from the list at the end.
"""

from __future__ import annotations

import io
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn_components.data.validate import (
    DUPLICATE_ID,
    REASONS,
    REJECTED_COLUMNS,
    validate_frame,
)
from churn_core.config import EconomicsConfig, ExplainerConfig
from churn_core.errors import DataContractError
from churn_model.checks import check_request_columns
from churn_model.contract import FEATURE_NAMES, ID_COLUMN

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 100_000
TOP_REASONS = 3
LIST_COLUMNS = (
    ID_COLUMN,
    "churn_probability",
    "churn",
    "reasons",
    "suggestion",
    "what_if_probability",
    "expected_value",
    "rank",
)
# kept beside the list for the summary (not written)
SUMMARY_ATTRIBUTES = ("Contract", "tenure", "InternetService")


# -- reading ---------------------------------------------------------------------


class BlobStream(io.RawIOBase):
    """A blob read front to back through the SDK's chunked download, never held whole.

    The sha256 recorded on the blob is checked once the last byte is read.
    """

    def __init__(self, store: Any, name: str) -> None:
        import hashlib

        self._download = store.open_read(name)
        self._chunks = iter(self._download.chunks())
        self._pending = memoryview(b"")
        self._hash = hashlib.sha256()
        self._uri = store.uri(name)
        self._recorded = (self._download.properties.metadata or {}).get("sha256")

    def readable(self) -> bool:  # noqa: D102
        return True

    def readinto(self, buffer: Any) -> int:  # noqa: D102
        while not self._pending:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._verify()
                return 0
            self._hash.update(chunk)
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _verify(self) -> None:
        from churn_core.errors import StoreError

        actual = self._hash.hexdigest()
        if self._recorded and self._recorded != actual:
            raise StoreError(
                f"cannot read {self._uri}: content sha256 {actual} does not match the "
                f"recorded {self._recorded}"
            )
        self._recorded = None  # checked once


class BlobRangeFile(io.RawIOBase):
    """A seekable view of a blob by ranged downloads (Parquet reads its footer, then groups)."""

    def __init__(self, store: Any, name: str, block: int = 4 << 20) -> None:
        self._store, self._name, self._block = store, name, block
        first = store.open_read(name, 0, 1).properties  # "bytes 0-0/<size>"; size: the range
        self._size = int(str(first.content_range).rpartition("/")[2])
        self._pos = 0
        self._cache: tuple[int, bytes] = (0, b"")

    def readable(self) -> bool:  # noqa: D102
        return True

    def seekable(self) -> bool:  # noqa: D102
        return True

    def tell(self) -> int:  # noqa: D102
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:  # noqa: D102
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:  # noqa: D102
        if self._pos >= self._size:
            return 0
        start, data = self._cache
        if not start <= self._pos < start + len(data):
            length = min(max(len(buffer), self._block), self._size - self._pos)
            data = self._store.open_read(self._name, self._pos, length).readall()
            start = self._pos
            self._cache = (start, data)
        piece = data[self._pos - start : self._pos - start + len(buffer)]
        buffer[: len(piece)] = piece
        self._pos += len(piece)
        return len(piece)


def _source(uri: str, connection_string: str) -> Any:
    """A local path, or a stream over a remote file (blobs piece by piece; https read whole)."""
    from churn_core.store import is_blob_uri, open_store, read_uri

    if is_blob_uri(uri):
        head, _, name = uri.rstrip("/").rpartition("/")
        store = open_store(head, connection_string or None)
        if _is_parquet(uri):
            return io.BufferedReader(BlobRangeFile(store, name))
        return io.BufferedReader(BlobStream(store, name), buffer_size=1 << 20)
    if uri.startswith(("http://", "https://")):
        import pyarrow as pa

        return pa.BufferReader(read_uri(uri, connection_string or None))
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
    if not path.is_file():
        raise DataContractError(f"customer file {uri} does not exist")
    return str(path)


def _is_parquet(uri: str) -> bool:
    return uri.lower().split("?", 1)[0].endswith((".parquet", ".pq"))


def _as_text(batch: Any) -> pd.DataFrame:
    """A record batch as a frame of strings (null -> ''), as validation reads a CSV."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        text = column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
        out[name] = pc.fill_null(text, "").to_numpy(zero_copy_only=False).astype(object)
    return pd.DataFrame(out)


def _batches(uri: str, connection_string: str) -> Iterator[Any]:
    """The file's record batches, every column as text (CSV) or as stored (Parquet)."""
    import pyarrow as pa

    if _is_parquet(uri):
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(_source(uri, connection_string)).iter_batches(
            batch_size=DEFAULT_CHUNK_ROWS
        )
        return
    import csv

    import pyarrow.csv as pacsv

    source = _source(uri, connection_string)
    stream = open(source, "rb") if isinstance(source, str) else source  # noqa: SIM115
    with stream:
        # the header from the stream itself: every column then read as text, in one pass
        header = stream.readline().decode("utf-8-sig")
        names = next(csv.reader([header]), [])
        if not names:
            return
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=1 << 22, column_names=names),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        yield from reader


def read_chunks(
    uri: str,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    connection_string: str = "",
    *,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[pd.DataFrame]:
    """Frames of strings, `chunk_rows` at most each (CSV or Parquet; never the whole table).

    Only data rows ``start <= row < stop`` (0-based) are converted and
    yielded; with `start` a multiple of `chunk_rows` the chunks are the very
    chunks a read from the top gives (a shard validates as the whole file does).

    Raises:
        DataContractError: no such file, or one pyarrow cannot parse.
    """
    import pyarrow as pa

    position = 0  # data row index of the next batch's first row
    pending: list[pd.DataFrame] = []
    size = 0
    try:
        for batch in _batches(uri, connection_string):
            lo, hi = max(start - position, 0), batch.num_rows
            if stop is not None:
                hi = min(hi, stop - position)
            position += batch.num_rows
            if hi <= lo:
                if stop is not None and position >= stop:
                    break
                continue
            pending.append(_as_text(batch.slice(lo, hi - lo)))
            size += hi - lo
            while size >= chunk_rows:
                frame = pd.concat(pending, ignore_index=True)
                yield frame.iloc[:chunk_rows].reset_index(drop=True)
                rest = frame.iloc[chunk_rows:].reset_index(drop=True)
                pending, size = ([rest], len(rest)) if len(rest) else ([], 0)
            if stop is not None and position >= stop:
                break
        if size:
            yield pd.concat(pending, ignore_index=True)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataContractError(f"{uri}: not a readable CSV/Parquet file: {err}") from err


def count_rows(uri: str, connection_string: str = "") -> int:
    """Data rows of a customer file (Parquet: from its footer; CSV: one streamed pass)."""
    import pyarrow as pa

    try:
        if _is_parquet(uri):
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(_source(uri, connection_string)).metadata.num_rows)
        return sum(batch.num_rows for batch in _batches(uri, connection_string))
    except (pa.ArrowInvalid, OSError) as err:
        raise DataContractError(f"{uri}: not a readable CSV/Parquet file: {err}") from err


# -- scoring ---------------------------------------------------------------------


@dataclass
class Scorer:
    """The bundle's model, threshold and explainer, as the server builds them."""

    model: Any
    threshold: float
    explainer: Any
    metadata: dict[str, Any]


def load_scorer(bundle_dir: str | Path, explainer_config: ExplainerConfig | None) -> Scorer:
    """Load a bundle folder like the server: the model, its threshold, the explainer."""
    from churn_model.bundle import load_model
    from churn_model.explain import Explainer, load_background
    from churn_model.trees import accelerate

    model, meta = load_model(bundle_dir)
    background = load_background(bundle_dir, meta)
    if background is not None:
        accelerate(model, background)
    booster = getattr(model.estimator, "booster", None)
    if booster is not None:
        # TreeSHAP (pred_contribs) is the costly part of a large batch: use every core
        booster.set_param({"nthread": os.cpu_count() or 1})
    threshold = float(meta.get("threshold", getattr(model, "threshold", 0.5)))
    explainer = Explainer(model, threshold, background=background, config=explainer_config)
    return Scorer(model=model, threshold=threshold, explainer=explainer, metadata=meta)


def fetch_bundle(uri: str, dst: Path, connection_string: str, tracking_uri: str) -> Path:
    """A local folder holding the bundle named by `uri` (folder, blob URI or ``models:/``)."""
    from churn_core.errors import NotFound
    from churn_core.store import is_blob_uri, open_store

    if uri.startswith("models:/"):
        from churn_model.registry import download_bundle

        return download_bundle(uri, dst, tracking_uri=tracking_uri)
    if is_blob_uri(uri):
        return open_store(uri, connection_string).get_dir("", dst / "bundle")
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
    if not path.is_dir():
        raise NotFound(f"model bundle {uri} does not exist (no such folder)")
    return path


def plan_shards(rows: int, shard_rows: int, chunk_rows: int) -> list[dict[str, int]]:
    """Row ranges ``{"shard", "start", "stop"}`` covering `rows` data rows.

    Each shard is a whole number of chunks (`shard_rows` rounded up to a
    multiple of `chunk_rows`), so a shard validates exactly the chunks a
    single `churn score --chunk-rows` run does; an empty file is one empty shard.

    Raises:
        InvalidInput: a size below 1.
    """
    from churn_core.errors import InvalidInput

    if shard_rows < 1 or chunk_rows < 1:
        raise InvalidInput(f"shard_rows ({shard_rows}) and chunk_rows ({chunk_rows}) must be >= 1")
    size = -(-shard_rows // chunk_rows) * chunk_rows
    starts = range(0, max(rows, 1), size)
    return [
        {"shard": k, "start": start, "stop": min(start + size, rows)}
        for k, start in enumerate(starts)
    ]


def write_shard(shard: ShardScores, scores_path: str | Path, rejected_path: str | Path) -> dict:
    """A shard's scores and rejected cells as Parquet; the metadata `read_shard` needs back."""
    shard.scores.to_parquet(scores_path, index=False)
    rejected = shard.rejected.astype({"value": str, "detail": str})
    rejected.to_parquet(rejected_path, index=False)
    return {
        "rows": shard.rows,
        "scored_rows": len(shard.scores),
        "rejected_cells": len(shard.rejected),
        "threshold": shard.threshold,
        "model": shard.model,
    }


def read_shard(scores_path: str | Path, rejected_path: str | Path, meta: dict) -> ShardScores:
    """A shard written by `write_shard`."""
    return ShardScores(
        scores=pd.read_parquet(scores_path),
        rejected=pd.read_parquet(rejected_path),
        rows=int(meta["rows"]),
        threshold=float(meta["threshold"]),
        model=dict(meta["model"]),
    )


def columns_of(accepted: pd.DataFrame) -> dict[str, np.ndarray]:
    """The accepted typed rows as checked request columns (what the server scores)."""
    cols = {name: accepted[name].to_numpy() for name in FEATURE_NAMES}
    check_request_columns(cols)
    return cols


def expected_value(p: np.ndarray, econ: EconomicsConfig) -> np.ndarray:
    """P * offer_acceptance * customer_value - offer_cost, per customer."""
    return np.asarray(p, dtype=np.float64) * econ.offer_acceptance * econ.customer_value - (
        econ.offer_cost
    )


def score_columns(
    scorer: Scorer,
    cols: dict[str, np.ndarray],
    econ: EconomicsConfig,
    *,
    reasons: bool = True,
    attributed: Any = None,
) -> pd.DataFrame:
    """One row per customer: probability, decision, reasons, suggestion, what-if, EV.

    `attributed`: the explainer's `attribute(cols)`, when computed ahead (in a thread).
    """
    n = len(cols[FEATURE_NAMES[0]])
    if reasons:
        exp = scorer.explainer.explain_batch(cols, attributed)
        p = np.asarray(exp.probability, dtype=np.float64)
        texts = exp.texts(TOP_REASONS)
        # the suggestion whose what-if lowers the probability the most
        suggestions, what_ifs = exp.best_offers()
    else:
        p = np.asarray(scorer.model.predict_proba_columns(cols), dtype=np.float64)
        texts, suggestions, what_ifs = [""] * n, [""] * n, np.full(n, np.nan)
    return pd.DataFrame(
        {
            "churn_probability": p,
            "churn": p >= scorer.threshold,
            "reasons": texts,
            "suggestion": suggestions,
            "what_if_probability": what_ifs,
            "expected_value": expected_value(p, econ),
        }
    )


# -- the whole file ----------------------------------------------------------------


@dataclass
class ScoringResult:
    """The ranked list, the rejected cells and the report."""

    scores: pd.DataFrame  # LIST_COLUMNS + SUMMARY_ATTRIBUTES, ranked
    rejected: pd.DataFrame  # REJECTED_COLUMNS
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class ShardScores:
    """Scores of a row range, before duplicates across the file are settled and ranking.

    `scores` holds every row validation accepted (LIST_COLUMNS but rank,
    SUMMARY_ATTRIBUTES and `_row`, the 1-based file row); an id may still
    appear in another chunk or shard: `finish` rejects every copy.
    """

    scores: pd.DataFrame
    rejected: pd.DataFrame  # REJECTED_COLUMNS, rows of the whole file
    rows: int  # data rows read
    threshold: float
    model: dict[str, Any]


def score_rows(
    uri: str,
    scorer: Scorer,
    econ: EconomicsConfig,
    *,
    start: int = 0,
    stop: int | None = None,
    reasons: bool = True,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    batch_rows: int = 20_000,
    connection_string: str = "",
    progress: Callable[[int], None] | None = None,
) -> ShardScores:
    """Validate and score data rows ``start <= row < stop`` of a customer file, chunk by chunk.

    Raises:
        DataContractError: a header breaking the contract, or an unreadable file.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    parts: list[pd.DataFrame] = []
    rejected: list[pd.DataFrame] = []
    total = 0
    # The attributions (TreeSHAP: native code, no GIL) of a batch run in a thread while
    # the previous batch's reasons are written and the next chunk is read and validated.
    ahead: deque[tuple[pd.DataFrame, dict[str, np.ndarray], np.ndarray, Future[Any] | None]]
    ahead = deque()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="attributions")

    def done(part: pd.DataFrame, cols: dict, rows: np.ndarray, future: Future | None) -> None:
        attributed = future.result() if future is not None else None
        scored = score_columns(scorer, cols, econ, reasons=reasons, attributed=attributed)
        scored.insert(0, ID_COLUMN, part[ID_COLUMN].to_numpy())
        for name in SUMMARY_ATTRIBUTES:
            scored[name] = part[name].to_numpy()
        scored["_row"] = rows
        parts.append(scored)
        if progress is not None:
            progress(len(part))

    try:
        chunks = read_chunks(uri, chunk_rows, connection_string, start=start, stop=stop)
        for chunk_no, raw in enumerate(chunks, start=start // max(chunk_rows, 1)):
            source = f"{uri} (chunk {chunk_no + 1})"
            result = validate_frame(raw, source, label_optional=True)
            offset = start + total
            total += len(raw)
            rej = result.rejected.copy()
            rej["row"] = rej["row"] + offset
            rejected.append(rej)
            accepted = result.accepted
            # accepted rows of this chunk: their 1-based file rows
            rows = np.setdiff1d(np.arange(1, len(raw) + 1), result.rejected["row"].to_numpy())
            rows = rows + offset
            for first in range(0, len(accepted), batch_rows):
                part = accepted.iloc[first : first + batch_rows]
                cols = columns_of(part)
                future = pool.submit(scorer.explainer.attribute, cols) if reasons else None
                ahead.append((part, cols, rows[first : first + batch_rows], future))
                while len(ahead) > 1:
                    done(*ahead.popleft())
            if progress is not None and len(raw) > len(accepted):
                progress(len(raw) - len(accepted))
        while ahead:
            done(*ahead.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    model = {k: scorer.metadata.get(k) for k in ("name", "version", "kind", "synthetic")}
    return ShardScores(
        scores=pd.concat(parts, ignore_index=True) if parts else _empty_scores(),
        rejected=_sorted_rejected(rejected),
        rows=total,
        threshold=scorer.threshold,
        model=model,
    )


def finish(
    uri: str, shards: list[ShardScores], *, max_rejected_share: float | None
) -> ScoringResult:
    """Settle duplicate ids across chunks and shards, rank, report, check the rejected share.

    An id on several accepted rows rejects every copy: the first as "id also
    on a later row", the others naming the first's row.

    Raises:
        DataContractError: no data rows, or a rejected share above `max_rejected_share`
            (the message names the reasons; None: not checked here, see `check_share`).
    """
    total = sum(s.rows for s in shards)
    if total == 0:
        raise DataContractError(f"{uri}: the file has no data rows")
    nonempty = [s.scores for s in shards if len(s.scores)]
    scores = pd.concat(nonempty, ignore_index=True) if nonempty else _empty_scores()
    rejected = [s.rejected for s in shards]
    repeated = scores[ID_COLUMN].duplicated(keep=False)
    if repeated.any():
        copies = scores.loc[repeated, [ID_COLUMN, "_row"]].sort_values("_row", kind="stable")
        first = copies.groupby(ID_COLUMN, sort=False)["_row"].transform("min")
        detail = np.where(
            copies["_row"] == first,
            "id also on a later row",
            "id also on row(s) " + first.astype(str),
        )
        rejected.append(
            _dup_rows(
                list(
                    zip(
                        copies["_row"].astype(int).tolist(),
                        copies[ID_COLUMN].tolist(),
                        detail.tolist(),
                        strict=True,
                    )
                )
            )
        )
        scores = scores[~repeated]
    scores = rank(scores.drop(columns="_row"))
    rejected_table = _sorted_rejected(rejected)
    report = _report(uri, total, len(scores), rejected_table, shards[0].threshold, shards[0].model)
    result = ScoringResult(scores=scores, rejected=rejected_table, report=report)
    if max_rejected_share is not None:
        check_share(result, max_rejected_share)
    return result


def check_share(result: ScoringResult, max_rejected_share: float) -> None:
    """Fail when more than `max_rejected_share` of the rows were rejected.

    Raises:
        DataContractError: naming the counts and the reasons.
    """
    report = result.report
    share = report["rejected_share"]
    if share > max_rejected_share:
        counts = ", ".join(f"{k} {v}" for k, v in report["reasons"].items() if v)
        raise DataContractError(
            f"{report['source']}: {report['rejected_rows']} of {report['input_rows']} rows "
            f"rejected (share {share:.4f} > limit {max_rejected_share}); reasons: {counts}; "
            "see the rejected-rows table",
        )


def score_file(
    uri: str,
    scorer: Scorer,
    econ: EconomicsConfig,
    *,
    max_rejected_share: float,
    reasons: bool = True,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    batch_rows: int = 20_000,
    connection_string: str = "",
    progress: Callable[[int], None] | None = None,
) -> ScoringResult:
    """Validate and score a customer file chunk by chunk; rank by expected value.

    Raises:
        DataContractError: a header breaking the contract, an unreadable file, or
            a rejected share above `max_rejected_share` (the report names the reasons).
    """
    shard = score_rows(
        uri,
        scorer,
        econ,
        reasons=reasons,
        chunk_rows=chunk_rows,
        batch_rows=batch_rows,
        connection_string=connection_string,
        progress=progress,
    )
    return finish(uri, [shard], max_rejected_share=max_rejected_share)


def rank(scores: pd.DataFrame) -> pd.DataFrame:
    """Sorted by expected value (ties: higher probability, then id); rank 1 = call first."""
    out = scores.sort_values(
        ["expected_value", "churn_probability", ID_COLUMN],
        ascending=[False, False, True],
        kind="stable",
    ).reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1, dtype=np.int64)
    return out


def _empty_scores() -> pd.DataFrame:
    cols = [c for c in LIST_COLUMNS if c != "rank"] + list(SUMMARY_ATTRIBUTES) + ["_row"]
    return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})


def _dup_rows(rows: list[tuple[int, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": [r for r, _, _ in rows],
            ID_COLUMN: [c for _, c, _ in rows],
            "column": ID_COLUMN,
            "value": [c for _, c, _ in rows],
            "reason": DUPLICATE_ID,
            "detail": [d for _, _, d in rows],
        }
    )


def _sorted_rejected(parts: list[pd.DataFrame]) -> pd.DataFrame:
    nonempty = [p for p in parts if len(p)]
    if not nonempty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in REJECTED_COLUMNS})
    table = pd.concat(nonempty, ignore_index=True)
    return table.sort_values("row", kind="stable").reset_index(drop=True)[list(REJECTED_COLUMNS)]


def _report(
    uri: str,
    total: int,
    accepted: int,
    rejected: pd.DataFrame,
    threshold: float,
    model: dict[str, Any],
) -> dict[str, Any]:
    reasons = {r: 0 for r in REASONS}
    if len(rejected):
        for reason, count in rejected.groupby("reason")["row"].nunique().items():
            reasons[str(reason)] = int(count)
    rejected_rows = int(rejected["row"].nunique()) if len(rejected) else 0
    return {
        "source": uri,
        "input_rows": total,
        "accepted_rows": accepted,
        "rejected_rows": rejected_rows,
        "rejected_share": rejected_rows / total if total else 0.0,
        "rejected_cells": len(rejected),
        "reasons": reasons,
        "threshold": threshold,
        "model": dict(model),
    }


# -- writing -----------------------------------------------------------------------


def write_outputs(result: ScoringResult, out: str | Path) -> dict[str, Path]:
    """The list as Parquet and CSV (`out` with either suffix), the rejected cells, the report."""
    import json

    base = Path(out)
    base = base.with_suffix("") if base.suffix in (".parquet", ".csv") else base
    base.parent.mkdir(parents=True, exist_ok=True)
    table = result.scores[list(LIST_COLUMNS)]
    paths: dict[str, Path] = {
        "parquet": base.with_suffix(".parquet"),
        "csv": base.with_suffix(".csv"),
        "rejected": base.parent / f"{base.name}.rejected.csv",
        "report": base.parent / f"{base.name}.report.json",
    }
    table.to_parquet(paths["parquet"], index=False)
    table.to_csv(paths["csv"], index=False)
    result.rejected.to_csv(paths["rejected"], index=False)
    buf = io.StringIO()
    json.dump(result.report, buf, indent=2, default=str)
    paths["report"].write_text(buf.getvalue() + "\n")
    return paths


def publish(
    store_uri: str, files: dict[str, str | Path], metadata: dict[str, Any], connection_string: str
) -> str:
    """Copy the list's files to the artifact store under ``scoring/<digest[:16]>/``.

    Content-addressed like the data stages' snapshots; ``metadata.json``
    (each file's URI and sha256) goes last. Returns the prefix's URI.
    """
    import json

    from churn_core.io import sha256_bytes, sha256_file
    from churn_core.store import open_store

    manifest = "".join(f"{name}:{sha256_file(path)}\n" for name, path in sorted(files.items()))
    prefix = f"scoring/{sha256_bytes(manifest.encode())[:16]}"
    store = open_store(store_uri, connection_string)
    uris = {}
    for name, path in files.items():
        digest = store.put_file(path, f"{prefix}/{name}")
        uris[name] = {"uri": store.uri(f"{prefix}/{name}"), "sha256": digest}
    body = {**metadata, "files": uris}
    store.put_bytes(f"{prefix}/metadata.json", json.dumps(body, indent=2, default=str).encode())
    return store.uri(prefix)
