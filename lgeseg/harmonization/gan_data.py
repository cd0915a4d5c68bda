"""CycleGAN data: 2D slices of one center's preprocessed cases, random patches, and the image pool.

A preprocessed folder ``PRE`` holds ``PRE/<dataset>/<case>.npz`` (``image`` float32 (C, z, y, x))
and ``PRE/<dataset>/<case>.json`` (``records.PreprocessedCase``). Every case is scaled to [-1, 1]
by its own intensity percentiles (the GAN's tanh range), then cut into (C, y, x) slices.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lgeseg.core.records import PreprocessedCase
from lgeseg.preprocessing import load_case_arrays, load_preprocessed

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Domain:
    """All slices of one center.

    Attributes:
        name: ``"source"`` or ``"target"`` (for messages).
        slices: (C, y, x) float32 arrays in [-1, 1]; in-plane sizes may differ between cases.
        case_ids: case id of each slice.
        spacing_yx: median in-plane spacing of the cases after preprocessing, mm.
    """

    name: str
    slices: list[np.ndarray]
    case_ids: list[str]
    spacing_yx: tuple[float, float] | None

    def subset(self, cases: set[str]) -> Domain:
        """The slices of ``cases`` only."""
        keep = [i for i, c in enumerate(self.case_ids) if c in cases]
        return Domain(self.name, [self.slices[i] for i in keep], [self.case_ids[i] for i in keep], self.spacing_yx)


def scale_to_unit_range(image: np.ndarray, percentiles: tuple[float, float]) -> tuple[np.ndarray, np.ndarray,
                                                                                      np.ndarray]:
    """Clip each channel of (C, ...) ``image`` to its percentiles and scale it to [-1, 1].

    Returns:
        (scaled float32 array, per-channel low values, per-channel high values), so that
        ``low + (scaled + 1) / 2 * (high - low)`` restores the clipped intensities.

    Example:
        >>> scaled, low, high = scale_to_unit_range(np.array([[0.0, 50.0, 100.0, 1000.0]]), (0.0, 75.0))
        >>> [round(float(v), 3) for v in scaled[0]], low.tolist(), high.tolist()  # 75th percentile (325) -> 1
        ([-1.0, -0.692, -0.385, 1.0], [0.0], [325.0])
    """
    image = np.asarray(image, dtype=np.float32)
    flat = image.reshape(image.shape[0], -1)
    low, high = np.percentile(flat, percentiles, axis=1)
    span = np.maximum(high - low, 1e-8)
    shape = (-1,) + (1,) * (image.ndim - 1)
    scaled = np.clip((image - low.reshape(shape)) / span.reshape(shape), 0.0, 1.0) * 2.0 - 1.0
    return scaled.astype(np.float32), low, high


def _cases(pre_dir: Path, datasets: Sequence[str] | None) -> list[tuple[PreprocessedCase, Path]]:
    """(record, npz path) of every case; ``pre_dir`` may also be one dataset folder inside ``PRE``."""
    if not datasets and (pre_dir / "dataset.json").is_file() and any(pre_dir.glob("*.npz")):
        pre_dir, datasets = pre_dir.parent, [pre_dir.name]
    cases = load_preprocessed(pre_dir, list(datasets) if datasets else None)
    if not cases:
        raise FileNotFoundError(f"{pre_dir}: no preprocessed cases (<dataset>/<case>.npz + .json) found"
                                + (f" in dataset(s) {list(datasets)}" if datasets else ""))
    return cases


def load_domain(name: str, pre_dir: str | Path, datasets: Sequence[str] | None,
                percentiles: tuple[float, float]) -> Domain:
    """Read every preprocessed case of one center and cut it into scaled slices.

    Args:
        name: label for messages (``"source"``/``"target"``).
        pre_dir: preprocessed folder (``PRE``) or one dataset folder inside it.
        datasets: dataset subfolders to use; None for all.
        percentiles: per-case intensity percentiles mapped to -1 and 1.

    Returns:
        ``Domain``. Raises ``FileNotFoundError``/``ValueError`` naming the folder or file.

    Example:
        >>> import tempfile
        >>> from lgeseg.preprocessing import run_preprocessing
        >>> from lgeseg.preprocessing.example_data import tiny_planned_dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> raw, plan = tiny_planned_dataset(Path(tmp.name), cases=2)
        >>> _ = run_preprocessing([raw], Path(tmp.name) / "pre", plan)
        >>> domain = load_domain("source", Path(tmp.name) / "pre", None, (0.5, 99.5))
        >>> sorted(set(domain.case_ids)), domain.slices[0].ndim, float(domain.slices[0].max())  # (C, y, x) in [-1, 1]
        (['center1/c1_000', 'center1/c1_001'], 3, 1.0)
        >>> tmp.cleanup()
    """
    slices, case_ids, spacings = [], [], []
    for record, path in _cases(Path(pre_dir), datasets):
        image, _ = load_case_arrays(path)
        if image.ndim != 4:
            raise ValueError(f"{path}: 'image' must be (C, z, y, x), found shape {image.shape}")
        scaled, _, _ = scale_to_unit_range(image, percentiles)
        slices += [np.ascontiguousarray(scaled[:, z]) for z in range(scaled.shape[1])]
        case_ids += [f"{record.dataset}/{record.case_id}"] * scaled.shape[1]
        spacings.append(tuple(float(s) for s in record.spacing_after_resampling[1:]))
    spacing_yx = tuple(float(v) for v in np.median(spacings, axis=0))
    logger.info("%s: %d slices from %d cases in %s", name, len(slices), len(set(case_ids)), pre_dir)
    return Domain(name, slices, case_ids, spacing_yx)  # type: ignore[arg-type]


def split_cases(domain: Domain, fraction: float, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Split the cases of ``domain`` into (training, validation) ids; no validation with < 2 cases.

    Example:
        >>> slices = [np.zeros((1, 8, 8), np.float32)] * 4
        >>> domain = Domain("target", slices, ["c/p1", "c/p1", "c/p2", "c/p3"], (1.25, 1.25))
        >>> split_cases(domain, 0.2, np.random.default_rng(0))  # one case held out for validation
        (['c/p1', 'c/p2'], ['c/p3'])
    """
    cases = sorted(set(domain.case_ids))
    count = int(round(fraction * len(cases))) if len(cases) >= 2 else 0
    count = min(max(count, 1 if fraction > 0 and len(cases) >= 2 else 0), len(cases) - 1)
    chosen = set(rng.choice(len(cases), size=count, replace=False).tolist()) if count else set()
    return [c for i, c in enumerate(cases) if i not in chosen], [c for i, c in enumerate(cases) if i in chosen]


def random_patches(domain: Domain, count: int, patch_size: tuple[int, int], rng: np.random.Generator) -> torch.Tensor:
    """Draw ``count`` random (C, ph, pw) patches from random slices (slices smaller than the patch are padded with -1).

    Returns:
        float32 tensor (count, C, ph, pw) in [-1, 1].

    Example:
        >>> domain = Domain("source", [np.zeros((1, 12, 40), np.float32)], ["c/p1"], (1.25, 1.25))
        >>> patches = random_patches(domain, 3, (16, 16), np.random.default_rng(0))
        >>> tuple(patches.shape), float(patches.min())  # rows missing from the 12-row slice padded with -1
        ((3, 1, 16, 16), -1.0)
    """
    patches = []
    for index in rng.integers(0, len(domain.slices), size=count):
        image = domain.slices[int(index)]
        pad = [(0, 0)] + [(max(0, (p - s + 1) // 2), max(0, p - s - (p - s + 1) // 2))
                          for s, p in zip(image.shape[1:], patch_size, strict=True)]
        image = np.pad(image, pad, constant_values=-1.0)
        y0 = int(rng.integers(0, image.shape[1] - patch_size[0] + 1))
        x0 = int(rng.integers(0, image.shape[2] - patch_size[1] + 1))
        patches.append(image[:, y0:y0 + patch_size[0], x0:x0 + patch_size[1]])
    return torch.from_numpy(np.stack(patches))


class ImagePool:
    """History of generated images shown to the discriminator (Shrivastava et al.; CycleGAN uses 50).

    ``query`` returns, per image, either the new image or (half of the time, once full) an older
    one it replaces, so the discriminator does not forget earlier generator states.
    """

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self.rng = rng
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) generated images -> (B, C, H, W) images for the discriminator (detached)."""
        if self.size == 0:
            return images.detach()
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.cpu().clone())
                out.append(image)
            elif self.rng.random() < 0.5:
                index = int(self.rng.integers(0, self.size))
                out.append(self.images[index].to(image.device))
                self.images[index] = image.cpu().clone()
            else:
                out.append(image)
        return torch.stack(out)
