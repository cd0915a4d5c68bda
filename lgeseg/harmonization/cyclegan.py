"""CycleGAN between two centers (paper section 2.3, Zhu et al. 2017): configuration and training.

Domain A is the *source* center (the one a segmentation model was trained on), domain B the
*target* (unseen) center. Two generators (A->B, B->A), two PatchGAN discriminators, least-squares
adversarial loss, cycle-consistency loss (lambda 10) and identity loss (0.5 * lambda), an image pool
of 50, Adam (2e-4, betas 0.5/0.999) with a linear decay to 0 over the second half. Every iteration
draws as many source as target patches: the 50/50 balance of the paper's Table 3.

``GAN_DIR`` after training::

    cyclegan.json                 CycleGANInfo: config, data, spacing, epochs trained
    checkpoint_latest.pt          both generators, both discriminators, optimizers, pools, RNG (resume)
    checkpoint_final.pt           both generators only: {"network": {"source_to_target": ..., "target_to_source": ...}}
    progress.png, training_log.txt, examples/epoch_NNN.png
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lgeseg import __version__
from lgeseg.core.records import JsonRecord, load_json, save_json
from lgeseg.harmonization.gan_data import Domain, ImagePool
from lgeseg.harmonization.networks import PatchDiscriminator, ResnetGenerator, init_weights

logger = logging.getLogger(__name__)

INFO_FILE = "cyclegan.json"
DIRECTIONS: dict[str, str] = {"target-to-source": "target_to_source", "source-to-target": "source_to_target"}


@dataclasses.dataclass(frozen=True)
class CycleGANConfig(JsonRecord):
    """How a CycleGAN is built and trained (defaults: small enough to train on a CPU in minutes).

    Attributes:
        in_channels: image channels.
        generator_features, generator_blocks, downsamplings: ``ResnetGenerator`` size.
        discriminator_features, discriminator_layers: ``PatchDiscriminator`` size.
        patch_size: training patch, voxels (y, x); multiples of ``2 ** downsamplings``.
        batch_size: patches per domain per iteration (source and target alike: 50/50).
        epochs, iterations_per_epoch: training length.
        learning_rate, betas: Adam settings.
        lambda_cycle: weight of the L1 cycle-consistency loss.
        lambda_identity: identity-loss weight as a fraction of ``lambda_cycle``.
        pool_size: generated images kept for the discriminators.
        decay_start_fraction: learning rate decays linearly to 0 from this fraction of the epochs.
        intensity_percentiles: per-case percentiles mapped to -1 and 1.
        validation_fraction: cases per domain held out for the validation cycle loss and examples.
        seed: seeds weights, splits, patches and pools.
    """

    in_channels: int = 1
    generator_features: int = 16
    generator_blocks: int = 4
    downsamplings: int = 2
    discriminator_features: int = 16
    discriminator_layers: int = 3
    patch_size: tuple[int, int] = (128, 128)
    batch_size: int = 1
    epochs: int = 20
    iterations_per_epoch: int = 100
    learning_rate: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    decay_start_fraction: float = 0.5
    intensity_percentiles: tuple[float, float] = (0.5, 99.5)
    validation_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        multiple = 2 ** self.downsamplings
        if any(p <= 0 or p % multiple for p in self.patch_size):
            raise ValueError(f"CycleGANConfig.patch_size: expected positive multiples of {multiple}, "
                             f"found {self.patch_size}")
        for name in ("epochs", "iterations_per_epoch", "batch_size", "in_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"CycleGANConfig.{name}: expected >= 1, found {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class CycleGANInfo(JsonRecord):
    """Contents of ``GAN_DIR/cyclegan.json``.

    Attributes:
        config: the training configuration.
        source, target: preprocessed folders of the two centers.
        source_datasets, target_datasets: dataset subfolders used (empty: all).
        source_spacing_yx, target_spacing_yx: in-plane spacing the GAN saw, mm (None: unknown).
        validation_cases: held-out case ids per domain (``{"source": [...], "target": [...]}``).
        epochs_trained: completed epochs.
        lgeseg_version: version that wrote it.
    """

    config: CycleGANConfig
    source: str
    target: str
    source_datasets: tuple[str, ...] = ()
    target_datasets: tuple[str, ...] = ()
    source_spacing_yx: tuple[float, float] | None = None
    target_spacing_yx: tuple[float, float] | None = None
    validation_cases: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    epochs_trained: int = 0
    lgeseg_version: str = __version__

    _nested = {"config": CycleGANConfig}


def build_generator(config: CycleGANConfig) -> ResnetGenerator:
    """A generator of the configured size (random weights).

    Example:
        >>> config = CycleGANConfig(generator_features=4, generator_blocks=1, discriminator_features=4,
        ...                         discriminator_layers=2, patch_size=(32, 32), epochs=4)  # a tiny CycleGAN
        >>> generator = build_generator(config)
        >>> generator.size_multiple, tuple(generator(torch.zeros(1, 1, 32, 32)).shape)  # inputs: multiples of 4 voxels
        (4, (1, 1, 32, 32))
    """
    return ResnetGenerator(config.in_channels, config.generator_features, config.generator_blocks,
                           config.downsamplings)


@dataclasses.dataclass
class CycleGANState:
    """Everything that changes during training; ``to_payload``/``load_payload`` make it a checkpoint."""

    generators: nn.ModuleDict      # "source_to_target" (A->B), "target_to_source" (B->A)
    discriminators: nn.ModuleDict  # "source" (judges A), "target" (judges B)
    optimizer_g: torch.optim.Adam
    optimizer_d: torch.optim.Adam
    pools: dict[str, ImagePool]
    rng: np.random.Generator
    epoch: int = 0
    history: dict[str, list[float]] = dataclasses.field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        """Plain tensors and values for ``save_checkpoint`` (loadable with ``weights_only=True``)."""
        return {"network": {k: m.state_dict() for k, m in self.generators.items()},
                "discriminators": {k: m.state_dict() for k, m in self.discriminators.items()},
                "optimizer_g": self.optimizer_g.state_dict(), "optimizer_d": self.optimizer_d.state_dict(),
                "pools": {k: p.images for k, p in self.pools.items()}, "rng": self.rng.bit_generator.state,
                "epoch": self.epoch, "history": self.history}

    def load_payload(self, payload: dict[str, Any]) -> None:
        """Restore from ``to_payload``'s dict (in place)."""
        for key, module in self.generators.items():
            module.load_state_dict(payload["network"][key])
        for key, module in self.discriminators.items():
            module.load_state_dict(payload["discriminators"][key])
        self.optimizer_g.load_state_dict(payload["optimizer_g"])
        self.optimizer_d.load_state_dict(payload["optimizer_d"])
        for key, pool in self.pools.items():
            pool.images = list(payload["pools"][key])
        self.rng.bit_generator.state = payload["rng"]
        self.epoch = int(payload["epoch"])
        self.history = {k: [float(v) for v in vals] for k, vals in payload["history"].items()}


def make_state(config: CycleGANConfig, device: torch.device) -> CycleGANState:
    """Fresh networks (seeded by ``config.seed``), optimizers, pools and RNG on ``device``.

    Example:
        >>> config = CycleGANConfig(generator_features=4, generator_blocks=1, discriminator_features=4,
        ...                         discriminator_layers=2, patch_size=(32, 32), epochs=4)  # a tiny CycleGAN
        >>> state = make_state(config, torch.device("cpu"))
        >>> sorted(state.generators), sorted(state.discriminators), state.epoch
        (['source_to_target', 'target_to_source'], ['source', 'target'], 0)
    """
    generators = nn.ModuleDict({k: build_generator(config) for k in ("source_to_target", "target_to_source")})
    discriminators = nn.ModuleDict({k: PatchDiscriminator(config.in_channels, config.discriminator_features,
                                                          config.discriminator_layers) for k in ("source", "target")})
    for offset, module in enumerate((generators, discriminators)):
        init_weights(module, config.seed + offset)
        module.to(device)
    rng = np.random.default_rng(config.seed)
    return CycleGANState(
        generators, discriminators,
        torch.optim.Adam(generators.parameters(), config.learning_rate, betas=config.betas),
        torch.optim.Adam(discriminators.parameters(), config.learning_rate, betas=config.betas),
        {k: ImagePool(config.pool_size, rng) for k in ("source", "target")}, rng)


def learning_rate_at(config: CycleGANConfig, epoch: int) -> float:
    """Learning rate for 0-based ``epoch``: constant, then linear decay towards 0 over the last epochs.

    Example:
        >>> config = CycleGANConfig(generator_features=4, generator_blocks=1, discriminator_features=4,
        ...                         discriminator_layers=2, patch_size=(32, 32), epochs=4)  # a tiny CycleGAN
        >>> [round(learning_rate_at(config, epoch) * 1e4, 3) for epoch in range(4)]  # x 1e-4: decays in the 2nd half
        [2.0, 2.0, 2.0, 1.333]
    """
    start = int(config.decay_start_fraction * config.epochs)
    if epoch < start:
        return config.learning_rate
    return config.learning_rate * (1.0 - (epoch - start) / max(1, config.epochs - start + 1))


def _lsgan(scores: torch.Tensor, real: bool) -> torch.Tensor:
    return torch.mean((scores - (1.0 if real else 0.0)) ** 2)


def train_step(state: CycleGANState, config: CycleGANConfig, real_a: torch.Tensor,
               real_b: torch.Tensor) -> dict[str, float]:
    """One generator update and one discriminator update on a source batch and a target batch.

    Args:
        real_a, real_b: (B, C, H, W) patches in [-1, 1] of the source and the target center.

    Returns:
        losses: ``adversarial``, ``cycle``, ``identity`` (generators, weighted) and ``discriminator``.

    Example:
        >>> config = CycleGANConfig(generator_features=4, generator_blocks=1, discriminator_features=4,
        ...                         discriminator_layers=2, patch_size=(32, 32), epochs=4)  # a tiny CycleGAN
        >>> state = make_state(config, torch.device("cpu"))
        >>> generator = torch.Generator().manual_seed(0)
        >>> source, target = (torch.rand(1, 1, 16, 16, generator=generator) * 2 - 1 for _ in range(2))
        >>> losses = train_step(state, config, source, target)
        >>> sorted(losses), all(value > 0 for value in losses.values())
        (['adversarial', 'cycle', 'discriminator', 'identity'], True)
    """
    g_ab, g_ba = state.generators["source_to_target"], state.generators["target_to_source"]
    d_a, d_b = state.discriminators["source"], state.discriminators["target"]
    l1 = nn.functional.l1_loss
    d_a.requires_grad_(False)
    d_b.requires_grad_(False)
    fake_b, fake_a = g_ab(real_a), g_ba(real_b)
    adversarial = _lsgan(d_b(fake_b), True) + _lsgan(d_a(fake_a), True)
    cycle = config.lambda_cycle * (l1(g_ba(fake_b), real_a) + l1(g_ab(fake_a), real_b))
    identity = config.lambda_cycle * config.lambda_identity * (l1(g_ab(real_b), real_b) + l1(g_ba(real_a), real_a))
    state.optimizer_g.zero_grad(set_to_none=True)
    (adversarial + cycle + identity).backward()
    state.optimizer_g.step()
    d_a.requires_grad_(True)
    d_b.requires_grad_(True)
    pooled_b, pooled_a = state.pools["target"].query(fake_b), state.pools["source"].query(fake_a)
    loss_d = 0.5 * (_lsgan(d_b(real_b), True) + _lsgan(d_b(pooled_b), False)) \
        + 0.5 * (_lsgan(d_a(real_a), True) + _lsgan(d_a(pooled_a), False))
    state.optimizer_d.zero_grad(set_to_none=True)
    loss_d.backward()
    state.optimizer_d.step()
    return {"adversarial": adversarial.item(), "cycle": cycle.item(), "identity": identity.item(),
            "discriminator": loss_d.item()}


def pad_to_multiple(batch: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (B, C, H, W) at the bottom/right to multiples of ``multiple``; returns (padded, (H, W)).

    Example:
        >>> padded, size = pad_to_multiple(torch.zeros(2, 1, 30, 33), 4)
        >>> tuple(padded.shape), size  # padded at the bottom and right; the original (H, W) to crop back
        ((2, 1, 32, 36), (30, 33))
    """
    height, width = batch.shape[-2:]
    pad_y, pad_x = (-height) % multiple, (-width) % multiple
    if pad_y or pad_x:
        mode = "reflect" if pad_y < height and pad_x < width else "replicate"
        batch = nn.functional.pad(batch, (0, pad_x, 0, pad_y), mode=mode)
    return batch, (height, width)


@torch.no_grad()
def translate_slices(generator: ResnetGenerator, slices: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
    """Translate whole (N, C, H, W) slices in [-1, 1] of any size; returns (N, C, H, W) on the input's device.

    Example:
        >>> config = CycleGANConfig(generator_features=4, generator_blocks=1, discriminator_features=4,
        ...                         discriminator_layers=2, patch_size=(32, 32), epochs=4)  # a tiny CycleGAN
        >>> translated = translate_slices(build_generator(config), torch.zeros(3, 1, 30, 33))  # any slice size
        >>> tuple(translated.shape), float(translated.abs().max()) <= 1.0  # tanh output in [-1, 1]
        ((3, 1, 30, 33), True)
    """
    device = next(generator.parameters()).device
    outputs = []
    for start in range(0, slices.shape[0], batch_size):
        padded, (height, width) = pad_to_multiple(slices[start:start + batch_size].to(device), generator.size_multiple)
        outputs.append(generator(padded)[..., :height, :width].to(slices.device))
    return torch.cat(outputs)


@torch.no_grad()
def validation_cycle_loss(state: CycleGANState, config: CycleGANConfig, domains: dict[str, Domain],
                          max_slices: int = 8) -> float:
    """Mean weighted L1 cycle loss on up to ``max_slices`` whole validation slices per domain.

    Example:
        >>> from lgeseg.harmonization.gan_data import Domain
        >>> config = CycleGANConfig(generator_features=4, generator_blocks=1, discriminator_features=4,
        ...                         discriminator_layers=2, patch_size=(32, 32), epochs=4)  # a tiny CycleGAN
        >>> state = make_state(config, torch.device("cpu"))
        >>> slices = [np.zeros((1, 16, 16), np.float32)]
        >>> domains = {name: Domain(name, slices, ["c1"], None) for name in ("source", "target")}
        >>> validation_cycle_loss(state, config, domains) >= 0.0  # 10 x mean |back-translated - real|
        True
    """
    losses = []
    for name, forward, backward in (("source", "source_to_target", "target_to_source"),
                                    ("target", "target_to_source", "source_to_target")):
        for image in domains[name].slices[:max_slices]:
            real = torch.from_numpy(image)[None]
            fake = translate_slices(state.generators[forward], real)
            back = translate_slices(state.generators[backward], fake)
            losses.append(config.lambda_cycle * float(torch.mean(torch.abs(back - real))))
    return float(np.mean(losses)) if losses else float("nan")


def read_info(gan_dir: str | Path) -> CycleGANInfo:
    """Read ``GAN_DIR/cyclegan.json``; raises ``FileNotFoundError``/``ValueError`` naming the file.

    Example:
        >>> import tempfile
        >>> config = CycleGANConfig(generator_features=4, generator_blocks=1, discriminator_features=4,
        ...                         discriminator_layers=2, patch_size=(32, 32), epochs=4)  # a tiny CycleGAN
        >>> tmp = tempfile.TemporaryDirectory()
        >>> write_info(tmp.name, CycleGANInfo(config, source="pre_center1", target="pre_center2", epochs_trained=2))
        >>> info = read_info(tmp.name)
        >>> info.source, info.epochs_trained, info.config.patch_size
        ('pre_center1', 2, (32, 32))
        >>> read_info(Path(tmp.name) / "missing")
        Traceback (most recent call last):
        FileNotFoundError: .../missing/cyclegan.json: not a CycleGAN folder (train one with ...)
        >>> tmp.cleanup()
    """
    path = Path(gan_dir) / INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a CycleGAN folder (train one with `lgeseg_harmonize cyclegan-train`)")
    try:
        return CycleGANInfo.from_dict(load_json(path))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def write_info(gan_dir: str | Path, info: CycleGANInfo) -> None:
    """Write ``GAN_DIR/cyclegan.json`` atomically.

    Example:
        >>> import tempfile
        >>> config = CycleGANConfig(generator_features=4, generator_blocks=1, discriminator_features=4,
        ...                         discriminator_layers=2, patch_size=(32, 32), epochs=4)  # a tiny CycleGAN
        >>> tmp = tempfile.TemporaryDirectory()
        >>> write_info(tmp.name, CycleGANInfo(config, source="pre_center1", target="pre_center2"))
        >>> load_json(Path(tmp.name) / INFO_FILE)["config"]["patch_size"]
        [32, 32]
        >>> tmp.cleanup()
    """
    save_json(info, Path(gan_dir) / INFO_FILE)
