"""The three fitted scorers behind `ChurnModel`: logistic regression, XGBoost, a torch MLP.

Each keeps only what prediction needs, is deterministic and is fast on one
row. Each has `score(X) -> p` (churn probability before calibration) and
`margin(X) -> log-odds`, the quantity the explainers attribute.

Each is stored as data (`to_state` / `from_state`, see `churn_model.serialize`):
the logistic scorer as its coefficient array and intercept, XGBoost as its own
UBJSON model file, the MLP as its architecture (JSON) and one `.npy` per
`state_dict` tensor. `params` (the hyperparameters, for the record) travel as JSON.

The training code (`churn_components.training.train`) fits them; here they only predict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit

from churn_model.serialize import State, jsonable


def _as_matrix(X: np.ndarray) -> np.ndarray:  # noqa: N803
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X.reshape(1, -1)
    return X


@dataclass
class LogisticScorer:
    """Logistic regression as its numbers: sigmoid(X @ coef + intercept).

    Args:
        coef: one coefficient per transformed column, shape (n_features,).
        intercept: the bias term.
        params: hyperparameters it was fitted with (for the record).
    """

    coef: np.ndarray
    intercept: float
    params: dict[str, Any] | None = None
    kind: str = "logistic"

    def __post_init__(self) -> None:
        self.coef = np.asarray(self.coef, dtype=np.float64).reshape(-1)
        self.intercept = float(self.intercept)

    @property
    def n_features(self) -> int:
        """Width of the transformed matrix it expects."""
        return int(self.coef.shape[0])

    def margin(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Log-odds of churn per row."""
        return np.asarray(_as_matrix(X) @ self.coef + self.intercept)

    def score(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Churn probability per row."""
        return np.asarray(expit(self.margin(X)))

    def to_state(self) -> State:
        """The intercept and params as JSON, the coefficients as an array."""
        return State(
            fields={"intercept": self.intercept, "params": jsonable(self.params or {})},
            arrays={"coef": self.coef},
        )

    @classmethod
    def from_state(cls, state: State) -> LogisticScorer:
        """The scorer from its stored numbers."""
        coef = state.arrays["coef"]
        if coef.ndim != 1 or coef.dtype != np.float64:
            raise ValueError(
                f"logistic coef is {coef.dtype}{list(coef.shape)}, expected float64[n]"
            )
        return cls(
            coef=coef, intercept=float(state.fields["intercept"]), params=state.fields["params"]
        )


class XGBoostScorer:
    """A trained `xgboost.Booster`, single-threaded, predicting in place (no DMatrix).

    The explainer uses `booster.predict(DMatrix(X), pred_contribs=True)` for
    exact TreeSHAP on the same booster.
    """

    kind = "xgboost"

    def __init__(self, booster: Any, params: dict[str, Any] | None = None) -> None:
        self.booster = booster
        self.params = params or {}
        self.booster.set_param({"nthread": 1})

    @property
    def n_features(self) -> int:
        """Width of the transformed matrix it expects."""
        return int(self.booster.num_features())

    def margin(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Log-odds of churn per row."""
        out = self.booster.inplace_predict(_as_matrix(X), predict_type="margin")
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def score(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Churn probability per row."""
        out = self.booster.inplace_predict(_as_matrix(X))
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def __getstate__(self) -> dict[str, Any]:
        return {"booster": self.booster, "params": self.params}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.booster = state["booster"]
        self.params = state["params"]
        self.booster.set_param({"nthread": 1})

    def to_state(self) -> State:
        """XGBoost's own model file (UBJSON) and the params as JSON."""
        return State(
            fields={"params": jsonable(self.params)},
            files={"booster.ubj": bytes(self.booster.save_raw("ubj"))},
        )

    @classmethod
    def from_state(cls, state: State) -> XGBoostScorer:
        """The booster loaded from its model file, single-threaded."""
        import xgboost as xgb

        booster = xgb.Booster(model_file=bytearray(state.files["booster.ubj"]))
        return cls(booster, params=state.fields["params"])


def mlp_module(n_features: int, hidden: tuple[int, ...] | list[int], dropout: float) -> Any:
    """The MLP: Linear-ReLU-Dropout blocks and one output (the churn log-odds).

    The one definition of the network: training builds it here, and a stored
    MLP is rebuilt from (n_features, hidden, dropout) and its weights loaded.
    """
    import torch

    layers: list[Any] = []
    width = int(n_features)
    for size in hidden:
        layers += [torch.nn.Linear(width, int(size)), torch.nn.ReLU(), torch.nn.Dropout(dropout)]
        width = int(size)
    layers.append(torch.nn.Linear(width, 1))
    return torch.nn.Sequential(*layers)


def mlp_architecture(module: Any) -> dict[str, Any]:
    """(n_features, hidden, dropout) of a module built by `mlp_module`.

    Raises:
        ValueError: the module is some other network, which `mlp_module` cannot rebuild.
    """
    import torch

    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    dropouts = {float(m.p) for m in module.modules() if isinstance(m, torch.nn.Dropout)}
    if not linears or len(dropouts) > 1:
        raise ValueError(f"not an MLP of churn_model.scorers.mlp_module: {module}")
    n_features = int(linears[0].in_features)
    hidden = [int(m.out_features) for m in linears[:-1]]
    dropout = dropouts.pop() if dropouts else 0.0
    with torch.device("meta"):
        canonical = mlp_module(n_features, hidden, dropout)
    if repr(canonical) != repr(module):
        raise ValueError(
            f"the MLP is not the network mlp_module({n_features}, {hidden}, {dropout}) builds, "
            f"so it cannot be rebuilt from its architecture: {module}"
        )
    return {"n_features": n_features, "hidden": hidden, "dropout": dropout}


class MLPScorer:
    """A torch module (eval mode, float32) whose single output is the churn log-odds."""

    kind = "mlp"

    def __init__(self, module: Any, params: dict[str, Any] | None = None) -> None:
        self.module = module.float().eval()
        self.params = params or {}

    @property
    def n_features(self) -> int:
        """Width of the transformed matrix it expects."""
        first = next(p for p in self.module.parameters() if p.ndim == 2)
        return int(first.shape[1])

    def margin(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Log-odds of churn per row."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(_as_matrix(X), dtype=np.float32))
        with torch.inference_mode():
            out = self.module(x)
        return out.numpy().astype(np.float64).reshape(-1)

    def score(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Churn probability per row."""
        return np.asarray(expit(self.margin(X)))

    def __getstate__(self) -> dict[str, Any]:
        return {"module": self.module, "params": self.params}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.module = state["module"].float().eval()
        self.params = state["params"]

    def to_state(self) -> State:
        """The architecture and params as JSON, each `state_dict` tensor as a float32 array."""
        weights = {
            name: tensor.detach().cpu().numpy().astype(np.float32, copy=True)
            for name, tensor in self.module.state_dict().items()
        }
        return State(
            fields={"architecture": mlp_architecture(self.module), "params": jsonable(self.params)},
            arrays=weights,
        )

    @classmethod
    def from_state(cls, state: State) -> MLPScorer:
        """The network rebuilt from its architecture, with the stored weights loaded (strict)."""
        import torch

        arch = state.fields["architecture"]
        # built on the meta device: no random initialisation (the global torch RNG stays as it
        # was); `assign` makes the stored arrays the parameters
        with torch.device("meta"):
            module = mlp_module(
                int(arch["n_features"]), list(arch["hidden"]), float(arch["dropout"])
            )
        weights = {name: torch.from_numpy(array) for name, array in state.arrays.items()}
        module.load_state_dict(weights, strict=True, assign=True)
        return cls(module, params=state.fields["params"])
