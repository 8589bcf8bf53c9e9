"""One small exception tree. Each class knows its HTTP status code.

The serving layer maps these to REST and gRPC answers in one place
(`churn_inference.errors`); pipeline stages let them surface as a failed step
with the message intact.
"""

from __future__ import annotations


class ChurnError(Exception):
    """Base of every error the platform raises on purpose."""

    status_code = 500


class InvalidInput(ChurnError):
    """The caller sent something wrong: a 400, never a 500."""

    status_code = 400


class NotFound(ChurnError):
    """An unknown model, artifact or URI."""

    status_code = 404


class NotReady(ChurnError):
    """The model is not loaded (yet, or was refused)."""

    status_code = 503


class ConfigError(ChurnError):
    """`model_config.yaml` or a setting is invalid; names the file and field."""


class DataContractError(InvalidInput):
    """A data set breaks the contract beyond what the stage tolerates."""


class StoreError(ChurnError):
    """The artifact store could not read or write (unreachable, denied, ...)."""


class BundleIntegrityError(ChurnError):
    """A model bundle whose files do not match their recorded sha256."""


class BundleUnusable(ChurnError):
    """A bundle that passed its sha256 check but cannot be served by this code.

    Not a churn model, or one this code version cannot run: the server stays
    not ready rather than answering 500s.
    """


class GateError(ChurnError):
    """The champion gate cannot compare the challenger with the champion.

    A champion that cannot be read or scored (an unreachable registry, a
    bundle that fails verification or is of another format, a scoring error)
    fails the run rather than letting the challenger through unexamined; only
    `selection.replace_unreadable_champion` lets it replace such a champion.
    """
