"""Validation against the data contract (`churn_model.contract`).

Two entry points, one contract:

* `validate_csv` / `validate_frame`: a raw Telco table (the validate stage).
  Every cell is read as a string so nothing is coerced silently; each problem
  becomes a row of the rejected table (row, customerID, column, value, reason).
  Rows with no problem are accepted and typed. Accepted + rejected always
  equals the input rows. `ValidationResult.raise_if_over_limit` fails the
  stage when the rejected share is above `data.max_rejected_share`.
* `churn_model.checks.check_request_columns` checks a serving batch against
  the same contract.

Decisions recorded here (and in the README):

* Blank `TotalCharges` is accepted only when `tenure == 0` (the data set's
  known quirk: first-month customers have been billed nothing yet). It becomes
  NaN in the accepted frame and is counted in the report under
  `known_quirks.blank_total_charges_tenure_0`. Anywhere else a blank is a
  `missing_value`.
* Duplicate customer ids: every copy is rejected (reason `duplicate_id`),
  the first one included. We cannot know which of two records for the same
  customer is right, and keeping an arbitrary one would let a wrong label
  pass silently. The report names the other rows holding the same id.
* Categories match exactly (case and surrounding spaces matter); numbers may
  carry surrounding spaces.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from churn_components.data.ingest import csv_text
from churn_core.errors import DataContractError
from churn_model.contract import (
    ALL_COLUMNS,
    BLANK_ALLOWED,
    FEATURE_COLUMNS,
    ID_COLUMN,
    LABEL_COLUMN,
    LABEL_VALUES,
    Categorical,
    Numeric,
)

logger = logging.getLogger(__name__)

# Reasons a cell is rejected: the keys of report["reasons"].
MISSING_VALUE = "missing_value"
UNKNOWN_CATEGORY = "unknown_category"
NON_NUMERIC = "non_numeric"
NOT_INTEGER = "not_integer"
OUT_OF_RANGE = "out_of_range"
BAD_LABEL = "bad_label"
DUPLICATE_ID = "duplicate_id"
REASONS = (
    MISSING_VALUE,
    UNKNOWN_CATEGORY,
    NON_NUMERIC,
    NOT_INTEGER,
    OUT_OF_RANGE,
    BAD_LABEL,
    DUPLICATE_ID,
)
REJECTED_COLUMNS = ("row", ID_COLUMN, "column", "value", "reason", "detail")
# The JSON report lists at most this many rejected cells; the full table is a CSV.
REPORT_MAX_ISSUES = 1000


@dataclass
class ValidationResult:
    """What validation found.

    Attributes:
        accepted: the accepted rows, typed (numbers as int/float, quirk blanks NaN),
            index reset; columns in contract order.
        rejected: one row per rejected cell: `row` (1-based data row number; the
            file line is row + 1 because of the header), customerID, column,
            value, reason, detail.
        report: JSON-ready summary (counts, share, reasons, quirks, first issues).
    """

    accepted: pd.DataFrame
    rejected: pd.DataFrame
    report: dict[str, Any]

    def raise_if_over_limit(self, max_rejected_share: float) -> None:
        """Raise `DataContractError` when more rows than allowed were rejected."""
        share = float(self.report["rejected_share"])
        if share > max_rejected_share:
            counts = ", ".join(f"{k} {v}" for k, v in self.report["reasons"].items() if v)
            raise DataContractError(
                f"{self.report['source']}: {self.report['rejected_rows']} of "
                f"{self.report['input_rows']} rows rejected (share {share:.4f} > limit "
                f"{max_rejected_share}); reasons: {counts}; see the rejected-rows table"
            )


# -- reading -------------------------------------------------------------------


def read_raw_csv(data: bytes, source: str = "<bytes>") -> pd.DataFrame:
    """Parse CSV bytes with every column as a string; clear errors for non-CSV input.

    Checks the header: no duplicate names, every contract column present, no
    extra column. Raises `DataContractError` naming the source and the columns.
    """
    text = csv_text(data, source)
    first_line = text.lstrip("\r\n").splitlines()[0]
    try:
        header = next(csv.reader([first_line]))
    except csv.Error as err:
        raise DataContractError(f"{source}: not a CSV file: header unreadable: {err}") from err
    _check_header(header, source, first_line)
    try:
        frame = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=True
        )
    except pd.errors.ParserError as err:
        raise DataContractError(f"{source}: not a valid CSV file: {err}") from err
    if frame.empty:
        raise DataContractError(f"{source}: the file has a header but no data rows")
    return frame


def _check_header(header: list[str], source: str, first_line: str) -> None:
    expected = set(ALL_COLUMNS)
    if not expected.intersection(header):
        raise DataContractError(
            f"{source}: not a CSV file with the Telco header: none of the "
            f"{len(ALL_COLUMNS)} contract columns found in the first line {first_line[:120]!r}"
        )
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise DataContractError(f"{source}: duplicate column(s) in header: {duplicated}")
    missing = [c for c in ALL_COLUMNS if c not in header]
    extra = [h for h in header if h not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {missing}")
        if extra:
            parts.append(f"extra column(s) {extra}")
        raise DataContractError(f"{source}: header breaks the contract: {'; '.join(parts)}")


# -- validating a table -------------------------------------------------------------


def validate_csv(data: bytes, source: str = "<bytes>") -> ValidationResult:
    """Validate CSV bytes against the contract (see `validate_frame`)."""
    return validate_frame(read_raw_csv(data, source), source)


def validate_frame(
    raw: pd.DataFrame, source: str = "<frame>", *, label_optional: bool = False
) -> ValidationResult:
    """Validate a frame of strings (as read by `read_raw_csv`) against the contract.

    Args:
        raw: every contract column, values as strings (NaN = field absent in a short row).
        source: named in messages and the report.
        label_optional: the `Churn` column may be absent (customers to score); when
            absent it is not checked and the accepted frame has it blank. When
            present it is checked as usual.

    Returns:
        The accepted typed rows, the rejected cells, and the report. Does not
        raise on bad rows: call `raise_if_over_limit` for the stage decision.
    """
    header = list(raw.columns)
    no_label = label_optional and LABEL_COLUMN not in header
    if no_label:
        raw = raw.assign(**{LABEL_COLUMN: ""})
        header = list(raw.columns)
    _check_header(header, source, ",".join(header))
    n = len(raw)
    issues: list[tuple[np.ndarray, str, str, list[str] | None]] = []
    strings = {name: _as_strings(raw[name]) for name in ALL_COLUMNS}
    numbers: dict[str, np.ndarray] = {}

    for col in FEATURE_COLUMNS:
        values = strings[col.name]
        if isinstance(col, Categorical):
            blank = values == ""
            unknown = ~blank & ~np.isin(values, np.asarray(col.categories, dtype=object))
            issues.append((blank, col.name, MISSING_VALUE, None))
            issues.append((unknown, col.name, UNKNOWN_CATEGORY, None))
        else:
            number, col_issues = _check_numeric_strings(col, values)
            numbers[col.name] = number
            issues += col_issues

    # The quirk: blank TotalCharges is fine when tenure is exactly 0.
    quirk_rows = np.zeros(n, dtype=bool)
    for name, (cond_col, cond_value) in BLANK_ALLOWED.items():
        blank = np.char.strip(strings[name].astype(str)) == ""
        allowed = blank & (numbers[cond_col] == cond_value)
        quirk_rows |= allowed
        issues.append((blank & ~allowed, name, MISSING_VALUE, None))

    if not no_label:
        label = strings[LABEL_COLUMN]
        issues.append(
            (~np.isin(label, np.asarray(LABEL_VALUES, dtype=object)), LABEL_COLUMN, BAD_LABEL, None)
        )

    ids = strings[ID_COLUMN]
    blank_id = np.char.strip(ids.astype(str)) == ""
    issues.append((blank_id, ID_COLUMN, MISSING_VALUE, None))
    id_series = pd.Series(ids)
    dup = (id_series.duplicated(keep=False) & ~blank_id).to_numpy()
    dup_detail: list[str] | None = None
    if dup.any():
        dup_detail = _duplicate_details(ids, dup)
    issues.append((dup, ID_COLUMN, DUPLICATE_ID, dup_detail))

    rejected_table = _rejected_table(issues, strings)
    bad_rows = np.zeros(n, dtype=bool)
    for mask, *_ in issues:
        bad_rows |= mask
    accepted = _typed(strings, numbers, ~bad_rows)
    quirks = int((quirk_rows & ~bad_rows).sum())
    report = _report(source, n, accepted, bad_rows, rejected_table, quirks)
    if no_label:
        report["churn_share"] = None
    logger.info(
        "validated %s: %d rows, %d accepted, %d rejected (share %.4f)",
        source,
        n,
        report["accepted_rows"],
        report["rejected_rows"],
        report["rejected_share"],
    )
    if quirks:
        logger.info("known quirk: %d blank TotalCharges with tenure 0 accepted as NaN", quirks)
    return ValidationResult(accepted=accepted, rejected=rejected_table, report=report)


def _duplicate_details(ids: np.ndarray, dup: np.ndarray, show: int = 5) -> list[str]:
    """Per row: the other rows (1-based) holding the same id; at most `show`, then a count."""
    groups: dict[str, list[int]] = {}
    for i in np.flatnonzero(dup).tolist():
        groups.setdefault(ids[i], []).append(i)
    details = [""] * len(ids)
    for rows in groups.values():
        head = rows[: show + 1]
        for i in rows:
            others = [r for r in head if r != i][:show]
            text = "id also on row(s) " + ", ".join(str(r + 1) for r in others)
            if len(rows) - 1 > show:
                text += f" and {len(rows) - 1 - show} more"
            details[i] = text
    return details


def _as_strings(series: pd.Series) -> np.ndarray:
    """Object array of str; a missing field (short row) becomes ''."""
    values = series.to_numpy(dtype=object, copy=True)
    missing = pd.isna(values)
    if missing.any():
        values[missing] = ""
    return values


def _check_numeric_strings(
    col: Numeric, values: np.ndarray
) -> tuple[np.ndarray, list[tuple[np.ndarray, str, str, list[str] | None]]]:
    stripped = np.char.strip(values.astype(str))
    blank = stripped == ""
    number = pd.to_numeric(pd.Series(stripped), errors="coerce").to_numpy(dtype=np.float64)
    # "nan" parses as NaN: treat it as text, not a number.
    non_numeric = ~blank & np.isnan(number)
    valid = ~blank & ~non_numeric
    with np.errstate(invalid="ignore"):
        out_of_range = valid & ((number < col.minimum) | (number > col.maximum))
        not_integer = (
            valid & ~out_of_range & (number != np.round(number))
            if col.integer
            else np.zeros(len(values), dtype=bool)
        )
    issues: list[tuple[np.ndarray, str, str, list[str] | None]] = [
        (non_numeric, col.name, NON_NUMERIC, None),
        (out_of_range, col.name, OUT_OF_RANGE, None),
        (not_integer, col.name, NOT_INTEGER, None),
    ]
    if col.name not in BLANK_ALLOWED:
        issues.append((blank, col.name, MISSING_VALUE, None))
    return number, issues


def _detail(reason: str, column: str) -> str:
    col = next((c for c in FEATURE_COLUMNS if c.name == column), None)
    if reason == UNKNOWN_CATEGORY and isinstance(col, Categorical):
        return "allowed: " + ", ".join(col.categories)
    if reason in (OUT_OF_RANGE, NOT_INTEGER) and isinstance(col, Numeric):
        kind = "an integer" if col.integer else "a number"
        return f"expected {kind} in [{col.minimum:g}, {col.maximum:g}]"
    if reason == NON_NUMERIC:
        return "expected a number"
    if reason == BAD_LABEL:
        return "allowed: " + ", ".join(LABEL_VALUES)
    if reason == MISSING_VALUE and column in BLANK_ALLOWED:
        cond_col, cond_value = BLANK_ALLOWED[column]
        return f"blank allowed only when {cond_col} == {cond_value}"
    if reason == MISSING_VALUE:
        return "a value is required"
    return ""


def _rejected_table(
    issues: list[tuple[np.ndarray, str, str, list[str] | None]],
    strings: dict[str, np.ndarray],
) -> pd.DataFrame:
    parts = []
    for mask, column, reason, per_row in issues:
        idx = np.flatnonzero(mask)
        if not len(idx):
            continue
        detail = [per_row[i] for i in idx] if per_row is not None else _detail(reason, column)
        parts.append(
            pd.DataFrame(
                {
                    "row": idx + 1,
                    ID_COLUMN: strings[ID_COLUMN][idx],
                    "column": column,
                    "value": strings[column][idx],
                    "reason": reason,
                    "detail": detail,
                }
            )
        )
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in REJECTED_COLUMNS}).astype(
            {"row": np.int64}
        )
    order = {c: i for i, c in enumerate(ALL_COLUMNS)}
    table = pd.concat(parts, ignore_index=True)
    table["_col"] = table["column"].map(order)
    return (
        table.sort_values(["row", "_col"], kind="stable")
        .drop(columns="_col")
        .reset_index(drop=True)[list(REJECTED_COLUMNS)]
    )


def _typed(
    strings: dict[str, np.ndarray],
    numbers: dict[str, np.ndarray],
    keep: np.ndarray,
) -> pd.DataFrame:
    out: dict[str, Any] = {ID_COLUMN: strings[ID_COLUMN][keep]}
    for col in FEATURE_COLUMNS:
        if isinstance(col, Numeric):
            values = numbers[col.name][keep]
            out[col.name] = values.astype(np.int64) if col.integer else values
        else:
            out[col.name] = strings[col.name][keep]
    out[LABEL_COLUMN] = strings[LABEL_COLUMN][keep]
    return pd.DataFrame(out, columns=list(ALL_COLUMNS))


def _report(
    source: str,
    n: int,
    accepted: pd.DataFrame,
    bad_rows: np.ndarray,
    rejected: pd.DataFrame,
    quirks: int,
) -> dict[str, Any]:
    rejected_rows = int(bad_rows.sum())
    reasons = {r: 0 for r in REASONS}
    # Per reason: the number of rows with at least one cell of that reason.
    if len(rejected):
        for reason, count in rejected.groupby("reason")["row"].nunique().items():
            reasons[str(reason)] = int(count)
    by_column = {}
    if len(rejected):
        by_column = {str(k): int(v) for k, v in rejected.groupby("column")["row"].nunique().items()}
    issues = rejected.head(REPORT_MAX_ISSUES).to_dict(orient="records")
    label_counts = accepted[LABEL_COLUMN].value_counts()
    return {
        "source": source,
        "input_rows": n,
        "accepted_rows": len(accepted),
        "rejected_rows": rejected_rows,
        "rejected_share": rejected_rows / n if n else 0.0,
        "rejected_cells": len(rejected),
        "reasons": reasons,
        "rejected_rows_by_column": by_column,
        "known_quirks": {"blank_total_charges_tenure_0": quirks},
        "churn_share": float(label_counts.get("Yes", 0) / len(accepted)) if len(accepted) else None,
        "issues": [{k: _jsonable(v) for k, v in rec.items()} for rec in issues],
        "issues_truncated": len(rejected) > REPORT_MAX_ISSUES,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


# -- the serving check -------------------------------------------------------------
