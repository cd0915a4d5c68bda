"""Postprocessing of predicted label maps: keep the largest connected component (the paper, 2.6.2).

Three variants, named as in ``model.json``'s ``postprocessing`` field:

* ``"none"``: the prediction as the network made it.
* ``"lcc"``: keep the largest 3D connected component of the whole left ventricle (all labels > 0
  together) and set every voxel outside it to background. Labels inside the component are kept
  as predicted, so a myocardium ring around the blood pool stays intact.
* ``"lcc_per_label"``: ``"lcc"``, then for each label keep only its own largest component
  (removed voxels become background).

Connectivity is full 3D (26 neighbours), so slices that touch at an edge or corner count as
connected: with thick, misaligned short-axis slices neighbouring slices rarely overlap face to face.
``select_postprocessing`` picks the variant with the best mean Dice on validation cases.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from lgeseg.core.records import LABELS
from lgeseg.evaluation.metrics import dice, without_ignored
from lgeseg.files import io

logger = logging.getLogger(__name__)

#: Variants from simplest to most aggressive; ties in ``select_postprocessing`` go to the earlier one.
POSTPROCESSING_VARIANTS: tuple[str, ...] = ("none", "lcc", "lcc_per_label")


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components (full connectivity: 26 neighbours in 3D, 8 in 2D) of a boolean ``mask``.

    Returns (labels, count): int32 array of ``mask``'s shape, 0 outside the mask and 1..count numbered in
    scan order (last axis fastest) of each component's first voxel. Uses SimpleITK (already loaded to read
    images), which keeps SciPy's import out of ``lgeseg_predict``'s start-up.

    Example:
        >>> labels, count = label_components(np.array([[[1, 0, 0, 1], [1, 0, 0, 1], [0, 1, 0, 0]]], bool))
        >>> count  # the bottom voxel touches the left column at a corner (full connectivity)
        2
        >>> labels[0]
        array([[1, 0, 0, 2],
               [1, 0, 0, 2],
               [0, 1, 0, 0]], dtype=int32)
    """
    mask = np.asarray(mask, dtype=np.uint8)
    image = sitk.GetImageFromArray(mask)
    components = sitk.ConnectedComponent(image, True)
    labels = sitk.GetArrayFromImage(components).astype(np.int32, copy=False)
    return labels, int(labels.max()) if labels.size else 0


def component_sizes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``label_components`` of ``mask`` and the voxel count of each: (labels, sizes) with ``sizes[k]`` the size
    of component k for k = 1..count and ``sizes[0] = 0`` (background is no component).

    Example:
        >>> _, sizes = component_sizes(np.array([[[1, 1, 0, 1]]], bool))
        >>> sizes.tolist()  # background, then components 1 and 2
        [0, 2, 1]
    """
    components, count = label_components(mask)
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    sizes[0] = 0
    return components, sizes


def largest_component_mask(mask: np.ndarray) -> np.ndarray:
    """Return the largest 3D connected component (26-connectivity) of a boolean ``mask`` (z, y, x).

    Ties go to the component met first in (z, y, x) scan order. An empty mask gives an empty mask.

    Example:
        >>> largest_component_mask(np.array([[[1, 1, 0, 1]]], bool)).astype(int).tolist()
        [[[1, 1, 0, 0]]]
    """
    components, sizes = component_sizes(mask)
    if len(sizes) <= 2:
        return components > 0
    return components == int(np.argmax(sizes))


def keep_largest_component(label_map: np.ndarray, per_label: bool = False,
                           spacing: Sequence[float] | None = None) -> np.ndarray:
    """Keep the largest connected component of the whole LV and drop label islands outside it.

    Args:
        label_map: uint8 (z, y, x); 0 background, 1 blood pool, 2 myocardium (any labels > 0 work).
        per_label: also keep only the largest component of each label inside the LV component
            (variant ``"lcc_per_label"``).
        spacing: mm (z, y, x), optional; only used to log the removed volume in mL. The largest
            component is the same in voxels and in mm^3 on one grid.

    Returns:
        A new uint8 (z, y, x) label map; removed voxels are 0. The input is not modified.

    Example:
        >>> labels = np.zeros((1, 4, 8), np.uint8)
        >>> labels[0, 1:3, 1:4] = 1; labels[0, 1:3, 2] = 2; labels[0, 0, 7] = 2  # the LV and a far island
        >>> keep_largest_component(labels)[0]
        array([[0, 0, 0, 0, 0, 0, 0, 0],
               [0, 1, 2, 1, 0, 0, 0, 0],
               [0, 1, 2, 1, 0, 0, 0, 0],
               [0, 0, 0, 0, 0, 0, 0, 0]], dtype=uint8)
    """
    label_map = np.asarray(label_map)
    if label_map.ndim != 3:
        raise ValueError(f"expected a 3D (z, y, x) label map, found shape {label_map.shape}")
    keep = largest_component_mask(label_map > 0)
    result = np.where(keep, label_map, 0).astype(np.uint8)
    if per_label:
        for value in np.unique(result):
            if value == 0:
                continue
            this = result == value
            result[this & ~largest_component_mask(this)] = 0
    if spacing is not None and logger.isEnabledFor(logging.DEBUG):
        removed = int(np.count_nonzero(label_map)) - int(np.count_nonzero(result))
        logger.debug("postprocessing removed %d voxels (%.2f mL)", removed, removed * float(np.prod(spacing)) / 1000)
    return result


def apply_postprocessing(label_map: np.ndarray, variant: str) -> np.ndarray:
    """Apply a named variant (``"none"``, ``"lcc"``, ``"lcc_per_label"``) to a uint8 (z, y, x) label map.

    Example:
        >>> labels = np.zeros((1, 3, 6), np.uint8); labels[0, :, :3] = 1; labels[0, 1, 1] = 2; labels[0, 0, 5] = 2
        >>> int(apply_postprocessing(labels, "none")[0, 0, 5]), int(apply_postprocessing(labels, "lcc")[0, 0, 5])
        (2, 0)
    """
    if variant == "none":
        return np.asarray(label_map).astype(np.uint8, copy=False)
    if variant == "lcc":
        return keep_largest_component(label_map)
    if variant == "lcc_per_label":
        return keep_largest_component(label_map, per_label=True)
    raise ValueError(f"unknown postprocessing {variant!r}; expected one of {', '.join(POSTPROCESSING_VARIANTS)}")


def _mean_dice(predictions: Sequence[np.ndarray], references: Sequence[np.ndarray],
               labels: Sequence[int], ignore_label: int | None = None) -> float:
    pairs = [without_ignored(p, r, ignore_label) for p, r in zip(predictions, references, strict=True)]
    scores = [dice(p, r, label) for p, r in pairs for label in labels]
    return float(np.mean(scores)) if scores else 0.0


def select_postprocessing(predictions: list[np.ndarray], references: list[np.ndarray],
                          labels: Sequence[int] | None = None, ignore_label: int | None = None) -> str:
    """Choose the postprocessing variant with the best mean Dice on validation cases.

    Args:
        predictions: raw network label maps, uint8 (z, y, x), one per case.
        references: reference label maps of the same shapes.
        labels: label values to average Dice over (default: blood pool and myocardium).
        ignore_label: a reference value whose voxels count in no Dice (``metrics.without_ignored``, applied
            after postprocessing), or None.

    Returns:
        ``"none"``, ``"lcc"`` or ``"lcc_per_label"``. A variant must improve the mean Dice by more
        than 1e-6 over every simpler one to be chosen (ties go to the simpler variant). Dice of an
        empty prediction against an empty reference counts as 1 (see ``evaluation.dice``).

    Example:
        >>> ref = np.zeros((1, 3, 6), np.uint8); ref[0, :, :3] = 1; ref[0, 1, 1] = 2
        >>> pred = ref.copy(); pred[0, 0, 5] = 2  # a false island far from the LV
        >>> select_postprocessing([pred], [ref])
        'lcc'
        >>> select_postprocessing([ref], [ref])  # nothing to gain: the simplest variant
        'none'
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    for index, (p, r) in enumerate(zip(predictions, references, strict=True)):
        if np.shape(p) != np.shape(r):
            raise ValueError(f"case {index}: prediction shape {np.shape(p)} != reference shape {np.shape(r)}")
    labels = tuple(labels) if labels is not None else tuple(v for v in LABELS.values() if v > 0)
    best, best_score = "none", -1.0
    for variant in POSTPROCESSING_VARIANTS:
        processed = [apply_postprocessing(p, variant) for p in predictions]
        score = _mean_dice(processed, references, labels, ignore_label)
        logger.info("postprocessing %-14s mean Dice %.5f", variant, score)
        if score > best_score + 1e-6:
            best, best_score = variant, score
    return best


def postprocess_folder(input_dir: str | Path, output_dir: str | Path, per_label: bool = False,
                       overwrite: bool = False) -> list[Path]:
    """Keep the largest LV component of every label map in ``input_dir``; write to ``output_dir``.

    Args:
        input_dir: folder of label maps (.nii.gz, .nii, .mha, .nrrd).
        output_dir: destination; must differ from ``input_dir``. Same file names, same geometry.
        per_label: use ``"lcc_per_label"`` instead of ``"lcc"``.
        overwrite: rewrite outputs that already exist (otherwise they are skipped).

    Returns:
        The paths written (skipped files are not included).

    Example:
        >>> import shutil, tempfile
        >>> from lgeseg.core.records import CaseGeometry
        >>> tmp = Path(tempfile.mkdtemp())
        >>> geometry = CaseGeometry((1, 3, 6), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> labels = np.zeros((1, 3, 6), np.uint8); labels[0, :, :3] = 1; labels[0, 0, 5] = 2
        >>> io.write_label(tmp / "pred" / "c1.nii.gz", labels, geometry)
        >>> [p.name for p in postprocess_folder(tmp / "pred", tmp / "post")]
        ['c1.nii.gz']
        >>> int(io.read_label(tmp / "post" / "c1.nii.gz")[0].max())  # the island of label 2 is gone
        1
        >>> shutil.rmtree(tmp)
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"{input_dir}: input folder not found")
    if output_dir.resolve() == input_dir.resolve():
        raise ValueError(f"{output_dir}: output folder must differ from the input folder "
                         "(inputs are never overwritten)")
    files = sorted(p for p in input_dir.iterdir() if io.file_ending(p) and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"{input_dir}: no label maps found (expected .nii.gz, .nii, .mha or .nrrd files)")
    written: list[Path] = []
    for path in tqdm(files, desc="postprocess", unit="case"):
        target = output_dir / path.name
        if target.exists() and not overwrite:
            logger.info("%s exists, skipped (use --overwrite)", target)
            continue
        label_map, geometry = io.read_label(path)
        result = keep_largest_component(label_map, per_label=per_label, spacing=geometry.spacing)
        io.write_label(target, result, geometry)
        written.append(target)
    return written
