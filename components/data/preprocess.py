"""Preprocess: the stratified train/test split, with a fixed seed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from churn_core.errors import DataContractError
from churn_model.contract import ID_COLUMN, LABEL_COLUMN
from churn_model.synthetic import is_synthetic

logger = logging.getLogger(__name__)

POSITIVE_LABEL = "Yes"


@dataclass(frozen=True)
class Split:
    """Train and test frames (index reset) and the split's JSON-ready metadata."""

    train: pd.DataFrame
    test: pd.DataFrame
    metadata: dict[str, Any]


def churn_share(frame: pd.DataFrame) -> float:
    """Share of churners (label "Yes") in a frame."""
    return float((frame[LABEL_COLUMN] == POSITIVE_LABEL).mean()) if len(frame) else 0.0


def split_frame(frame: pd.DataFrame, test_size: float, seed: int) -> Split:
    """Stratified (on the label) train/test split; same input and seed, same split.

    Args:
        frame: validated rows (the validate stage's accepted frame).
        test_size: share of rows held out, 0 < test_size < 1.
        seed: random state of the split.

    Raises:
        DataContractError: too few rows of a class to stratify.
    """
    from sklearn.model_selection import train_test_split

    counts = frame[LABEL_COLUMN].value_counts()
    if len(counts) < 2 or counts.min() < 2:
        raise DataContractError(
            f"cannot make a stratified split: label counts {counts.to_dict()} "
            "(need at least 2 rows of each class)"
        )
    try:
        train, test = train_test_split(
            frame, test_size=test_size, random_state=seed, stratify=frame[LABEL_COLUMN]
        )
    except ValueError as err:
        raise DataContractError(f"cannot split {len(frame)} rows: {err}") from err
    train = train.reset_index(drop=True)
    test = test.reset_index(drop=True)
    meta = {
        "rows": len(frame),
        "train_rows": len(train),
        "test_rows": len(test),
        "test_size": test_size,
        "seed": seed,
        "stratified_on": LABEL_COLUMN,
        "churn_share": churn_share(frame),
        "train_churn_share": churn_share(train),
        "test_churn_share": churn_share(test),
        "synthetic": is_synthetic(frame[ID_COLUMN]),
    }
    logger.info(
        "split %d rows: train %d (churn %.4f), test %d (churn %.4f), seed %d",
        len(frame),
        len(train),
        meta["train_churn_share"],
        len(test),
        meta["test_churn_share"],
        seed,
    )
    return Split(train=train, test=test, metadata=meta)
