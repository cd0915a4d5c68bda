"""Preview of a preset: one slice of a raw dataset augmented many times, as a PNG grid.

Like the paper's Figure 3: the first tile is the un-augmented patch, the others are random
augmentations, each with the label contours and a caption naming what was applied.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch

from lgeseg.augmentation.pipeline import IntensityStep, augment_batch_with_params
from lgeseg.augmentation.presets import get_preset
from lgeseg.augmentation.spatial import SpatialParams
from lgeseg.datasets.layout import RawCase, list_cases
from lgeseg.files.io import read_image, read_label

logger = logging.getLogger(__name__)

_CONTOUR_COLOURS = ("#ff3b30", "#34c759", "#0a84ff", "#ffcc00")


def normalize_percentile(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Clip ``image`` to its ``low``/``high`` percentiles and scale to [0, 1] (float32, any shape).

    Example:
        >>> scaled = normalize_percentile(np.array([0.0, 1.0, 2.0, 3.0, 400.0]), low=0.0, high=75.0)
        >>> [round(float(v), 3) for v in scaled]  # the 75th percentile (3) -> 1; 400 clipped
        [0.0, 0.333, 0.667, 1.0, 1.0]
    """
    lo, hi = np.percentile(image, (low, high))
    return np.clip((image - lo) / max(float(hi - lo), 1e-8), 0.0, 1.0).astype(np.float32)


def _pick_case(dataset_dir: Path, case_id: str | None) -> RawCase:
    cases = list_cases(dataset_dir)
    if not cases:
        raise ValueError(f"{dataset_dir}: no cases in imagesTr")
    if case_id is None:
        return next((c for c in cases if c.label_path is not None), cases[0])
    for case in cases:
        if case.case_id == case_id:
            return case
    raise ValueError(f"{dataset_dir}: no case {case_id!r}; available: {', '.join(c.case_id for c in cases[:10])} ...")


def load_slice(
    dataset_dir: str | Path, case_id: str | None = None, slice_index: int | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[float, float], str]:
    """Read one short-axis slice of a raw dataset.

    Args:
        dataset_dir: raw dataset (nnU-Net v2 layout).
        case_id: case to read (default: the first labelled case).
        slice_index: z index (default: the slice with the most foreground, else the middle one).

    Returns:
        (image (C, y, x) float32 percentile-normalized to [0, 1] per channel, label (y, x) int64
        (zeros if the case has no label), spacing (y, x) mm, a description "case slice k").

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import tiny_dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> raw = tiny_dataset(Path(tmp.name) / "raw")
        >>> image, label, spacing, title = load_slice(raw)  # the first labelled case, its slice with most foreground
        >>> image.shape, float(image.max()), sorted(np.unique(label).tolist()), title
        ((1, 32, 32), 1.0, [0, 1, 2], 'c1_000 slice 0')
        >>> tmp.cleanup()
    """
    case = _pick_case(Path(dataset_dir), case_id)
    volumes = [read_image(p) for p in case.image_paths]
    geometry = volumes[0][1]
    label = read_label(case.label_path)[0] if case.label_path else np.zeros(geometry.shape, np.uint8)
    depth = geometry.shape[0]
    if slice_index is None:
        area = (label > 0).reshape(depth, -1).sum(1)
        slice_index = int(area.argmax()) if area.any() else depth // 2
    if not 0 <= slice_index < depth:
        raise ValueError(f"{case.image_paths[0]}: slice {slice_index} out of range; the image has {depth} slices")
    image = np.stack([normalize_percentile(v[slice_index]) for v, _ in volumes])
    return image, label[slice_index].astype(np.int64), geometry.spacing[1:], f"{case.case_id} slice {slice_index}"


def _centred_crop(image: np.ndarray, label: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Crop/zero-pad (C, y, x) and (y, x) to ``size`` around the foreground centre (or image centre)."""
    ys, xs = np.nonzero(label)
    centre = (int(ys.mean()), int(xs.mean())) if ys.size else (label.shape[0] // 2, label.shape[1] // 2)
    out_image = np.zeros((image.shape[0], *size), np.float32)
    out_label = np.zeros(size, np.int64)
    src, dst = [], []
    for axis in range(2):
        start = centre[axis] - size[axis] // 2
        lo, hi = max(start, 0), min(start + size[axis], label.shape[axis])
        src.append(slice(lo, hi))
        dst.append(slice(lo - start, hi - start))
    out_image[:, dst[0], dst[1]] = image[:, src[0], src[1]]
    out_label[dst[0], dst[1]] = label[src[0], src[1]]
    return out_image, out_label


def describe(params: SpatialParams, steps: list[IntensityStep], index: int) -> str:
    """Short caption of what was applied to sample ``index``, e.g. ``"flip-x rot 12° gamma"``.

    Example:
        >>> params = SpatialParams(torch.tensor([True]), torch.tensor([False]), torch.tensor([math.radians(12.0)]),
        ...                        torch.tensor([0.8]), torch.zeros(1, 2))
        >>> describe(params, [], 0), describe(SpatialParams.identity(1), [], 0)
        ('flip-x rot 12° zoom 1.25', 'crop only')
    """
    words = []
    if params.flip_x[index]:
        words.append("flip-x")
    if params.flip_y[index]:
        words.append("flip-y")
    if float(params.angle[index]) != 0.0:
        words.append(f"rot {math.degrees(float(params.angle[index])):.0f}°")
    if float(params.step[index]) != 1.0:
        words.append(f"zoom {1.0 / float(params.step[index]):.2f}")
    words += [step.op.replace("_", "-") for step in steps if bool(step.mask[index].any())]
    return " ".join(words) or "crop only"


def render_augmentation_grid(
    dataset_dir: str | Path,
    output_png: str | Path,
    preset_name: str = "spatial_intensity",
    case_id: str | None = None,
    slice_index: int | None = None,
    n: int = 16,
    seed: int = 0,
    patch_size: tuple[int, int] | None = None,
) -> Path:
    """Augment one slice ``n`` times with a preset and save a grid PNG with label contours.

    Args:
        dataset_dir: raw dataset folder. output_png: file to write (folders are created).
        preset_name: augmentation preset. case_id, slice_index: see ``load_slice``.
        n: number of augmented tiles (plus the original). seed: generator seed.
        patch_size: (y, x) voxels of each tile (default: the slice size, at most 256).

    Returns:
        the written path.

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import tiny_dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> raw = tiny_dataset(Path(tmp.name) / "raw")
        >>> render_augmentation_grid(raw, Path(tmp.name) / "preview.png", n=3, patch_size=(32, 32)).name
        'preview.png'
        >>> tmp.cleanup()
    """
    import matplotlib  # deferred: matplotlib loads only when a picture is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    preset = get_preset(preset_name)
    image, label, spacing, title = load_slice(dataset_dir, case_id, slice_index)
    patch = patch_size or (min(image.shape[1], 256), min(image.shape[2], 256))
    crop_image, crop_label = _centred_crop(image, label, (patch[0] * 3 // 2, patch[1] * 3 // 2))
    images = torch.from_numpy(crop_image)[None].repeat(n + 1, 1, 1, 1)
    labels = torch.from_numpy(crop_label)[None].repeat(n + 1, 1, 1)
    generator = torch.Generator().manual_seed(seed)
    num_classes = int(labels.max()) + 1
    out, out_labels, params, steps = augment_batch_with_params(
        images[1:], labels[1:], preset, patch, spacing, generator, num_classes
    )
    original, original_label, *_ = augment_batch_with_params(
        images[:1], labels[:1], get_preset("none"), patch, spacing, generator, num_classes
    )
    tiles = [(original[0, 0], original_label[0], "original")]
    tiles += [(out[i, 0], out_labels[i], describe(params, steps, i)) for i in range(n)]
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (tile, tile_label, caption) in zip(axes.flat, tiles, strict=False):
        ax.imshow(tile.numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        for value in range(num_classes - 1, 0, -1):  # blood pool drawn last, over the myocardium
            if (tile_label == value).any():
                colour = _CONTOUR_COLOURS[(value - 1) % len(_CONTOUR_COLOURS)]
                ax.contour((tile_label == value).numpy().astype(float), levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(caption, fontsize=7)
    fig.suptitle(f"preset '{preset.name}' on {title} ({spacing[0]:.2f} x {spacing[1]:.2f} mm)", fontsize=9)
    fig.tight_layout()
    output_png = Path(output_png)
    output_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output_png, dpi=90)
    plt.close(fig)
    logger.info("wrote %s", output_png)
    return output_png
