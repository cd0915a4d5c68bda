"""Dataset fingerprint: what the planner needs to know about raw datasets, and a record of their intensities.

``extract_fingerprint`` reads every training case once (in parallel) and returns a
``records.Fingerprint``, written as ``fingerprint.json``:

* ``cases``: per case spacing (mm, z y x), shape and shape after cropping to the body (voxels),
  crop box, label voxel counts and per-channel foreground intensity statistics (voxels with
  label > 0: mean, std, min, max, p00_5, p99_5).
* ``summary``: median/min/max spacing and shapes over all cases, median foreground statistics,
  and a compact foreground histogram per channel (64 bins of the per-image min-max normalized
  intensity, the normalization the paper uses, plus quantiles of normalized and raw
  intensities). It describes the training data (docs/planning.md); histogram harmonization does
  not read it: its reference is the model folder's ``harmonization_reference.json``, fit on body
  masks because a test image has no labels.
* ``centers``: the same summary per acquisition center (``center`` in dataset.json; the
  dataset's folder name when it has none).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from lgeseg.core.records import Fingerprint
from lgeseg.datasets.layout import RawCase, list_cases, load_dataset_info
from lgeseg.files import io
from lgeseg.preprocessing.crop import body_bbox, include_foreground
from lgeseg.preprocessing.parallel import parallel_map

logger = logging.getLogger(__name__)

FINGERPRINT_VERSION: int = 1
HISTOGRAM_BINS: int = 64
#: Percentile levels of the stored intensity quantiles (harmonization landmarks).
QUANTILE_LEVELS: tuple[float, ...] = (0.5, 1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5)
#: Raw foreground voxels sampled per case and channel for the pooled raw quantiles.
SAMPLES_PER_CASE: int = 4000
CLIP_PERCENTILES: tuple[float, float] = (0.5, 99.5)


def _foreground_stats(values: np.ndarray) -> dict[str, float]:
    p_low, p_high = np.percentile(values, CLIP_PERCENTILES)
    return {
        "mean": float(values.mean(dtype=np.float64)), "std": float(values.std(dtype=np.float64)),
        "min": float(values.min()), "max": float(values.max()), "p00_5": float(p_low), "p99_5": float(p_high),
    }


def _channel_entry(channel: np.ndarray, foreground: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """Statistics and histogram of one cropped channel's foreground, plus a raw sample."""
    values = channel[foreground]
    low, high = np.percentile(channel, CLIP_PERCENTILES)
    scale = float(high - low) if high > low else 1.0
    normalized = np.clip((values - low) / scale, 0.0, 1.0)
    counts, _ = np.histogram(normalized, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    entry = {
        **_foreground_stats(values),
        "num_voxels": int(values.size),
        "histogram_counts": counts.astype(int).tolist(),
        "normalized_quantiles": [round(float(v), 5) for v in np.percentile(normalized, QUANTILE_LEVELS)],
    }
    step = max(1, values.size // SAMPLES_PER_CASE)
    return entry, values[::step][:SAMPLES_PER_CASE].astype(np.float32)


def fingerprint_case(case: RawCase, ignore_label: int | None = None) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Fingerprint of one raw case and a sample of its raw foreground intensities per channel.

    ``ignore_label`` (the dataset's ``"ignore"`` value, or None): its voxels are counted in
    ``label_voxels`` but are no foreground (their class is unknown).

    Returns:
        (JSON-ready case entry, one float32 sample array per channel; empty arrays without label).

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import tiny_dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> raw = tiny_dataset(tmp.name)
        >>> entry, samples = fingerprint_case(list_cases(raw)[0])
        >>> entry["case_id"], entry["shape"], entry["label_voxels"]["2"] > 0, len(samples)
        ('c1_000', [6, 32, 32], True, 1)
        >>> tmp.cleanup()
    """
    channels = [io.read_image(path) for path in case.image_paths]
    geometry = channels[0][1]
    image = np.stack([array for array, _ in channels])
    label = io.read_label(case.label_path)[0] if case.label_path is not None else None
    box = body_bbox(image)
    if label is not None:
        if tuple(label.shape) != tuple(geometry.shape):
            raise ValueError(f"{case.label_path}: shape {label.shape} differs from the image's {geometry.shape}")
        box = include_foreground(box, label)
    entry: dict[str, Any] = {
        "case_id": case.case_id, "dataset": case.dataset, "center": case.center,
        "spacing": [round(float(s), 6) for s in geometry.spacing], "shape": list(geometry.shape),
        "crop_box": [list(axis) for axis in box], "shape_after_crop": [end - start for start, end in box],
        "label_voxels": None, "foreground": None,
    }
    samples: list[np.ndarray] = [np.empty(0, np.float32) for _ in channels]
    if label is not None:
        values, counts = np.unique(label, return_counts=True)
        entry["label_voxels"] = {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}
        slices = tuple(slice(start, end) for start, end in box)
        foreground = label[slices] > 0
        if ignore_label is not None:
            foreground &= label[slices] != ignore_label
        if foreground.any():
            results = [_channel_entry(channel[slices], foreground) for channel in image]
            entry["foreground"] = [entry_c for entry_c, _ in results]
            samples = [sample for _, sample in results]
    return entry, samples


def _range_summary(values: list[list[float]], integer: bool = False) -> dict[str, list[float]]:
    array = np.asarray(values, dtype=float)
    cast = (lambda v: int(round(v))) if integer else (lambda v: round(float(v), 5))
    return {name: [cast(v) for v in func(array, axis=0)] for name, func in
            (("median", np.median), ("min", np.min), ("max", np.max))}


def summarize(cases: list[dict[str, Any]], samples: list[list[np.ndarray]]) -> dict[str, Any]:
    """Dataset-level summary of case entries (see the module docstring).

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import tiny_dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> raw = tiny_dataset(tmp.name, cases=2)
        >>> entries, samples = zip(*(fingerprint_case(case) for case in list_cases(raw)))
        >>> summary = summarize(list(entries), list(samples))
        >>> summary["num_cases"], summary["shape"]["median"], summary["histogram"][0]["bins"]
        (2, [6, 32, 32], 64)
        >>> tmp.cleanup()
    """
    summary: dict[str, Any] = {
        "num_cases": len(cases),
        "spacing": _range_summary([c["spacing"] for c in cases]),
        "shape": _range_summary([c["shape"] for c in cases], integer=True),
        "shape_after_crop": _range_summary([c["shape_after_crop"] for c in cases], integer=True),
        "foreground_intensity": None, "histogram": None,
    }
    labelled = [(c, s) for c, s in zip(cases, samples, strict=True) if c["foreground"]]
    if not labelled:
        return summary
    num_channels = len(labelled[0][0]["foreground"])
    stats, histograms = [], []
    for ch in range(num_channels):
        per_case = [c["foreground"][ch] for c, _ in labelled]
        stats.append({key: round(float(np.median([e[key] for e in per_case])), 5)
                      for key in ("mean", "std", "min", "max", "p00_5", "p99_5")})
        counts = np.sum([e["histogram_counts"] for e in per_case], axis=0)
        pooled = np.concatenate([s[ch] for _, s in labelled])
        histograms.append({
            "bins": HISTOGRAM_BINS, "range": [0.0, 1.0], "space": "per-image min-max (p0.5-p99.5) normalized",
            "counts": counts.astype(int).tolist(),
            "density": [round(float(v), 6) for v in counts / max(counts.sum(), 1)],
            "quantile_levels": list(QUANTILE_LEVELS),
            "normalized_quantiles": [round(float(v), 5) for v in
                                     np.mean([e["normalized_quantiles"] for e in per_case], axis=0)],
            "raw_quantiles": [round(float(v), 4) for v in np.percentile(pooled, QUANTILE_LEVELS)],
        })
    summary["foreground_intensity"] = stats
    summary["histogram"] = histograms
    return summary


def _fingerprint_job(job: tuple[RawCase, int | None]) -> tuple[dict[str, Any], list[np.ndarray]]:
    return fingerprint_case(*job)


def _dataset_entries(dataset_dirs: list[Path]
                     ) -> tuple[list[dict[str, Any]], list[tuple[RawCase, int | None]], dict[str, int]]:
    """Per dataset its entry, the (case, ignore value) of its labelled cases, and the labels they share."""
    entries: list[dict[str, Any]] = []
    cases: list[tuple[RawCase, int | None]] = []
    labels = None
    for directory in dataset_dirs:
        info = load_dataset_info(directory)
        if labels is not None and info.labels != labels:
            raise ValueError(f"{Path(directory) / 'dataset.json'}: labels {info.labels} differ from {labels}")
        labels = info.labels
        found = [c for c in list_cases(directory, "Tr") if c.label_path is not None]
        if not found:
            raise ValueError(f"{Path(directory) / 'labelsTr'}: no labelled training cases to fingerprint")
        entries.append({"name": info.name, "path": str(Path(directory).resolve()), "center": info.center,
                        "vendor": info.vendor, "field_strength": info.field_strength, "num_cases": len(found),
                        "channel_names": info.channel_names, "labels": info.labels})
        cases += [(case, info.ignore_label) for case in found]
    return entries, cases, labels or {}


def extract_fingerprint(dataset_dirs: list[Path], num_workers: int = 1) -> Fingerprint:
    """Fingerprint the labelled training cases of one or more raw datasets.

    Args:
        dataset_dirs: raw dataset folders (nnU-Net v2 layout with dataset.json).
        num_workers: processes reading cases in parallel.

    Returns:
        The ``records.Fingerprint`` (``save_json`` writes it; see the module docstring). Raises ``ValueError`` when
        datasets disagree on labels or channels, or a dataset has no labelled case.

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import generate_multicenter
        >>> tmp = tempfile.TemporaryDirectory()
        >>> raws = generate_multicenter(tmp.name, cases_per_center=2, centers=(1, 2), in_plane_size=32)
        >>> fingerprint = extract_fingerprint(raws)
        >>> fingerprint.summary["num_cases"], sorted(fingerprint.centers), fingerprint.num_channels
        (4, ['center1', 'center2'], 1)
        >>> tmp.cleanup()
    """
    if not dataset_dirs:
        raise ValueError("extract_fingerprint: give at least one dataset folder")
    datasets, cases, labels = _dataset_entries([Path(d) for d in dataset_dirs])
    channel_counts = {len(d["channel_names"]) for d in datasets}
    if len(channel_counts) != 1:
        raise ValueError(f"datasets have different numbers of channels: {[d['name'] for d in datasets]}")
    results = parallel_map(_fingerprint_job, cases, num_workers, desc="fingerprint")
    entries = [entry for entry, _ in results]
    samples = [sample for _, sample in results]
    by_center: dict[str, list[int]] = {}
    for index, entry in enumerate(entries):
        by_center.setdefault(entry["center"] or entry["dataset"], []).append(index)
    return Fingerprint.from_dict({
        "fingerprint_version": FINGERPRINT_VERSION,
        "datasets": datasets,
        "num_channels": channel_counts.pop(),
        "labels": labels,
        "summary": summarize(entries, samples),
        "centers": {name: summarize([entries[i] for i in idx], [samples[i] for i in idx])
                    for name, idx in sorted(by_center.items())},
        "cases": entries,
    })
