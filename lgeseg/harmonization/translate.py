"""Apply a trained CycleGAN generator to raw images, keeping the input grid.

Each image is scaled to [-1, 1] by its own intensity percentiles (as in training), resampled
in-plane to the spacing the GAN was trained at when its own spacing differs by more than 10 %,
translated slice by slice (the generator is fully convolutional: nothing moves), resampled back to
the exact input shape and mapped back onto the input's intensity range.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

from lgeseg.core.records import CaseGeometry
from lgeseg.harmonization.cyclegan import DIRECTIONS, CycleGANInfo, build_generator, read_info, translate_slices
from lgeseg.harmonization.gan_data import scale_to_unit_range
from lgeseg.harmonization.networks import ResnetGenerator
from lgeseg.model.folder import find_checkpoint, load_checkpoint

#: Relative in-plane spacing difference above which images are resampled to the GAN's spacing.
SPACING_TOLERANCE = 0.1


@dataclasses.dataclass
class Translator:
    """One loaded generator: ``direction`` is ``"target-to-source"`` or ``"source-to-target"``."""

    generator: ResnetGenerator
    info: CycleGANInfo
    direction: str

    @property
    def input_spacing_yx(self) -> tuple[float, float] | None:
        """In-plane spacing (mm) of the domain this generator reads, as seen in training (None: unknown)."""
        return self.info.target_spacing_yx if self.direction == "target-to-source" else self.info.source_spacing_yx


def load_translator(gan_dir: str | Path, direction: str = "target-to-source", device: str = "cpu") -> Translator:
    """Load one generator of a trained CycleGAN.

    Args:
        gan_dir: folder written by ``train_cyclegan`` (``cyclegan.json`` + ``checkpoint_final.pt``,
            or ``checkpoint_latest.pt`` while training is unfinished).
        direction: ``"target-to-source"`` (unseen center -> training center, the usual) or ``"source-to-target"``.
        device: torch device.

    Returns:
        ``Translator`` with the generator in eval mode.

    Example:
        >>> import tempfile
        >>> from lgeseg.harmonization.cyclegan import CycleGANConfig, write_info
        >>> from lgeseg.model.folder import save_checkpoint
        >>> config = CycleGANConfig(generator_features=4, generator_blocks=1, discriminator_features=4,
        ...                         discriminator_layers=2, patch_size=(32, 32))
        >>> tmp = tempfile.TemporaryDirectory()  # a GAN folder with untrained generators, as train_cyclegan writes it
        >>> write_info(tmp.name, CycleGANInfo(config, "pre_center1", "pre_center2", target_spacing_yx=(1.25, 1.25)))
        >>> weights = {key: build_generator(config).state_dict() for key in ("source_to_target", "target_to_source")}
        >>> save_checkpoint(Path(tmp.name) / "checkpoint_final.pt", {"network": weights})
        >>> translator = load_translator(tmp.name, "target-to-source")
        >>> translator.generator.training, translator.input_spacing_yx  # reads the target center, 1.25 mm
        (False, (1.25, 1.25))
        >>> tmp.cleanup()
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: expected one of {sorted(DIRECTIONS)}, found '{direction}'")
    info = read_info(gan_dir)
    path = find_checkpoint(gan_dir, "final")
    payload = load_checkpoint(path, map_location="cpu")
    generator = build_generator(info.config)
    try:
        generator.load_state_dict(payload["network"][DIRECTIONS[direction]])
    except (KeyError, RuntimeError) as err:
        raise ValueError(f"{path}: no '{DIRECTIONS[direction]}' generator matching {gan_dir}/cyclegan.json "
                         f"({err})") from err
    return Translator(generator.to(device).eval(), info, direction)


def _resize(slices: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(slices.shape[-2:]) == tuple(size):
        return slices
    return functional.interpolate(slices, size=size, mode="bilinear", align_corners=False)


def translate_image(image: np.ndarray, geometry: CaseGeometry, translator: Translator) -> np.ndarray:
    """Translate a raw image with a CycleGAN generator.

    Args:
        image: (C, z, y, x) raw intensities; C must equal the GAN's ``in_channels``.
        geometry: the image's geometry (its in-plane spacing decides whether to resample).
        translator: from ``load_translator``.

    Returns:
        float32 (C, z, y, x) on the same grid, in the input's intensity range (between each
        channel's 0.5th and 99.5th percentile, or the GAN's ``intensity_percentiles``).

    Example:
        >>> from lgeseg.harmonization.cyclegan import CycleGANConfig
        >>> config = CycleGANConfig(generator_features=4, generator_blocks=1, discriminator_features=4,
        ...                         discriminator_layers=2, patch_size=(32, 32))
        >>> info = CycleGANInfo(config, "pre_center1", "pre_center2", target_spacing_yx=(1.25, 1.25))
        >>> translator = Translator(build_generator(config).eval(), info, "target-to-source")  # untrained here
        >>> geometry = CaseGeometry((2, 30, 30), (8.0, 2.5, 2.5), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> image = 100 * np.random.default_rng(0).random((1, 2, 30, 30), dtype=np.float32)
        >>> translated = translate_image(image, geometry, translator)  # 2.5 mm slices translated at 1.25 mm
        >>> translated.shape, translated.dtype, bool(translated.max() <= np.percentile(image, 99.5) + 1e-3)
        ((1, 2, 30, 30), dtype('float32'), True)
    """
    image = np.asarray(image, dtype=np.float32)
    channels = translator.info.config.in_channels
    if image.ndim != 4 or image.shape[0] != channels:
        raise ValueError(f"expected an image (C, z, y, x) with C = {channels}, found shape {image.shape}")
    scaled, low, high = scale_to_unit_range(image, translator.info.config.intensity_percentiles)
    slices = torch.from_numpy(scaled).permute(1, 0, 2, 3).contiguous()  # (z, C, y, x)
    size = tuple(slices.shape[-2:])
    work_size = size
    gan_spacing = translator.input_spacing_yx
    if gan_spacing is not None:
        ratio = np.asarray(geometry.spacing[1:], float) / np.asarray(gan_spacing, float)
        if np.any(np.abs(ratio - 1.0) > SPACING_TOLERANCE):
            work_size = tuple(max(1, int(round(s * r))) for s, r in zip(size, ratio, strict=True))
    out = translate_slices(translator.generator, _resize(slices, work_size))
    out = _resize(out, size).clamp(-1.0, 1.0).permute(1, 0, 2, 3).numpy()
    shape = (-1, 1, 1, 1)
    return (low.reshape(shape) + (out + 1.0) / 2.0 * (high - low).reshape(shape)).astype(np.float32)
