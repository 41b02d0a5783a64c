"""Any scikit-learn-style density estimator as a family: one estimator per replicate (the slow path).

This family loops over replicates in Python: it exists to check the batched families against a trusted library and
to try estimators that have no batched version. For speed use ``gmm`` or ``kde``.

``model.estimator`` is an import path (``module:Class``), so a config that sets it (to anything but the default)
names code to import and run: it is refused unless the run is trusted (``--trust-code``, ``trust_code=True``; the
``imports`` trait).
"""

from __future__ import annotations

import copy
import inspect
import sys
from typing import Any

import numpy as np

from ...errors import ConfigError, RunError
from .base import MODELS, Family
from .gmm import mixture_moments

SEED_BOUND = 2**31 - 1  # scikit-learn accepts random_state integers below 2**32; stay well inside


def load_estimator(path: str) -> type:
    """The class at ``path`` (``package.module:Class``; the older ``package.module.Class`` warns), or a ConfigError
    saying what is wrong."""
    from ...registry import load_code

    cls = load_code(path, "model.estimator", attr=True)
    missing = [m for m in ("fit", "sample") if not callable(getattr(cls, m, None))]
    if missing:
        raise ConfigError(
            f"model.estimator {path!r} must have fit() and sample() methods; it lacks {', '.join(missing)}()."
        )
    return cls


def public_path(cls: type) -> str:
    """The shortest import path of ``cls``: ``sklearn.neighbors:KernelDensity``, not ``sklearn.neighbors._kde:...``."""
    parts = cls.__module__.split(".")
    for i in range(1, len(parts) + 1):
        module = sys.modules.get(".".join(parts[:i]))
        if module is not None and getattr(module, cls.__qualname__, None) is cls:
            return f"{'.'.join(parts[:i])}:{cls.__qualname__}"
    return f"{cls.__module__}:{cls.__qualname__}"


def _clone(estimator):
    """An unfitted copy with the same settings: ``sklearn.base.clone`` (a deep copy for estimators outside sklearn)."""
    try:
        from sklearn.base import clone
    except ImportError:
        return copy.deepcopy(estimator)
    return clone(estimator)


def plain_params(params: dict[str, Any]) -> dict[str, Any]:
    """An estimator's ``get_params(deep=False)`` with only what YAML can record: numbers, strings, booleans, None,
    and lists of them (an array becomes a list); anything else (a nested estimator, a callable) is left out of the
    record and the error says so where it matters."""
    out = {}
    for key, value in params.items():
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if isinstance(value, np.generic):
            value = value.item()
        if (
            value is None
            or isinstance(value, (bool, int, float, str))
            or (isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value))
        ):
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def check_estimator_metrics(model: "Sklearn", *, metrics: list[str], source, bias: float) -> None:
    """The ``sklearn`` family's ``check`` trait: what it can measure depends on its estimator (see
    :meth:`Sklearn.check_metrics`)."""
    model.check_metrics(metrics, source)


@MODELS.register(
    "sklearn",
    imports=("estimator",),
    fitted=None,  # the estimator's own attributes: known only after fit
    default_metrics=("mean", "variance", "nll_real", "w1"),
    provides=("log_prob", "moments"),
    check=check_estimator_metrics,
)
class Sklearn(Family):
    """``estimator(**params)`` fitted to each replicate separately. ``estimator``: an import path, or (from Python) an
    estimator instance, cloned for every replicate (``sklearn.base.clone``); ``config.yaml`` then records its class
    path and ``get_params()``, never the object.

    Randomness: every ``fit`` and every ``sample`` call passes a fresh integer ``random_state`` drawn from the
    ``rng`` argument (``GaussianMixture.sample`` would otherwise reuse the estimator's own seed and repeat its draws,
    freezing the loop). Samples come back in random order (``GaussianMixture.sample`` sorts them by component).

    Fitted: the estimators' fitted array attributes stacked over replicates (``weights_`` ``(R, k)``, ``means_``
    ``(R, k, d)``, ``covariances_`` ``(R, k, d, d)`` for a full-covariance ``GaussianMixture``), which are also the
    checkpoint; ``degenerate_`` ``(R,)``: the replicate's fit raised (its previous fit is kept).

    >>> import numpy as np
    >>> m = Sklearn("sklearn.mixture:GaussianMixture", {"n_components": 2})
    >>> m.fit(np.random.default_rng(0).normal(size=(2, 200, 2)), rng=np.random.default_rng(1)).means_.shape
    (2, 2, 2)
    """

    def __init__(self, estimator: Any = "sklearn.mixture:GaussianMixture", params: dict[str, Any] = {}):  # noqa: B006
        if not isinstance(estimator, str):  # an instance: record its class and settings, clone it per replicate
            cls = type(estimator)
            missing = [m for m in ("fit", "sample", "get_params") if not callable(getattr(estimator, m, None))]
            if missing:
                raise ConfigError(
                    f"model.estimator must be an import path or a scikit-learn estimator with fit() and "
                    f"sample(); {cls.__name__} lacks {', '.join(missing)}()."
                )
            instance = _clone(estimator).set_params(**params) if params else estimator  # the caller's object untouched
            params = plain_params(instance.get_params(deep=False))
            self._cls, estimator = cls, public_path(cls)
        else:
            self._cls, instance = load_estimator(estimator), None
        self.estimator, self.params = estimator, params  # params is never mutated
        try:
            self._prototype = self._cls(**dict(params)) if instance is None else _clone(instance)
        except TypeError as err:
            raise ConfigError(f"model.params {params!r} do not fit {estimator}: {err}.") from None
        self._estimators: list | None = None
        self._event_shape: tuple[int, ...] = ()

    def check_metrics(self, names: list[str], source) -> None:
        """Validation: fit one estimator to 200 real records and compute every metric on it, so a metric the
        estimator cannot serve (``variance`` needs a mixture's moments, which ``KernelDensity`` lacks) fails before
        the run starts, naming the metric."""
        from ..metrics import Context, measure

        rng = np.random.default_rng(0)
        real = source.pool(2, 200, rng)
        trial = copy.copy(self)
        trial.bind(source, real)
        trial.fit(real, rng=rng)
        samples = trial.sample(50, rng=rng)
        for name in names:
            try:
                measure([name], Context(trial, samples, source, real[0], 0, rng, trial, []))
            except Exception as err:
                detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise ConfigError(
                    f"metrics: {name!r} cannot be computed for model.estimator {self.estimator!r} "
                    f"({detail.rstrip('.')}); remove it from metrics or choose another estimator."
                ) from None

    def _new(self, seed: int):
        est = _clone(self._prototype)
        if "random_state" in est.get_params():
            est.set_params(random_state=seed)
        return est

    def fit(self, x: np.ndarray, *, rng: np.random.Generator):
        """Fit one estimator per replicate of ``x`` ``(R, n, *event_shape)``. Returns self."""
        x = np.asarray(x)
        R, n = x.shape[:2]
        self._event_shape = x.shape[2:]
        old = self._estimators
        fitted, failed = [], np.zeros(R, bool)
        for r, seed in enumerate(rng.integers(SEED_BOUND, size=R)):
            try:
                fitted.append(self._new(int(seed)).fit(x[r].reshape(n, -1)))
            except (ValueError, np.linalg.LinAlgError) as err:  # a collapsed replicate: keep its previous fit
                if old is None:
                    raise RunError(f"{self.estimator} failed on replicate {r} at its first fit: {err}") from err
                fitted.append(old[r])
                failed[r] = True
        self._estimators = fitted
        self._stack()
        self.degenerate_ = failed
        return self

    def _stack(self) -> None:
        """Copy the estimators' fitted arrays onto self, stacked over replicates (same shape in every replicate)."""
        first = self._estimators[0]
        for name, value in vars(first).items():
            if not name.endswith("_") or name.startswith("_") or name == "degenerate_":
                continue
            values = [getattr(e, name, None) for e in self._estimators]
            if all(
                isinstance(v, (np.ndarray, int, float, np.number)) and np.shape(v) == np.shape(value) for v in values
            ):
                setattr(self, name, np.stack([np.asarray(v) for v in values]))

    def set_state(self, state: dict[str, np.ndarray]):
        """Restore from a checkpoint: rebuild each replicate's estimator from the stacked arrays."""
        super().set_state(state)
        event = state.get("event_shape_")
        self._event_shape = tuple(int(v) for v in event) if event is not None else ()
        self._estimators = []
        for r in range(len(self.degenerate_)):
            est = self._new(0)
            for name, value in state.items():
                if name not in ("degenerate_", "event_shape_"):
                    setattr(est, name, value[r] if value.ndim else value)
            self._estimators.append(est)
        return self

    def get_state(self) -> dict[str, np.ndarray]:
        return {**super().get_state(), "event_shape_": np.asarray(self._event_shape, np.int64)}

    def _check(self) -> list:
        if self._estimators is None:
            raise RunError("Sklearn is not fitted yet: call fit(x, rng=...) before sampling or scoring.")
        return self._estimators

    def sample(self, n: int, *, rng: np.random.Generator) -> np.ndarray:
        """``(R, n, *event_shape)`` draws, each replicate's estimator given a fresh ``random_state`` and its draws
        put in random order."""
        out = []
        for est, seed in zip(self._check(), rng.integers(SEED_BOUND, size=len(self._estimators))):
            if "random_state" in inspect.signature(est.sample).parameters:  # e.g. KernelDensity.sample
                draws = est.sample(n, random_state=int(seed))
            else:  # e.g. GaussianMixture.sample reads the attribute
                est.random_state = int(seed)
                draws = est.sample(n)
            draws = np.asarray(draws[0] if isinstance(draws, tuple) else draws)
            out.append(draws[rng.permutation(n)].reshape(n, *self._event_shape))
        return np.stack(out)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """``score_samples`` per replicate of ``x`` ``(R, n, *event_shape)``, in nats, ``(R, n)``."""
        ests = self._check()
        if not hasattr(ests[0], "score_samples"):
            raise RunError(f"{self.estimator} has no score_samples(), so log_prob is undefined.")
        x = np.asarray(x)
        return np.stack([e.score_samples(x[r].reshape(x.shape[1], -1)) for r, e in enumerate(ests)])

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mixture mean ``(R, d)`` and covariance ``(R, d, d)``, for estimators with full-covariance ``weights_``,
        ``means_`` and ``covariances_`` (a ``GaussianMixture``)."""
        self._check()
        if not all(hasattr(self, a) for a in ("weights_", "means_", "covariances_")) or self.covariances_.ndim != 4:
            raise RunError(
                f"moments() needs a full-covariance mixture; {self.estimator} with {self.params} is not one."
            )
        return mixture_moments(self.weights_, self.means_, self.covariances_)
