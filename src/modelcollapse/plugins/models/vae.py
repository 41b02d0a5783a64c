"""Variational autoencoder on grey images (``model.kind: vae``), in PyTorch.

The Nature paper's MNIST setting (Supplementary Fig. 7): latent 20, convolutional encoder and decoder of capacity 64,
loss BCE + KL, Adam (lr 1e-3, weight decay 1e-5), batch 256, 30 epochs a generation, every generation trained from
scratch on images decoded from z ~ N(0, I), the decoder's *mean* image (``decode: mean``; ``bernoulli`` draws pixels).
A small MLP encoder/decoder serves small images (8×8 digits); ``architecture: auto`` picks the convolutional one when
height and width are multiples of 4 and at least 16.

torch is imported inside methods, so ``import modelcollapse`` stays light.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from ...devices import pick_device
from ...seeding import torch_generator
from .base import MODELS, Family


def build_net(shape: tuple[int, int], latent: int, capacity: int, architecture: str, hidden: int):
    """An encoder/decoder pair as one ``nn.Module`` with ``encode(x) -> (mu, logvar)`` and ``decode(z) -> logits``."""
    from torch import nn

    h, w = shape
    conv = architecture == "conv" or (architecture == "auto" and h % 4 == 0 and w % 4 == 0 and min(h, w) >= 16)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            c = capacity
            if conv:  # the paper notebook's VAE: two stride-2 convolutions each way
                self.enc = nn.Sequential(
                    nn.Conv2d(1, c, 4, 2, 1), nn.ReLU(), nn.Conv2d(c, 2 * c, 4, 2, 1), nn.ReLU(), nn.Flatten()
                )
                feat = 2 * c * (h // 4) * (w // 4)
                self.dec_fc = nn.Linear(latent, feat)
                self.dec = nn.Sequential(
                    nn.Unflatten(1, (2 * c, h // 4, w // 4)),
                    nn.ConvTranspose2d(2 * c, c, 4, 2, 1),
                    nn.ReLU(),
                    nn.ConvTranspose2d(c, 1, 4, 2, 1),
                )
            else:
                self.enc = nn.Sequential(
                    nn.Flatten(), nn.Linear(h * w, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
                )
                feat = hidden
                self.dec_fc = nn.Linear(latent, hidden)
                self.dec = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, h * w))
            self.mu, self.logvar = nn.Linear(feat, latent), nn.Linear(feat, latent)

        def encode(self, x):  # x: (b, H, W) -> mu, logvar (b, latent)
            f = self.enc(x[:, None])
            return self.mu(f), self.logvar(f)

        def decode(self, z):  # z: (b, latent) -> pixel logits (b, H, W)
            out = self.dec(self.dec_fc(z))
            return out.reshape(len(z), h, w)

    return Net()


@MODELS.register(
    "vae",
    fitted=("shape_", "degenerate_"),
    default_metrics=("latent_std", "frechet", "precision", "recall", "class_entropy"),
    state_format="safetensors",
    provides=("bias", "encode_mean", "export"),
)
class VAE(Family):
    """A VAE per replicate on images ``(R, n, H, W)`` in [0, 1]; ``sample`` decodes z ~ N(0, λI) to ``(R, n, H, W)``
    (λ = ``bias``, 1 by default).

    Replicates are trained one after another (a Python loop: R is 1 to 5 for neural families); everything inside a
    replicate is batched. Fitted state: the network weights per replicate (``r{r}.{name}``), the image shape, and
    ``degenerate_`` ``(R,)`` (a non-finite loss).

    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((1, 64, 8, 8), dtype=np.float32)
    >>> VAE(latent=2, epochs=1).fit(x, rng=np.random.default_rng(1)).sample(3, rng=np.random.default_rng(2)).shape
    (1, 3, 8, 8)
    """

    def __init__(
        self,
        latent: int = 20,
        capacity: int = 64,
        hidden: int = 256,
        architecture: Literal["auto", "conv", "mlp"] = "auto",
        epochs: int = 30,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        beta: float = 1.0,
        decode: Literal["mean", "bernoulli"] = "mean",
        save: Literal["none", "last", "every"] = "none",
        device: Literal["auto", "cpu", "cuda"] = "auto",
        threads: int | None = None,
    ):
        self.latent, self.capacity, self.hidden, self.architecture = latent, capacity, hidden, architecture
        self.epochs, self.batch_size, self.lr, self.weight_decay, self.beta = epochs, batch_size, lr, weight_decay, beta
        self.decode, self.save, self.device, self.threads = decode, save, device, threads
        from ...errors import ConfigError

        for key in ("latent", "capacity", "hidden", "epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key} must be >= 1; got {getattr(self, key)!r}.")

    # -- networks --------------------------------------------------------------------------------------------------
    def _new_net(self, gen):
        """A freshly initialised network (PyTorch's default init), its weights drawn from the torch generator
        ``gen``."""
        import torch

        with torch.random.fork_rng(devices=[]):  # default init uses the global generator: seed a private copy of it
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
            net = build_net(
                tuple(int(s) for s in self.shape_), self.latent, self.capacity, self.architecture, self.hidden
            )
        return net.to(pick_device(self.device, self.threads))

    def fit(self, x: np.ndarray, *, rng: np.random.Generator):
        """Train one VAE per replicate from scratch on ``x`` ``(R, n, H, W)``; returns self."""
        import torch
        import torch.nn.functional as F

        device = pick_device(self.device, self.threads)
        self.shape_ = np.asarray(x.shape[2:], np.int64)
        gen = torch_generator(rng)
        self._nets, degenerate = [], []
        for r in range(x.shape[0]):
            net = self._new_net(gen)
            opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            data = torch.tensor(np.asarray(x[r]), dtype=torch.float32).clamp(0, 1)
            bad = False
            for _ in range(self.epochs):
                order = torch.randperm(len(data), generator=gen)
                for i in range(0, len(data), self.batch_size):
                    xb = data[order[i : i + self.batch_size]].to(device)
                    mu, logvar = net.encode(xb)
                    z = mu + torch.randn(mu.shape, generator=gen).to(device) * torch.exp(0.5 * logvar)
                    bce = F.binary_cross_entropy_with_logits(net.decode(z), xb, reduction="sum")
                    kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp())
                    loss = (bce + self.beta * kl) / len(xb)
                    if not torch.isfinite(loss):
                        bad = True
                        break
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                if bad:
                    break
            self._nets.append(net.eval())
            degenerate.append(bad)
        self.degenerate_ = np.asarray(degenerate, bool)
        return self

    def sample(self, n: int, *, rng: np.random.Generator, bias: float = 1.0) -> np.ndarray:
        """``(R, n, H, W)`` float32 in [0, 1]: decoded z ~ N(0, λI), mean image or Bernoulli pixels per ``decode``.

        ``bias`` λ truncates the latent (MAD's sampling bias; 1 = unbiased): z = √λ · ε with ε ~ N(0, I)
        ``(n, latent)``, the same ε as at λ = 1 for the same ``rng``, so λ only pulls every code towards the prior's
        mode."""
        import torch

        self.check_fitted("_nets")
        gen = torch_generator(rng)
        out = []
        with torch.no_grad():
            for net in self._nets:
                dev = next(net.parameters()).device
                z = torch.randn((n, self.latent), generator=gen)
                if bias != 1.0:
                    z = z * math.sqrt(bias)
                probs = torch.cat([torch.sigmoid(net.decode(zb.to(dev))).cpu() for zb in z.split(4096)])
                if self.decode == "bernoulli":
                    probs = torch.bernoulli(probs, generator=gen)
                out.append(probs.numpy().astype(np.float32))
        return np.stack(out)

    def encode_mean(self, x: np.ndarray) -> np.ndarray:
        """Latent means ``(R, n, latent)`` of images ``x`` ``(R, n, H, W)`` (or ``(n, H, W)``, shared) per replicate."""
        import torch

        self.check_fitted("_nets")
        x = np.broadcast_to(x, (len(self._nets), *x.shape[-3:])) if x.ndim == 3 else x
        out = []
        with torch.no_grad():
            for r, net in enumerate(self._nets):
                dev = next(net.parameters()).device
                xr = torch.tensor(np.asarray(x[r]), dtype=torch.float32)
                out.append(torch.cat([net.encode(b.to(dev))[0].cpu() for b in xr.split(4096)]).numpy())
        return np.stack(out)

    # -- checkpoints ------------------------------------------------------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        self.check_fitted("_nets")
        state = {"shape_": self.shape_, "degenerate_": self.degenerate_}
        for r, net in enumerate(self._nets):
            state.update({f"r{r}.{k}": v.detach().cpu().numpy() for k, v in net.state_dict().items()})
        return state

    def export(self, directories: list) -> None:
        """Write replicate r's network to ``directories[r]``: ``model.safetensors`` (the ``state_dict``, fp32, no
        prefix) and ``config.json`` (``latent``, ``capacity``, ``hidden``, ``architecture``, ``shape``, ``decode``), so
        ``build_net(shape, latent, capacity, architecture, hidden).load_state_dict(safetensors.torch.load_file(...))``
        rebuilds it. The loop calls it under ``model.save`` (``last`` | ``every``)."""
        import json
        from pathlib import Path

        from safetensors.torch import save_file

        self.check_fitted("_nets")
        config = {
            "model_type": "modelcollapse-vae",
            "latent": self.latent,
            "capacity": self.capacity,
            "hidden": self.hidden,
            "architecture": self.architecture,
            "shape": [int(s) for s in self.shape_],
            "decode": self.decode,
        }
        for net, directory in zip(self._nets, directories):
            Path(directory).mkdir(parents=True, exist_ok=True)
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
                str(Path(directory) / "model.safetensors"),
            )
            (Path(directory) / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    def set_state(self, state: dict[str, np.ndarray]):
        import torch

        self.shape_, self.degenerate_ = np.asarray(state["shape_"]), np.asarray(state["degenerate_"], bool)
        self._nets = []
        for r in range(len(self.degenerate_)):
            net = build_net(
                tuple(int(s) for s in self.shape_), self.latent, self.capacity, self.architecture, self.hidden
            )
            prefix = f"r{r}."
            net.load_state_dict(
                {k[len(prefix) :]: torch.as_tensor(np.array(v)) for k, v in state.items() if k.startswith(prefix)}
            )
            self._nets.append(net.to(pick_device(self.device, self.threads)).eval())
        return self
