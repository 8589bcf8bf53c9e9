"""Score a customer file in chunks and rank the customers by the value of a call.

    read (CSV or Parquet, streamed with pyarrow) -> validate each chunk against
    the data contract (duplicate ids caught across chunks) -> score accepted rows
    with the bundle's `ChurnModel` -> reasons, best suggestion and its what-if
    -> expected value of a call -> rank

The chunks may be scored in worker processes (`score_parts`: chunk c in
worker c mod N); where the file comes from is `sources`.

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
from typing import Any, cast

import numpy as np
import pandas as pd

from churn_components.data.validate import (
    DUPLICATE_ID,
    REASONS,
    REJECTED_COLUMNS,
    validate_frame,
)
from churn_components.scoring.sources import is_parquet, is_remote, open_source, spool
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


def _as_text(batch: Any) -> pd.DataFrame:
    """A record batch as a frame of strings (null -> ''), as validation reads a CSV."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        text = column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
        out[name] = pc.fill_null(text, "").to_numpy(zero_copy_only=False).astype(object)
    return pd.DataFrame(out)


def _batches(
    uri: str, connection_string: str, wanted: Callable[[int, int], bool] | None = None
) -> Iterator[tuple[int, Any]]:
    """(first data row, record batch): every column as text (CSV) or as stored (Parquet).

    `wanted(lo, hi)` says whether any of the data rows ``lo <= row < hi`` is
    needed: Parquet row groups holding none are never read or decoded (a CSV
    is parsed throughout: pyarrow needs ~0.5 s per million rows).
    """
    import pyarrow as pa

    if is_parquet(uri):
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(open_source(uri, connection_string))
        position = 0
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            if wanted is None or wanted(position, position + rows):
                first = position
                for batch in parquet.iter_batches(
                    batch_size=DEFAULT_CHUNK_ROWS, row_groups=[group]
                ):
                    yield first, batch
                    first += batch.num_rows
            position += rows
        return
    import csv

    import pyarrow.csv as pacsv

    source = open_source(uri, connection_string)
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
        position = 0
        for batch in reader:
            yield position, batch
            position += batch.num_rows


@dataclass(frozen=True)
class Part:
    """Which chunks of a row range a reader takes: chunk c when ``c % of == index``.

    Chunks are counted from the range's `start` in `chunk_rows` steps, so every
    part cuts the rows exactly where a whole read does and validates the same chunks.
    """

    index: int = 0
    of: int = 1

    def takes(self, chunk: int) -> bool:  # noqa: D102
        return chunk % self.of == self.index

    def touches(self, first: int, last: int) -> bool:
        """Whether any chunk ``first..last`` (inclusive) is this part's."""
        return last - first + 1 >= self.of or any(self.takes(c) for c in range(first, last + 1))


WHOLE = Part()


def read_chunks_at(
    uri: str,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    connection_string: str = "",
    *,
    start: int = 0,
    stop: int | None = None,
    part: Part = WHOLE,
) -> Iterator[tuple[int, pd.DataFrame]]:
    """(first data row, frame of strings) per chunk of ``start <= row < stop`` taken by `part`.

    Chunks are `chunk_rows` rows from `start` (the last may be shorter); only
    the rows of taken chunks are converted, and a Parquet file's row groups
    holding none of them are skipped unread. With `start` a multiple of
    `chunk_rows` the chunks are the very chunks a read from the top gives (a
    shard validates as the whole file does).

    Raises:
        DataContractError: no such file, or one pyarrow cannot parse.
    """
    import pyarrow as pa

    if chunk_rows < 1:
        from churn_core.errors import InvalidInput

        raise InvalidInput(f"chunk_rows must be >= 1, not {chunk_rows}")

    def chunk_of(row: int) -> int:
        return (row - start) // chunk_rows

    def wanted(lo: int, hi: int) -> bool:
        lo, hi = max(lo, start), hi if stop is None else min(hi, stop)
        return hi > lo and part.touches(chunk_of(lo), chunk_of(hi - 1))

    pending: list[pd.DataFrame] = []
    first_row = start
    try:
        for position, batch in _batches(uri, connection_string, wanted):
            end = position + batch.num_rows
            end = end if stop is None else min(end, stop)
            row = max(position, start)
            while row < end:
                chunk = chunk_of(row)
                chunk_end = start + (chunk + 1) * chunk_rows
                upto = min(end, chunk_end)
                if part.takes(chunk):
                    if not pending:
                        first_row = row
                    pending.append(_as_text(batch.slice(row - position, upto - row)))
                    if upto == chunk_end:
                        yield first_row, pd.concat(pending, ignore_index=True)
                        pending = []
                row = upto
            if stop is not None and position + batch.num_rows >= stop:
                break
        if pending:
            yield first_row, pd.concat(pending, ignore_index=True)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataContractError(f"{uri}: not a readable CSV/Parquet file: {err}") from err


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
    yielded (see `read_chunks_at`).

    Raises:
        DataContractError: no such file, or one pyarrow cannot parse.
    """
    for _, frame in read_chunks_at(uri, chunk_rows, connection_string, start=start, stop=stop):
        yield frame


def count_rows(uri: str, connection_string: str = "") -> int:
    """Data rows of a customer file (Parquet: from its footer; CSV: one streamed pass)."""
    import pyarrow as pa

    try:
        if is_parquet(uri):
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(open_source(uri, connection_string)).metadata.num_rows)
        return sum(batch.num_rows for _, batch in _batches(uri, connection_string))
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
    bundle_dir: Path  # where it was loaded from: worker processes load it again
    explainer_config: ExplainerConfig | None = None


def load_scorer(
    bundle_dir: str | Path, explainer_config: ExplainerConfig | None, *, threads: int = 1
) -> Scorer:
    """Load a bundle folder like the server: the model, its threshold, the explainer.

    `threads`: XGBoost's OpenMP threads for TreeSHAP. One by default: a batch's
    TreeSHAP already runs beside the main thread's work (`score_rows`), and
    more threads spin on the core the main thread needs (`score_rows` over
    1,000,000 customers in one process on 2 cores: 61 CPU s and 46 s with one
    thread; the whole `churn score` run had taken 107 CPU s and 69 s with two);
    more cores are used by worker processes (`score_file(workers=)`).
    """
    from churn_model.bundle import load_model
    from churn_model.explain import Explainer, load_background
    from churn_model.trees import accelerate

    model, meta = load_model(bundle_dir)
    background = load_background(bundle_dir, meta)
    if background is not None:
        accelerate(model, background)
    booster = getattr(model.estimator, "booster", None)
    if booster is not None:
        booster.set_param({"nthread": max(int(threads), 1)})
    threshold = float(meta.get("threshold", getattr(model, "threshold", 0.5)))
    explainer = Explainer(model, threshold, background=background, config=explainer_config)
    return Scorer(
        model=model,
        threshold=threshold,
        explainer=explainer,
        metadata=meta,
        bundle_dir=Path(bundle_dir),
        explainer_config=explainer_config,
    )


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
    part: Part = WHOLE,
    reasons: bool = True,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    batch_rows: int = 20_000,
    connection_string: str = "",
    progress: Callable[[int], None] | None = None,
) -> ShardScores:
    """Validate and score the chunks of data rows ``start <= row < stop`` that `part` takes.

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
        chunks = read_chunks_at(
            uri, chunk_rows, connection_string, start=start, stop=stop, part=part
        )
        for offset, raw in chunks:
            source = f"{uri} (chunk {offset // max(chunk_rows, 1) + 1})"
            result = validate_frame(raw, source, label_optional=True)
            total += len(raw)
            rej = result.rejected.copy()
            rej["row"] = rej["row"] + offset
            rejected.append(rej)
            accepted = result.accepted
            # accepted rows of this chunk: their 1-based file rows
            rows = np.setdiff1d(np.arange(1, len(raw) + 1), result.rejected["row"].to_numpy())
            rows = rows + offset
            for first in range(0, len(accepted), batch_rows):
                batch = accepted.iloc[first : first + batch_rows]
                cols = columns_of(batch)
                future = pool.submit(scorer.explainer.attribute, cols) if reasons else None
                ahead.append((batch, cols, rows[first : first + batch_rows], future))
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


def score_parts(
    uri: str,
    scorer: Scorer,
    econ: EconomicsConfig,
    *,
    workers: int,
    start: int = 0,
    stop: int | None = None,
    progress: Callable[[int], None] | None = None,
    **options: Any,
) -> list[ShardScores]:
    """`score_rows` over ``start..stop`` in `workers` processes, chunk c in worker ``c % workers``.

    Each worker loads the scorer's bundle folder again (processes are
    spawned: a forked XGBoost/OpenMP runtime is not safe to use) and reads the
    file itself: a CSV is parsed by every worker but converted, validated
    and scored only in its own chunks; a Parquet file's other row groups are
    skipped. A remote CSV is first copied to a temporary file as it arrives
    (downloaded once, not once per worker). With one worker, `score_rows` in
    this process. `options`: those of `score_rows` (reasons, chunk_rows,
    batch_rows, connection_string).

    Raises:
        DataContractError: as `score_rows`, from whichever worker met it.
        ScoringWorkerError: a worker process died (killed, out of memory).
    """
    if workers <= 1:
        return [score_rows(uri, scorer, econ, start=start, stop=stop, progress=progress, **options)]
    if is_remote(uri) and not is_parquet(uri):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="churn-score-input-") as tmp:
            local = spool(uri, Path(tmp) / "customers.csv", options.get("connection_string", ""))
            try:
                return score_parts(
                    str(local), scorer, econ, workers=workers, start=start, stop=stop,
                    progress=progress, **options,
                )  # fmt: skip
            except DataContractError as err:  # named as the caller knows the file
                raise DataContractError(str(err).replace(str(local), uri)) from err
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    counter = context.Value("q", 0)
    reported = 0
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_start_worker,
        initargs=(str(scorer.bundle_dir), scorer.explainer_config, counter),
    ) as pool:
        futures = [
            pool.submit(_score_in_worker, uri, econ, start, stop, Part(k, workers), dict(options))
            for k in range(workers)
        ]
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
                if progress is not None:
                    now = counter.value
                    if now > reported:
                        progress(now - reported)
                        reported = now
                failed = next((f for f in finished if f.exception() is not None), None)
                if failed is not None:  # the first error, not whichever worker is listed first
                    raise cast(BaseException, failed.exception())
            return [f.result() for f in futures]
        except BrokenProcessPool as err:
            raise ScoringWorkerError(
                f"a scoring worker process died while scoring {uri} ({workers} workers): "
                f"{err}; rerun with fewer workers or more memory"
            ) from err
        finally:
            for f in futures:
                f.cancel()


class ScoringWorkerError(RuntimeError):
    """A scoring worker process ended without an answer (killed, out of memory)."""


_WORKER: dict[str, Any] = {}


def _start_worker(bundle_dir: str, explainer_config: Any, counter: Any) -> None:
    """Worker initializer: load the bundle once; progress goes to the shared counter."""
    _WORKER["scorer"] = load_scorer(bundle_dir, explainer_config)
    _WORKER["counter"] = counter


def _score_in_worker(
    uri: str,
    econ: EconomicsConfig,
    start: int,
    stop: int | None,
    part: Part,
    options: dict[str, Any],
) -> ShardScores:
    counter = _WORKER["counter"]

    def progress(rows: int) -> None:
        with counter.get_lock():
            counter.value += rows

    return score_rows(
        uri,
        _WORKER["scorer"],
        econ,
        start=start,
        stop=stop,
        part=part,
        progress=progress,
        **options,
    )


def choose_workers(requested: int, uri: str, chunk_rows: int, connection_string: str = "") -> int:
    """`requested` when >= 1; 0: one per usable core, no more than the file has chunks.

    The chunks are counted for a local file (one parse: ~0.5 s per million
    CSV rows) or a Parquet file (its footer); a remote CSV is not read twice
    for it. Workers cost ~1.7 s to start (two on two cores: imports and the
    bundle), so a file of one chunk is scored in this process.

    Raises:
        InvalidInput: a negative `requested`.
    """
    from churn_core.errors import InvalidInput

    if requested < 0:
        raise InvalidInput(f"workers must be >= 0 (0: one per core), not {requested}")
    if requested:
        return requested
    cores = usable_cores()
    if cores == 1:
        return 1
    if is_remote(uri) and not is_parquet(uri):
        return cores
    chunks = -(-count_rows(uri, connection_string) // max(chunk_rows, 1))
    return max(1, min(cores, chunks))


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return max(os.cpu_count() or 1, 1)


def combine(parts: list[ShardScores]) -> ShardScores:
    """The parts of one row range (`score_parts`) as one shard: rows in file order."""
    if len(parts) == 1:
        return parts[0]
    scores = _scores_of(parts)
    return ShardScores(
        scores=scores.sort_values("_row", kind="stable").reset_index(drop=True),
        rejected=_sorted_rejected([p.rejected for p in parts]),
        rows=sum(p.rows for p in parts),
        threshold=parts[0].threshold,
        model=parts[0].model,
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
    scores = _scores_of(shards)
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
    workers: int = 1,
    connection_string: str = "",
    progress: Callable[[int], None] | None = None,
) -> ScoringResult:
    """Validate and score a customer file chunk by chunk; rank by expected value.

    `workers` > 1 scores the chunks in that many processes (`score_parts`);
    the list is the same whatever their number.

    Raises:
        DataContractError: a header breaking the contract, an unreadable file, or
            a rejected share above `max_rejected_share` (the report names the reasons).
        ScoringWorkerError: a worker process died.
    """
    shards = score_parts(
        uri,
        scorer,
        econ,
        workers=workers,
        reasons=reasons,
        chunk_rows=chunk_rows,
        batch_rows=batch_rows,
        connection_string=connection_string,
        progress=progress,
    )
    return finish(uri, shards, max_rejected_share=max_rejected_share)


def rank(scores: pd.DataFrame) -> pd.DataFrame:
    """Sorted by expected value (ties: higher probability, then id); rank 1 = call first."""
    out = scores.sort_values(
        ["expected_value", "churn_probability", ID_COLUMN],
        ascending=[False, False, True],
        kind="stable",
    ).reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1, dtype=np.int64)
    return out


def _scores_of(shards: list[ShardScores]) -> pd.DataFrame:
    """The shards' scores in one frame (the empty frame's columns when none has any)."""
    nonempty = [s.scores for s in shards if len(s.scores)]
    return pd.concat(nonempty, ignore_index=True) if nonempty else _empty_scores()


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


def write_list(table: pd.DataFrame, parquet_path: str | Path, csv_path: str | Path) -> None:
    """The ranked list as Parquet and as CSV (pyarrow's writer: ~7x pandas' on 200,000 rows).

    The CSV quotes every text field; `churn` reads true/false, a missing
    what-if is an empty field.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    pq.write_table(arrow, parquet_path)
    pacsv.write_csv(arrow, csv_path)


def write_outputs(result: ScoringResult, out: str | Path) -> dict[str, Path]:
    """The list as Parquet and CSV (`out` with either suffix), the rejected cells, the report."""
    import json

    base = Path(out)
    base = base.with_suffix("") if base.suffix in (".parquet", ".csv") else base
    base.parent.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {
        "parquet": base.with_suffix(".parquet"),
        "csv": base.with_suffix(".csv"),
        "rejected": base.parent / f"{base.name}.rejected.csv",
        "report": base.parent / f"{base.name}.report.json",
    }
    write_list(result.scores[list(LIST_COLUMNS)], paths["parquet"], paths["csv"])
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
