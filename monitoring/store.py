"""The drift service's database: predictions, windows, labels, triggers (SQLAlchemy Core).

A SQLite file in the embedded default (WAL, a busy timeout, foreign keys on,
every transaction `BEGIN IMMEDIATE` so two writers queue instead of failing),
PostgreSQL on a cluster through psycopg 3 (`postgresql+psycopg://user:pw@host/db`;
a plain `postgresql://` URL gets psycopg 3 too, never the absent psycopg2).
Every method is one short transaction on a pooled connection, so one store
may be shared by several threads.

What makes a restart safe:
* a prediction is keyed by `(event_id, row)`: a redelivered or replayed event
  stores nothing twice (`add_predictions` returns how many rows were new);
* `close_window` records the window, assigns its predictions and saves the
  trigger state (and the trigger it fired, if any) in ONE transaction: a crash
  leaves either all of it or none, and a prediction already in a window can
  never be tested again;
* a label is upserted on `(customer_id, label_date)`.

Tables (`schema_version` holds one row, `SCHEMA_VERSION`; another number is refused):
* `predictions`: id, event_id, row, request_id, customer_id, model, model_version,
  probability, decision, received_at, features (JSON), window_id -> windows.id;
  unique (event_id, row)
* `windows`: id, model, model_version, opened_at, closed_at, samples, drift,
  result (JSON, `DriftResult.as_dict()`), estimate (JSON or NULL)
* `labels`: id, customer_id, churned, label_date, received_at; unique (customer_id, label_date)
* `triggers`: id, model, fired_at, state, reason, evidence (JSON), run_id, run_status
* `trigger_state`: model (primary key), state (JSON), updated_at

Times are stored in UTC and come back timezone-aware (UTC); a naive datetime
is refused. Database errors surface as `StoreUnavailable` (cannot reach or
lock the database) or `MonitorStoreError`, each naming the URL without its
password; a value that cannot be stored (NaN in JSON, a naive time) is
`InvalidInput`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Dialect,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    event,
    exc,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, RowMapping, make_url
from sqlalchemy.types import TypeDecorator

from churn_core.errors import ChurnError, InvalidInput, NotFound
from churn_monitoring.records import Label, Prediction, TriggerRecord, WindowRecord

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SQLITE_BUSY_MS = 30_000  # a writer waits this long for another writer's lock
CONNECT_TIMEOUT_S = 10  # PostgreSQL: give up on an unreachable server after this long
_CHUNK = 500  # ids per IN (...) list: far below SQLite's bound-parameter limit


class MonitorStoreError(ChurnError):
    """The monitor database refused an operation (schema, integrity, an unknown record)."""


class StoreUnavailable(MonitorStoreError):
    """The monitor database cannot be reached (down, wrong address, locked too long)."""

    status_code = 503


# -- column types ---------------------------------------------------------------------
class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone: stored as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive times; store UTC (naive UTC on SQLite, which has no zone)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: a timezone is required")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Always aware UTC, whatever the backend or the session's time zone."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _plain(value: Any) -> Any:
    """JSON fallback for numpy scalars/arrays and dates (what pandas hands over)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable: {value!r}")


def _dumps(value: Any) -> str:
    """Strict JSON: NaN and infinity are refused (PostgreSQL's json type rejects them)."""
    return json.dumps(value, allow_nan=False, default=_plain)


# -- schema ---------------------------------------------------------------------------
_ID = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

windows = Table(
    "windows",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False),
    Column("model_version", String(200), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime, nullable=False),
    Column("samples", Integer, nullable=False),
    Column("drift", Boolean, nullable=False),
    Column("result", JSON, nullable=False),
    Column("estimate", JSON(none_as_null=True), nullable=True),
    Index("ix_windows_model_id", "model", "id"),
)

predictions = Table(
    "predictions",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("event_id", String(255), nullable=False),
    Column("row", Integer, nullable=False),
    Column("request_id", String(255), nullable=False),
    Column("customer_id", String(255), nullable=True),
    Column("model", String(200), nullable=False),
    Column("model_version", String(200), nullable=False),
    Column("probability", Float, nullable=False),
    Column("decision", Integer, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("features", JSON, nullable=False),
    Column("window_id", _ID, ForeignKey("windows.id"), nullable=True),
    UniqueConstraint("event_id", "row", name="uq_predictions_event_row"),
    Index("ix_predictions_open", "model", "window_id", "id"),
    Index("ix_predictions_customer", "customer_id"),
)

labels = Table(
    "labels",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("customer_id", String(255), nullable=False),
    Column("churned", Boolean, nullable=False),
    Column("label_date", Date, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    UniqueConstraint("customer_id", "label_date", name="uq_labels_customer_date"),
)

triggers = Table(
    "triggers",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False),
    Column("fired_at", UTCDateTime, nullable=False),
    Column("state", String(50), nullable=False),
    Column("reason", String(2000), nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("run_id", String(255), nullable=True),
    Column("run_status", String(100), nullable=True),
    Index("ix_triggers_model_id", "model", "id"),
)

trigger_state = Table(
    "trigger_state",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# columns of `labelled_predictions`, in order
LABELLED_COLUMNS = (
    "id",
    "event_id",
    "row",
    "request_id",
    "customer_id",
    "model_version",
    "probability",
    "decision",
    "received_at",
    "window_id",
    "churned",
    "label_date",
)


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "<unparseable database URL>"


# -- the store ------------------------------------------------------------------------
class MonitorStore:
    """The drift service's records in one SQL database; see the module docstring."""

    def __init__(self, url: str) -> None:
        """Connect to `url`, create the tables if missing and check the schema version."""
        self.url = safe_url(url)
        try:
            parsed = make_url(url)
        except exc.ArgumentError as err:
            raise InvalidInput(
                "the monitor database URL is not a SQLAlchemy URL "
                "(sqlite:///path or postgresql+psycopg://user:password@host/db)"
            ) from err
        if parsed.drivername == "postgresql":  # the default driver would be psycopg2
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise InvalidInput(
                f"monitor database {self.url}: only sqlite:/// and postgresql+psycopg:// "
                f"are supported, not {self.dialect}"
            )
        self._engine = self._make_engine(parsed)
        try:
            self._create_schema()
        except BaseException:
            self._engine.dispose()
            raise

    # -- connection ---------------------------------------------------------------
    def _make_engine(self, url: URL) -> Engine:
        try:
            if self.dialect == "sqlite":
                engine = create_engine(
                    url,
                    json_serializer=_dumps,
                    connect_args={"timeout": SQLITE_BUSY_MS / 1000, "check_same_thread": False},
                )
                event.listen(engine, "connect", _sqlite_connect)
                event.listen(engine, "begin", _sqlite_begin)
                return engine
            return create_engine(
                url,
                json_serializer=_dumps,
                pool_pre_ping=True,
                connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
            )
        except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as err:
            raise InvalidInput(f"monitor database {self.url}: {err}") from err

    @contextmanager
    def _tx(self, what: str) -> Iterator[Connection]:
        """One transaction; database errors become churn errors naming `what` and the URL."""
        try:
            with self._engine.begin() as conn:
                yield conn
        except ChurnError:
            raise
        except exc.StatementError as err:
            orig = err.orig
            if isinstance(orig, ValueError | TypeError) and not isinstance(orig, exc.DBAPIError):
                raise InvalidInput(f"{what}: {orig}") from err
            if isinstance(err, exc.OperationalError | exc.InterfaceError) or (
                isinstance(err, exc.DBAPIError) and err.connection_invalidated
            ):
                raise StoreUnavailable(
                    f"monitor database {self.url} is unavailable ({what}): {_first_line(err)}"
                ) from err
            raise MonitorStoreError(
                f"monitor database {self.url} refused {what}: {_first_line(err)}"
            ) from err
        except exc.TimeoutError as err:  # every pooled connection busy for pool_timeout
            raise StoreUnavailable(
                f"monitor database {self.url} is unavailable ({what}): {_first_line(err)}"
            ) from err
        except exc.SQLAlchemyError as err:
            raise MonitorStoreError(
                f"monitor database {self.url} refused {what}: {_first_line(err)}"
            ) from err

    def _create_schema(self) -> None:
        for attempt in (1, 2):
            try:
                with self._tx("creating the tables") as conn:
                    metadata.create_all(conn)
                    found = conn.execute(select(schema_version.c.version)).scalars().all()
                    if not found:
                        conn.execute(
                            schema_version.insert().values(
                                version=SCHEMA_VERSION, applied_at=datetime.now(UTC)
                            )
                        )
                        found = [SCHEMA_VERSION]
                break
            except MonitorStoreError as err:
                # two processes creating the tables at once: the loser retries and sees them
                if attempt == 2 or isinstance(err, StoreUnavailable):
                    raise
        if found != [SCHEMA_VERSION]:
            raise MonitorStoreError(
                f"monitor database {self.url} has schema version {found}, "
                f"this code reads version {SCHEMA_VERSION}"
            )

    def ping(self) -> None:
        """Raise `StoreUnavailable` unless the database answers a query now."""
        with self._tx("ping") as conn:
            conn.execute(select(1))

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> MonitorStore:
        """Use as a context manager: closed on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the store."""
        self.close()

    def _insert(self, table: Table) -> Any:
        return (sqlite.insert if self.dialect == "sqlite" else postgresql.insert)(table)

    # -- predictions --------------------------------------------------------------
    def add_predictions(self, rows: Sequence[Prediction]) -> int:
        """Store the predictions not stored yet (by `(event_id, row)`); the number new."""
        return sum(self.store_predictions(rows).values())

    def store_predictions(self, rows: Sequence[Prediction]) -> dict[str, int]:
        """`add_predictions`, the new rows counted per model."""
        if not rows:
            return {}
        values = [_prediction_values(p) for p in rows]
        stmt = (
            self._insert(predictions)
            .on_conflict_do_nothing(index_elements=["event_id", "row"])
            .returning(predictions.c.model)
        )
        with self._tx(f"storing {len(values)} predictions") as conn:
            stored = conn.execute(stmt, values).scalars().all()
        counts: dict[str, int] = {}
        for model in stored:
            counts[model] = counts.get(model, 0) + 1
        return counts

    def open_rows(self, model: str) -> list[Prediction]:
        """The model's predictions not yet in a window, in arrival order."""
        stmt = (
            select(predictions)
            .where(predictions.c.model == model, predictions.c.window_id.is_(None))
            .order_by(predictions.c.id)
        )
        with self._tx(f"reading the open predictions of {model}") as conn:
            return [_prediction(r) for r in conn.execute(stmt).mappings()]

    # -- windows ------------------------------------------------------------------
    def close_window(
        self,
        record: WindowRecord,
        prediction_ids: Sequence[int],
        trigger_state: Mapping[str, Any] | None = None,
        trigger: TriggerRecord | None = None,
    ) -> int:
        """Record a tested window, assign its predictions, save the trigger state: one transaction.

        Every id must be an open prediction of `record.model`; otherwise nothing is
        written (`MonitorStoreError`). `trigger`, when the window fired one, is
        recorded in the same transaction, so a restart neither loses nor repeats it.
        Returns the window's id.
        """
        ids = sorted({int(i) for i in prediction_ids})
        if len(ids) != len(prediction_ids):
            raise InvalidInput(f"close_window: duplicate prediction ids in {list(prediction_ids)}")
        with self._tx(f"closing a window of {record.model}") as conn:
            window_id = int(
                conn.execute(
                    windows.insert().values(_window_values(record)).returning(windows.c.id)
                ).scalar_one()
            )
            assigned = 0
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                assigned += conn.execute(
                    update(predictions)
                    .where(
                        predictions.c.id.in_(chunk),
                        predictions.c.model == record.model,
                        predictions.c.window_id.is_(None),
                    )
                    .values(window_id=window_id)
                ).rowcount
            if assigned != len(ids):
                raise MonitorStoreError(
                    f"close_window: {len(ids) - assigned} of {len(ids)} predictions are unknown, "
                    f"of another model than {record.model!r} or already in a window; "
                    "nothing was recorded"
                )
            if trigger_state is not None:
                self._save_state(conn, record.model, trigger_state)
            if trigger is not None:
                conn.execute(triggers.insert().values(_trigger_values(trigger)))
        return window_id

    def windows(self, model: str, limit: int | None = None) -> list[WindowRecord]:
        """The model's windows, newest last; only the newest `limit` when given."""
        stmt = select(windows).where(windows.c.model == model).order_by(windows.c.id.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._tx(f"reading the windows of {model}") as conn:
            found = [_window(r) for r in conn.execute(stmt).mappings()]
        return found[::-1]

    # -- labels -------------------------------------------------------------------
    def add_labels(self, labels_: Sequence[Label]) -> int:
        """Upsert labels on `(customer_id, label_date)` (the last of duplicates wins); the count."""
        unique: dict[tuple[str, date], Label] = {}
        for lab in labels_:
            unique[(lab.customer_id, lab.label_date)] = lab
        if not unique:
            return 0
        values = [_label_values(lab) for lab in unique.values()]
        stmt = self._insert(labels)
        stmt = stmt.on_conflict_do_update(
            index_elements=["customer_id", "label_date"],
            set_={"churned": stmt.excluded.churned, "received_at": stmt.excluded.received_at},
        )
        with self._tx(f"storing {len(values)} labels") as conn:
            conn.execute(stmt, values)
        return len(values)

    def labelled_predictions(self, model: str) -> pd.DataFrame:
        """Every prediction of `model`, joined with the customer's first label on or after its day.

        Columns (`LABELLED_COLUMNS`): id, event_id, row, request_id, customer_id,
        model_version, probability, decision, received_at (UTC, aware), window_id,
        churned (pandas "boolean": <NA> when no label yet), label_date (datetime64,
        NaT when none). The prediction's day is its UTC calendar day; a label dated
        that day counts. One row per prediction, in arrival order.
        """
        p = predictions.c
        pred_stmt = (
            select(*(p[c] for c in LABELLED_COLUMNS[:10])).where(p.model == model).order_by(p.id)
        )
        customers = select(p.customer_id).where(p.model == model, p.customer_id.is_not(None))
        lab_stmt = select(labels.c.customer_id, labels.c.label_date, labels.c.churned).where(
            labels.c.customer_id.in_(customers.distinct())
        )
        with self._tx(f"reading the labelled predictions of {model}") as conn:
            pred_rows = conn.execute(pred_stmt).all()
            lab_rows = conn.execute(lab_stmt).all()
        return _join_labels(pred_rows, lab_rows)

    # -- trigger ------------------------------------------------------------------
    def _save_state(self, conn: Connection, model: str, state: Mapping[str, Any]) -> None:
        stmt = self._insert(trigger_state).values(
            model=model,
            state=_json(dict(state), f"trigger state of {model}"),
            updated_at=datetime.now(UTC),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["model"],
            set_={"state": stmt.excluded.state, "updated_at": stmt.excluded.updated_at},
        )
        conn.execute(stmt)

    def save_trigger_state(self, model: str, state: Mapping[str, Any]) -> None:
        """Save the trigger's state outside a window close (e.g. after a run finished)."""
        with self._tx(f"saving the trigger state of {model}") as conn:
            self._save_state(conn, model, state)

    def load_trigger_state(self, model: str) -> dict[str, Any] | None:
        """The trigger state last saved for `model`, or None."""
        stmt = select(trigger_state.c.state).where(trigger_state.c.model == model)
        with self._tx(f"reading the trigger state of {model}") as conn:
            state = conn.execute(stmt).scalar_one_or_none()
        return None if state is None else dict(state)

    def add_trigger(self, record: TriggerRecord) -> int:
        """Record a trigger decision; its id."""
        with self._tx(f"recording a trigger of {record.model}") as conn:
            return int(
                conn.execute(
                    triggers.insert().values(_trigger_values(record)).returning(triggers.c.id)
                ).scalar_one()
            )

    def update_trigger_run(self, trigger_id: int, run_id: str | None, status: str) -> None:
        """Attach the training run a trigger started, and its status; NotFound for a bad id."""
        with self._tx(f"updating trigger {trigger_id}") as conn:
            changed = conn.execute(
                update(triggers)
                .where(triggers.c.id == trigger_id)
                .values(run_id=run_id, run_status=status)
            ).rowcount
            if changed != 1:
                raise NotFound(f"monitor database {self.url}: no trigger with id {trigger_id}")

    def triggers(self, model: str) -> list[TriggerRecord]:
        """The model's trigger history, oldest first."""
        stmt = select(triggers).where(triggers.c.model == model).order_by(triggers.c.id)
        with self._tx(f"reading the triggers of {model}") as conn:
            return [_trigger(r) for r in conn.execute(stmt).mappings()]

    def counts(self) -> dict[str, int]:
        """Rows per table (for health pages and tests)."""
        tables = (predictions, windows, labels, triggers, trigger_state)
        with self._tx("counting rows") as conn:
            return {
                t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in tables
            }


# -- SQLite connection set-up ----------------------------------------------------------
def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy emits BEGIN itself (below); pysqlite's own lazy BEGIN would leave
    # SELECTs outside the transaction and upgrade locks late (SQLITE_BUSY without waiting)
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoint
        cur.execute("PRAGMA foreign_keys = ON")
    finally:
        cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # take the write lock up front: a writer waits busy_timeout for another instead of
    # failing on a read-to-write upgrade
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _first_line(err: BaseException) -> str:
    orig = getattr(err, "orig", None)
    text = str(orig if orig is not None else err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# -- records <-> rows ------------------------------------------------------------------
def _aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidInput(f"{what} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{what} {value.isoformat()} has no time zone (give UTC)")
    return value


def _json(value: Any, what: str) -> Any:
    try:
        _dumps(value)
    except (TypeError, ValueError) as err:
        raise InvalidInput(f"{what} cannot be stored as JSON: {err}") from err
    return value


def _prediction_values(p: Prediction) -> dict[str, Any]:
    where = f"prediction (event_id={p.event_id!r}, row={p.row})"
    if not p.event_id:
        raise InvalidInput(f"{where}: event_id is empty")
    prob = float(p.probability)
    if not math.isfinite(prob) or not 0.0 <= prob <= 1.0:
        raise InvalidInput(f"{where}: probability {p.probability!r} is not in [0, 1]")
    if int(p.decision) not in (0, 1):
        raise InvalidInput(f"{where}: decision {p.decision!r} is not 0 or 1")
    return {
        "event_id": p.event_id,
        "row": int(p.row),
        "request_id": p.request_id,
        "customer_id": p.customer_id,
        "model": p.model,
        "model_version": p.model_version,
        "probability": prob,
        "decision": int(p.decision),
        "received_at": _aware(p.received_at, f"{where}: received_at"),
        "features": _json(dict(p.features), f"{where}: features"),
    }


def _prediction(r: RowMapping) -> Prediction:
    return Prediction(
        event_id=r["event_id"],
        row=r["row"],
        request_id=r["request_id"],
        customer_id=r["customer_id"],
        model=r["model"],
        model_version=r["model_version"],
        probability=r["probability"],
        decision=r["decision"],
        received_at=r["received_at"],
        features=dict(r["features"]),
        id=r["id"],
        window_id=r["window_id"],
    )


def _window_values(w: WindowRecord) -> dict[str, Any]:
    where = f"window of {w.model} {w.model_version}"
    return {
        "model": w.model,
        "model_version": w.model_version,
        "opened_at": _aware(w.opened_at, f"{where}: opened_at"),
        "closed_at": _aware(w.closed_at, f"{where}: closed_at"),
        "samples": int(w.samples),
        "drift": bool(w.drift),
        "result": _json(w.result, f"{where}: result"),
        "estimate": None if w.estimate is None else _json(w.estimate, f"{where}: estimate"),
    }


def _window(r: RowMapping) -> WindowRecord:
    return WindowRecord(
        model=r["model"],
        model_version=r["model_version"],
        opened_at=r["opened_at"],
        closed_at=r["closed_at"],
        samples=r["samples"],
        drift=bool(r["drift"]),
        result=dict(r["result"]),
        estimate=None if r["estimate"] is None else dict(r["estimate"]),
        id=r["id"],
    )


def _label_values(lab: Label) -> dict[str, Any]:
    where = f"label of customer {lab.customer_id!r}"
    if not lab.customer_id:
        raise InvalidInput("a label has an empty customer id")
    if not isinstance(lab.label_date, date) or isinstance(lab.label_date, datetime):
        raise InvalidInput(f"{where}: label_date {lab.label_date!r} is not a date")
    return {
        "customer_id": lab.customer_id,
        "churned": bool(lab.churned),
        "label_date": lab.label_date,
        "received_at": _aware(lab.received_at, f"{where}: received_at"),
    }


def _trigger_values(t: TriggerRecord) -> dict[str, Any]:
    where = f"trigger of {t.model}"
    return {
        "model": t.model,
        "fired_at": _aware(t.fired_at, f"{where}: fired_at"),
        "state": t.state,
        "reason": t.reason,
        "evidence": _json(t.evidence, f"{where}: evidence"),
        "run_id": t.run_id,
        "run_status": t.run_status,
    }


def _trigger(r: RowMapping) -> TriggerRecord:
    return TriggerRecord(
        model=r["model"],
        fired_at=r["fired_at"],
        state=r["state"],
        reason=r["reason"],
        evidence=dict(r["evidence"]),
        run_id=r["run_id"],
        run_status=r["run_status"],
        id=r["id"],
    )


def _join_labels(pred_rows: Sequence[Any], lab_rows: Sequence[Any]) -> pd.DataFrame:
    """Each prediction with the first label of its customer dated on or after its UTC day."""
    preds = pd.DataFrame(pred_rows, columns=list(LABELLED_COLUMNS[:10]))
    preds["received_at"] = pd.to_datetime(preds["received_at"], utc=True)
    preds["window_id"] = preds["window_id"].astype("Int64")
    preds["churned"] = pd.Series(pd.NA, index=preds.index, dtype="boolean")
    preds["label_date"] = pd.Series(pd.NaT, index=preds.index, dtype="datetime64[ns]")
    if preds.empty or not lab_rows:
        return preds
    labs = pd.DataFrame(lab_rows, columns=["customer_id", "label_date", "churned"])
    labs["label_date"] = pd.to_datetime(labs["label_date"]).astype("datetime64[ns]")
    labs = labs.sort_values("label_date", kind="stable")
    known = preds[preds["customer_id"].notna()].copy()
    known["day"] = known["received_at"].dt.tz_convert(None).dt.floor("D").astype("datetime64[ns]")
    known = known.sort_values("day", kind="stable")
    joined = pd.merge_asof(
        known[["id", "customer_id", "day"]],
        labs,
        left_on="day",
        right_on="label_date",
        by="customer_id",
        direction="forward",
        allow_exact_matches=True,
    ).set_index("id")
    pos = preds["id"].isin(joined.index)
    ids = preds.loc[pos, "id"]
    preds.loc[pos, "churned"] = joined.loc[ids, "churned"].astype("boolean").to_numpy()
    preds.loc[pos, "label_date"] = joined.loc[ids, "label_date"].to_numpy()
    return preds
