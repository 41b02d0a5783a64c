"""Denoising diffusion (``model.kind: diffusion``), in PyTorch: DDPM training, DDPM ancestral and DDIM sampling.

The forward process noises a record x₀ to x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε, ε ~ N(0, I), t = 1..T (``timesteps``), with
ᾱ_t the cumulative product of 1 − β_t from a ``cosine`` (Nichol & Dhariwal 2021) or ``linear`` (Ho et al. 2020,
β from 1e-4 to 0.02 at T = 1000, scaled by 1000/T) schedule. A network ε̂(x_t, t) predicts ε; it is trained on
the mean squared error with t uniform in 1..T.

Sampling runs one generalised step (Song et al. 2021, DDIM eq. 12) from t to the next time s of a strided grid of
``sample_steps`` times (ᾱ_0 = 1 after the last):

    x̂₀ = (x_t − √(1−ᾱ_t) ε̂) / √ᾱ_t,   σ = η √((1−ᾱ_s)/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_s),
    x_s = √ᾱ_s x̂₀ + √(1−ᾱ_s−σ²) ε̂ + √λ σ z,   x_T = √λ z_T,

With ``clip: [low, high]`` (records' units, e.g. [0, 1] for images) x̂₀ is clipped to that range at every step and
ε̂ replaced by (x_t − √ᾱ_t x̂₀)/√(1−ᾱ_t), as in Ho et al.'s code: it keeps a network trained on few records from
drifting out of the data range (8×8 digits' near-constant pixels, standardised, are heavy-tailed). η = 1 for
``sampler: ddpm`` (ancestral sampling with the posterior variance β̃) and η = 0 for ``sampler: ddim``
(deterministic given x_T). λ (``bias``) scales the noise of the reverse process: x_T and every step's injected noise.
On Gaussian data the fitted affine model maps noise to samples linearly, so λ then gives exactly N(μ, λΣ): MAD's
covariance shrink, the ``gaussian`` family's λ.

Two networks (``network``):

- ``mlp``: a time-conditioned MLP (x and a sinusoidal embedding of t/T in, ``layers`` SiLU layers of width
  ``hidden``), trained by Adam for ``train_steps`` steps (cosine-decayed ``lr``), batches of ``batch_size`` records
  drawn with replacement. All replicates train together: their weights are stacked along a leading axis and applied
  with ``torch.baddbmm``, so R replicates are one program, not R Python loops.
- ``affine``: ε̂(x_t, t) = A_t x_t + c_t, one affine map per time step, at the exact minimiser of the denoising loss
  over the training set (its expectation over ε taken in closed form: A_t = √(1−ᾱ_t)(ᾱ_t S + (1−ᾱ_t) I)⁻¹ with S
  the training set's MLE covariance, c_t centring on its mean): the converged model the MLP approximates on Gaussian
  data. It provides ``moments()``: the exact mean and covariance of what its sampler draws (the steps are linear).

``device`` (``cpu``, the default; ``cuda``; ``auto``: cuda when present) is where training and sampling run. On the
CPU every draw comes from the engine's generator; on a GPU from a generator there seeded by one draw of it (the run is
reproducible on that device, not bit-identical to a CPU run).

Records of any event shape are flattened to vectors and standardised per replicate and coordinate (``shift_``,
``scale_``) before training; samples are mapped back. torch is imported inside functions, so ``import modelcollapse``
stays light.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from ...devices import pick_device
from ...errors import ConfigError
from ...seeding import torch_generator
from .base import MODELS, Family

EMBED = 16  # sinusoidal features of t/T fed to the MLP


def alpha_bar(schedule: str, timesteps: int) -> np.ndarray:
    """ᾱ_t for t = 0..T (``(T + 1,)`` float64, ᾱ_0 = 1), the cumulative product of 1 − β_t, β_t capped at 0.999.

    >>> a = alpha_bar("cosine", 100)
    >>> float(a[0]), bool(np.all(np.diff(a) < 0)), bool(a[-1] < 1e-4)
    (1.0, True, True)
    """
    t = np.arange(timesteps + 1, dtype=np.float64)
    if schedule == "cosine":
        f = np.cos((t / timesteps + 0.008) / 1.008 * math.pi / 2) ** 2
        beta = 1 - f[1:] / f[:-1]
    else:
        scale = 1000 / timesteps
        beta = np.linspace(1e-4 * scale, 0.02 * scale, timesteps)
    return np.concatenate([[1.0], np.cumprod(1 - np.minimum(beta, 0.999))])


def time_grid(timesteps: int, steps: int) -> list[tuple[int, int]]:
    """The sampler's (t, s) pairs, t > s, from T down to 0 in ``steps`` strided steps.

    >>> time_grid(10, 5)
    [(10, 8), (8, 6), (6, 4), (4, 2), (2, 0)]
    """
    ts = np.unique(np.round(np.linspace(0, timesteps, steps + 1)).astype(int))[::-1]
    return [(int(t), int(s)) for t, s in zip(ts[:-1], ts[1:])]


def step_coefficients(ab_t: float, ab_s: float, eta: float) -> tuple[float, float, float, float]:
    """(1/√ᾱ_t, √(1−ᾱ_t), the coefficient of ε̂ in x_s beyond x̂₀'s, σ) of one step t → s (see the module docstring):
    x_s = √ᾱ_s (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t + k ε̂ + √λ σ z."""
    sigma = eta * math.sqrt((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s))
    k = math.sqrt(max(1 - ab_s - sigma**2, 0.0))
    return 1 / math.sqrt(ab_t), math.sqrt(1 - ab_t), k, sigma


def on_device(gen, dev: str):
    """The generator for draws on device ``dev``: ``gen`` itself on the CPU (so CPU runs draw exactly as before
    devices existed); elsewhere a generator on ``dev`` seeded by one draw of ``gen``, so a run on that device is
    reproducible from the run's seed without drawing every number on the CPU and copying it over."""
    if dev == "cpu":
        return gen
    import torch

    seed = int(torch.randint(2**62, (1,), generator=gen))
    return torch.Generator(device=dev).manual_seed(seed)


# -- the batched MLP: stacked weights, one leading replicate axis ------------------------------------------------------
def init_mlp(replicates: int, dim: int, hidden: int, layers: int, gen) -> dict:
    """Stacked weights ``W{i}`` ``(R, fan_in, fan_out)`` and biases ``b{i}`` ``(R, 1, fan_out)``, uniform in
    ±1/√fan_in (PyTorch's ``nn.Linear`` default), drawn from ``gen``."""
    import torch

    sizes = [dim + EMBED] + [hidden] * layers + [dim]
    params = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = 1 / math.sqrt(a)
        params[f"W{i}"] = (torch.rand((replicates, a, b), generator=gen) * 2 - 1) * bound
        params[f"b{i}"] = (torch.rand((replicates, 1, b), generator=gen) * 2 - 1) * bound
    return params


def embed(t, timesteps: int):
    """Sinusoidal features ``(..., EMBED)`` of t/T for integer times ``t``."""
    import torch

    freqs = torch.exp(torch.linspace(0.0, math.log(100.0), EMBED // 2, dtype=torch.float64)).float().to(t.device)
    angle = (t.float() / timesteps)[..., None] * freqs
    return torch.cat([torch.sin(angle), torch.cos(angle)], -1)


def mlp_eps(params: dict, x, t, timesteps: int):
    """ε̂ ``(R, b, d)`` of the stacked MLPs at x ``(R, b, d)`` and integer times t ``(R, b)``."""
    import torch

    h = torch.cat([x, embed(t, timesteps)], -1)
    last = len(params) // 2 - 1
    for i in range(last + 1):
        h = torch.baddbmm(params[f"b{i}"], h, params[f"W{i}"])
        if i < last:
            h = torch.nn.functional.silu(h)
    return h


@MODELS.register(
    "diffusion",
    fitted=("shift_", "scale_", "degenerate_", "cov_"),
    default_metrics=("precision", "recall", "frechet"),
    state_format="safetensors",
    provides=("bias", "moments"),
    check=lambda model, **settings: model.check_network(**settings),
)
class Diffusion(Family):
    """A diffusion model per replicate on records ``(R, n, *event)``; ``sample`` returns ``(R, n, *event)`` float32.

    Fitted state: ``shift_``, ``scale_`` ``(R, D)`` (the standardisation, D = prod(event)), ``degenerate_`` ``(R,)``
    (a non-finite loss, or no variance at all), ``cov_`` ``(R, D, D)`` (the standardised training set's MLE
    covariance: all the affine model needs), and for ``mlp`` the stacked weights (``net.W0`` ...).

    >>> x = np.random.default_rng(0).normal(size=(2, 100, 2))
    >>> m = Diffusion(network="affine", timesteps=50).fit(x, rng=np.random.default_rng(1))
    >>> m.sample(5, rng=np.random.default_rng(2)).shape
    (2, 5, 2)
    """

    def __init__(
        self,
        network: Literal["mlp", "affine"] = "mlp",
        timesteps: int = 100,
        schedule: Literal["cosine", "linear"] = "cosine",
        sampler: Literal["ddpm", "ddim"] = "ddpm",
        sample_steps: int | None = None,
        hidden: int = 128,
        layers: int = 3,
        train_steps: int = 2000,
        batch_size: int = 256,
        lr: float = 2e-3,
        device: Literal["auto", "cpu", "cuda"] = "cpu",
        threads: int | None = None,
        clip: tuple[float, float] | None = None,
    ):
        self.network, self.timesteps, self.schedule, self.sampler = network, timesteps, schedule, sampler
        self.sample_steps, self.hidden, self.layers = sample_steps, hidden, layers
        self.train_steps, self.batch_size, self.lr, self.device, self.threads = (
            train_steps,
            batch_size,
            lr,
            device,
            threads,
        )
        self.clip = None if clip is None else tuple(clip)
        if clip is not None and not self.clip[0] < self.clip[1]:  # its length was checked against the signature
            raise ConfigError(f"model.clip must be null or [low, high] with low < high; got {list(self.clip)!r}.")
        for key in ("timesteps", "hidden", "layers", "train_steps", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key} must be >= 1; got {getattr(self, key)!r}.")
        if sample_steps is not None and not 1 <= sample_steps <= timesteps:
            raise ConfigError(
                f"model.sample_steps must be in [1, model.timesteps = {timesteps}]; got {sample_steps!r}."
            )

    # -- fit ------------------------------------------------------------------------------------------------------
    def fit(self, x: np.ndarray, *, rng: np.random.Generator):
        """Fit one model per replicate on ``x`` ``(R, n, *event)`` from scratch; returns self."""
        self._event = x.shape[2:]
        u = self._standardise(np.asarray(x, np.float64).reshape(x.shape[0], x.shape[1], -1))
        self.cov_ = np.einsum("rni,rnj->rij", u, u) / u.shape[1]  # all the affine model needs; kept for both
        self.degenerate_ = self.degenerate_ | ~np.isfinite(self.cov_).all((1, 2))
        if self.network == "mlp":
            self._train_mlp(u, torch_generator(rng))
        return self

    def _standardise(self, v: np.ndarray) -> np.ndarray:
        """Set ``shift_``, ``scale_`` (coordinates without spread keep scale 1) and ``degenerate_``; return
        the standardised records ``(R, n, D)``."""
        self.shift_ = v.mean(1)
        std = v.std(1)
        self.degenerate_ = ~(std > 0).any(1)
        self.scale_ = np.where(std > 0, std, 1.0)
        return (v - self.shift_[:, None]) / self.scale_[:, None]

    def _train_mlp(self, u: np.ndarray, gen) -> None:
        """Adam on the ε-prediction loss, all replicates at once; a replicate whose loss turns non-finite stops
        contributing and is marked degenerate."""
        import torch

        dev = pick_device(self.device, self.threads)
        r, n, d = u.shape
        data = torch.tensor(u, dtype=torch.float32).to(dev)
        ab = torch.tensor(alpha_bar(self.schedule, self.timesteps), dtype=torch.float32).to(dev)
        params = {k: v.to(dev).requires_grad_() for k, v in init_mlp(r, d, self.hidden, self.layers, gen).items()}
        gen = on_device(gen, dev)
        opt = torch.optim.Adam(params.values(), lr=self.lr)
        bad = torch.zeros(r, dtype=torch.bool, device=dev)
        rows = torch.arange(r, device=dev)[:, None]
        for step in range(self.train_steps):
            for group in opt.param_groups:  # cosine decay: the last steps settle the fit
                group["lr"] = self.lr * 0.5 * (1 + math.cos(math.pi * step / self.train_steps))
            x0 = data[rows, torch.randint(n, (r, self.batch_size), generator=gen, device=dev)]
            t = torch.randint(1, self.timesteps + 1, (r, self.batch_size), generator=gen, device=dev)
            eps = torch.randn(x0.shape, generator=gen, device=dev)
            a = ab[t][..., None]
            xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
            loss = ((mlp_eps(params, xt, t, self.timesteps) - eps) ** 2).mean((1, 2))
            bad |= ~torch.isfinite(loss.detach())
            opt.zero_grad(set_to_none=True)
            loss[~bad].sum().backward()  # replicates' weights are disjoint: the sum trains each on its own loss
            opt.step()
        self._params = {k: v.detach().cpu() for k, v in params.items()}
        self.degenerate_ = self.degenerate_ | bad.cpu().numpy()

    # -- sample ---------------------------------------------------------------------------------------------------
    def _eps_fn(self, dev: str):
        """ε̂(x, t) for x ``(R, b, D)`` on device ``dev`` (float64 for ``affine``, float32 for ``mlp``) and an
        integer time t."""
        import torch

        if self.network == "mlp":
            params = {k: v.to(dev) for k, v in self._params.items()}
            return lambda x, t: mlp_eps(params, x, torch.full(x.shape[:2], t, device=dev), self.timesteps)
        w, v = np.linalg.eigh(self.cov_)  # A_t = V diag(√(1−ᾱ)/(ᾱw + 1−ᾱ)) Vᵀ: sign choices of V cancel
        v, w = torch.tensor(v).to(dev), torch.tensor(w).to(dev)
        ab = alpha_bar(self.schedule, self.timesteps)
        return lambda x, t: ((x @ v) * (math.sqrt(1 - ab[t]) / (ab[t] * w + 1 - ab[t]))[:, None]) @ v.transpose(1, 2)

    def sample(self, n: int, *, rng: np.random.Generator, bias: float = 1.0) -> np.ndarray:
        """``(R, n, *event)`` float32: x_T = √λ z, then the reverse steps of ``sampler`` (λ = ``bias`` scales every
        injected noise; 1 = unbiased). Draws come only from ``rng``."""
        import torch

        self.check_fitted("shift_")
        dev = pick_device(self.device, self.threads)
        gen = on_device(torch_generator(rng), dev)
        dtype = torch.float64 if self.network == "affine" else torch.float32
        r, d = self.shift_.shape
        eps_fn, ab = self._eps_fn(dev), alpha_bar(self.schedule, self.timesteps)
        eta = 1.0 if self.sampler == "ddpm" else 0.0
        noise = math.sqrt(bias)
        lo = hi = None
        if self.clip is not None:  # the data range in standardised units, per replicate and coordinate
            lo, hi = (torch.tensor((b - self.shift_) / self.scale_, dtype=dtype)[:, None].to(dev) for b in self.clip)
        with torch.no_grad():
            x = torch.randn((r, n, d), generator=gen, dtype=dtype, device=dev) * noise
            for t, s in time_grid(self.timesteps, self.sample_steps or self.timesteps):
                inv, root, k, sigma = step_coefficients(ab[t], ab[s], eta)
                e = eps_fn(x, t)
                if lo is None:
                    x = math.sqrt(ab[s]) * inv * (x - root * e) + k * e
                else:  # clip x̂₀ to the data range, and take ε̂ consistent with the clipped x̂₀ (as DDPM's code does)
                    x0 = torch.maximum(torch.minimum(inv * (x - root * e), hi), lo)
                    x = math.sqrt(ab[s]) * x0 + k * (x - x0 / inv) / root
                if sigma > 0:
                    x = x + noise * sigma * torch.randn((r, n, d), generator=gen, dtype=dtype, device=dev)
        out = x.double().cpu().numpy() * self.scale_[:, None] + self.shift_[:, None]
        return out.astype(np.float32).reshape(r, n, *self._event)

    def check_network(self, *, metrics: list[str], source=None, bias: float = 1.0) -> None:
        """The ``check`` trait: a metric that needs ``moments()`` (closed-form Gaussian statistics) needs
        ``network: affine``, the only network whose samples have them."""
        from ..metrics import METRICS

        needy = [m for m in metrics if "moments" in (METRICS.trait(m, "needs") or ())]
        if needy and self.network != "affine":
            raise ConfigError(
                f"metrics {needy} need moments(), which model.kind 'diffusion' has only with "
                f"model.network 'affine'; got {self.network!r}."
            )

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact mean ``(R, D)`` and covariance ``(R, D, D)`` of the affine model's samples at λ = 1: each reverse
        step is x ↦ M x + noise, so the moments propagate as C ↦ M C Mᵀ + σ² I from C = I. Differs from the training
        set's mean and MLE covariance only by the discretisation (finite T, ᾱ_T > 0). ``network: affine`` only (see
        :meth:`check_network`)."""
        if self.network != "affine":
            raise ConfigError(f"moments() is defined for model.network 'affine' only; got {self.network!r}.")
        self.check_fitted("cov_")
        r, d = self.shift_.shape
        ab, eta = alpha_bar(self.schedule, self.timesteps), 1.0 if self.sampler == "ddpm" else 0.0
        w, v = np.linalg.eigh(self.cov_)
        c = np.ones((r, d))  # the covariance is diagonal in S's eigenbasis throughout: propagate its diagonal
        for t, s in time_grid(self.timesteps, self.sample_steps or self.timesteps):
            inv, root, k, sigma = step_coefficients(ab[t], ab[s], eta)
            g = root / (ab[t] * w + 1 - ab[t])  # A_t's eigenvalues
            m = math.sqrt(ab[s]) * inv * (1 - root * g) + k * g
            c = m**2 * c + sigma**2
        cov = (v * c[:, None]) @ np.swapaxes(v, 1, 2)
        return self.shift_.copy(), cov * self.scale_[:, :, None] * self.scale_[:, None, :]

    # -- checkpoints ----------------------------------------------------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        self.check_fitted("shift_")
        state = {
            "shift_": self.shift_,
            "scale_": self.scale_,
            "degenerate_": self.degenerate_,
            "cov_": self.cov_,
            "event_": np.asarray((len(self._event), *self._event), np.int64),
        }  # length first: () is an event shape
        if self.network == "mlp":
            state.update({f"net.{k}": v.numpy() for k, v in self._params.items()})
        return state

    def set_state(self, state: dict[str, np.ndarray]):
        import torch

        self.shift_, self.scale_ = np.asarray(state["shift_"]), np.asarray(state["scale_"])
        self.degenerate_ = np.asarray(state["degenerate_"], bool)
        self.cov_ = np.asarray(state["cov_"])
        self._event = tuple(int(s) for s in np.asarray(state["event_"])[1:])
        if self.network == "mlp":
            self._params = {k[4:]: torch.as_tensor(np.array(v)) for k, v in state.items() if k.startswith("net.")}
        return self
