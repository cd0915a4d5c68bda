"""Training data: preprocessed cases in memory, patch sampling, and batches assembled in background threads.

Training sets of 2D slices are small, so every preprocessed case is held in memory. A
``PatchSampler`` picks, for each sample of a batch, a dataset (balanced when there are several:
the paper's multi-center models), a case, a slice and a patch centre; about a third of each batch
is centred on a random foreground pixel. It cuts crops *larger* than the patch (room for the
rotation and scaling that ``augment_batch`` then does on the device), padding with zeros where the
slice is smaller. A ``BatchLoader`` assembles batches as NumPy in worker threads, pins them for
CUDA and hands them over in a fixed order, so results do not depend on the number of workers.

Usage (``cases`` from ``load_cases``)::

    sampler = PatchSampler(cases, patch_size=(32, 32), crop_size=(48, 48), batch_size=4)
    images, labels = sampler.sample_batch(np.random.default_rng(0))  # (4, C, 48, 48), (4, 48, 48)
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from lgeseg.core.records import PreprocessedCase

#: At most this many foreground voxels per class are kept per case for centring patches.
MAX_FOREGROUND_POINTS = 20000


@dataclasses.dataclass
class TrainingCase:
    """One preprocessed case in memory.

    Attributes:
        key: ``"<dataset>/<case_id>"``, unique across datasets.
        dataset: dataset (center) name, the unit of balanced sampling.
        image: float32 (C, z, y, x).
        label: uint8 (z, y, x).
        foreground: per foreground class, int32 (N, 3) voxel coordinates (z, y, x), subsampled.
    """

    key: str
    dataset: str
    image: np.ndarray
    label: np.ndarray
    foreground: list[np.ndarray]


def case_key(record: PreprocessedCase) -> str:
    """``"<dataset>/<case_id>"``: how splits and model.json name a case.

    Example:
        >>> from lgeseg.core.records import CaseGeometry
        >>> geometry = CaseGeometry((2, 8, 8), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> case_key(PreprocessedCase("p1", "center1", None, geometry, ((0, 2), (0, 8), (0, 8)), (2, 8, 8),
        ...                           (8.0, 1.25, 1.25), (2, 8, 8)))
        'center1/p1'
    """
    return f"{record.dataset}/{record.case_id}"


def _foreground_points(label: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    points = []
    for value in np.unique(label):
        if value == 0:
            continue
        coords = np.argwhere(label == value).astype(np.int32)
        if len(coords) > MAX_FOREGROUND_POINTS:
            coords = coords[rng.choice(len(coords), MAX_FOREGROUND_POINTS, replace=False)]
        points.append(coords)
    return points


def load_case(record: PreprocessedCase, npz_path: Path) -> TrainingCase:
    """Read one ``<case>.npz`` (image float32 (C,z,y,x), label uint8 (z,y,x)) into memory.

    Raises ``ValueError`` naming the file when the label is missing or shapes disagree.

    Example:
        >>> import tempfile
        >>> from lgeseg.core.records import CaseGeometry
        >>> tmp = tempfile.TemporaryDirectory()
        >>> geometry = CaseGeometry((2, 8, 8), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> record = PreprocessedCase("p1", "center1", None, geometry, ((0, 2), (0, 8), (0, 8)), (2, 8, 8),
        ...                           (8.0, 1.25, 1.25), (2, 8, 8))
        >>> label = np.zeros((2, 8, 8), np.uint8)
        >>> label[:, 2:5, 2:5] = 1
        >>> np.savez(Path(tmp.name) / "p1.npz", image=np.ones((1, 2, 8, 8), np.float32), label=label)
        >>> case = load_case(record, Path(tmp.name) / "p1.npz")
        >>> case.key, case.image.shape, [len(points) for points in case.foreground]  # 18 voxels of label 1
        ('center1/p1', (1, 2, 8, 8), [18])
        >>> tmp.cleanup()
    """
    with np.load(npz_path) as data:
        if "label" not in data:
            raise ValueError(f"{npz_path}: no 'label' array; training needs labelled cases")
        image = np.ascontiguousarray(data["image"], dtype=np.float32)
        label = np.ascontiguousarray(data["label"], dtype=np.uint8)
    if image.ndim != 4 or image.shape[1:] != label.shape:
        raise ValueError(f"{npz_path}: image {image.shape} (expected (C, z, y, x)) does not match label {label.shape}")
    rng = np.random.default_rng(0)  # fixed: the subsample of foreground points is part of the data
    return TrainingCase(case_key(record), record.dataset, image, label, _foreground_points(label, rng))


def load_cases(entries: Sequence[tuple[PreprocessedCase, Path]], keys: Sequence[str]) -> list[TrainingCase]:
    """Load the cases whose ``case_key`` is in ``keys``, in the order of ``keys``.

    Raises ``ValueError`` naming keys that are not in ``entries``.

    Example:
        >>> import tempfile
        >>> from lgeseg.core.records import CaseGeometry
        >>> tmp = tempfile.TemporaryDirectory()
        >>> geometry = CaseGeometry((2, 8, 8), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> record = PreprocessedCase("p1", "center1", None, geometry, ((0, 2), (0, 8), (0, 8)), (2, 8, 8),
        ...                           (8.0, 1.25, 1.25), (2, 8, 8))
        >>> image, label = np.ones((1, 2, 8, 8), np.float32), np.ones((2, 8, 8), np.uint8)
        >>> np.savez(Path(tmp.name) / "p1.npz", image=image, label=label)
        >>> [case.key for case in load_cases([(record, Path(tmp.name) / "p1.npz")], ["center1/p1"])]
        ['center1/p1']
        >>> load_cases([(record, Path(tmp.name) / "p1.npz")], ["center1/p2"])
        Traceback (most recent call last):
        ValueError: cases ['center1/p2'] (of 1) listed in the split are not in the preprocessed data
        >>> tmp.cleanup()
    """
    by_key = {case_key(record): (record, path) for record, path in entries}
    missing = [k for k in keys if k not in by_key]
    if missing:
        raise ValueError(f"cases {missing[:5]} (of {len(missing)}) listed in the split are not in the "
                         "preprocessed data")
    return [load_case(*by_key[k]) for k in keys]


def extract_crop(array: np.ndarray, centre: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Crop (..., H, W) to (..., h, w) voxels centred at ``centre`` (y, x); zeros outside the array.

    Example:
        >>> extract_crop(np.arange(16).reshape(4, 4), centre=(0, 0), size=(3, 3)).tolist()  # zeros outside
        [[0, 0, 0], [0, 0, 1], [0, 4, 5]]
    """
    out = np.zeros(array.shape[:-2] + tuple(size), dtype=array.dtype)
    starts = [c - s // 2 for c, s in zip(centre, size, strict=True)]
    src, dst = [], []
    for start, length, dim in zip(starts, size, array.shape[-2:], strict=True):
        lo, hi = max(start, 0), min(start + length, dim)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - start, hi - start))
    out[(..., *dst)] = array[(..., *src)]
    return out


def _random_centre(length: int, patch: int, rng: np.random.Generator) -> int:
    """A centre along one axis such that the patch stays inside the slice (or the slice inside the patch)."""
    lo, hi = patch // 2, length - (patch - patch // 2)
    lo, hi = min(lo, hi), max(lo, hi)
    return int(rng.integers(lo, hi + 1))


class PatchSampler:
    """Draws batches of crops from in-memory cases, balanced over datasets, with foreground oversampling."""

    def __init__(self, cases: Sequence[TrainingCase], patch_size: tuple[int, int], crop_size: tuple[int, int],
                 batch_size: int, foreground_fraction: float = 0.33) -> None:
        """Args: cases in memory; patch and crop sizes (y, x) voxels; slices per batch; share forced to foreground."""
        if not cases:
            raise ValueError("no training cases to sample from")
        self.cases = list(cases)
        self.patch_size = tuple(patch_size)
        self.crop_size = tuple(crop_size)
        self.batch_size = batch_size
        forced = round(batch_size * foreground_fraction)
        self.num_forced = max(forced, 1) if foreground_fraction > 0 else 0
        groups: dict[str, list[int]] = {}
        for index, case in enumerate(self.cases):
            groups.setdefault(case.dataset, []).append(index)
        self.groups = [groups[name] for name in sorted(groups)]

    def _pick_case(self, rng: np.random.Generator) -> TrainingCase:
        group = self.groups[int(rng.integers(len(self.groups)))]
        return self.cases[group[int(rng.integers(len(group)))]]

    def _sample(self, rng: np.random.Generator, force_foreground: bool) -> tuple[np.ndarray, np.ndarray, str]:
        case = self._pick_case(rng)
        if force_foreground and case.foreground:
            points = case.foreground[int(rng.integers(len(case.foreground)))]
            z, cy, cx = (int(v) for v in points[int(rng.integers(len(points)))])
        else:
            z = int(rng.integers(case.label.shape[0]))
            cy, cx = (_random_centre(n, p, rng) for n, p in zip(case.label.shape[1:], self.patch_size, strict=True))
        image = extract_crop(case.image[:, z], (cy, cx), self.crop_size)
        label = extract_crop(case.label[z], (cy, cx), self.crop_size)
        return image, label, f"{case.key}@{z},{cy},{cx}"

    def sample_batch(self, rng: np.random.Generator,
                     drawn: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One batch: images float32 (B, C, ch, cw) and labels uint8 (B, ch, cw); the last ~third is foreground.

        When ``drawn`` is a list, ``"<dataset>/<case>@z,y,x"`` (slice and crop centre, voxels) of each
        sample is appended to it.
        """
        samples = [self._sample(rng, i >= self.batch_size - self.num_forced) for i in range(self.batch_size)]
        if drawn is not None:
            drawn.extend(s[2] for s in samples)
        return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])


class BatchLoader:
    """``num_batches`` batches from a sampler, assembled by ``num_workers`` threads (0: in the caller).

    Batch ``i`` is drawn with ``np.random.default_rng([*seed, i])``, so the sequence is the same for
    any number of workers. Yields ``(images float32 (B,C,h,w), labels uint8 (B,h,w))`` CPU tensors,
    pinned when ``pin_memory``. ``wait_seconds`` accumulates the time the consumer waited for data.
    With ``record``, ``drawn[i]`` lists what batch ``i`` was cut from (see ``PatchSampler.sample_batch``).
    """

    def __init__(self, sampler: PatchSampler, num_batches: int, seed: Sequence[int], num_workers: int = 2,
                 pin_memory: bool = False, prefetch: int = 3, record: bool = False) -> None:
        self.sampler, self.num_batches, self.seed = sampler, num_batches, list(seed)
        self.num_workers, self.pin_memory, self.prefetch = num_workers, pin_memory, prefetch
        self.wait_seconds = 0.0
        self.record = record
        self.drawn: dict[int, list[str]] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._queues: list[queue.Queue] = []

    def _make(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        drawn: list[str] | None = [] if self.record else None
        images, labels = self.sampler.sample_batch(np.random.default_rng([*self.seed, index]), drawn)
        if drawn is not None:
            self.drawn[index] = drawn  # one key per batch index: safe from several threads
        images_t, labels_t = torch.from_numpy(images), torch.from_numpy(labels)
        if self.pin_memory:
            images_t, labels_t = images_t.pin_memory(), labels_t.pin_memory()
        return images_t, labels_t

    def _work(self, worker: int) -> None:
        out = self._queues[worker]
        for index in range(worker, self.num_batches, self.num_workers):
            try:
                item: object = self._make(index)
            except BaseException as err:  # handed to the consumer, which re-raises it
                item = err
            while not self._stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set() or isinstance(item, BaseException):
                return

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.num_workers == 0:
            for index in range(self.num_batches):
                start = time.perf_counter()
                batch = self._make(index)
                self.wait_seconds += time.perf_counter() - start
                yield batch
            return
        self._queues = [queue.Queue(maxsize=self.prefetch) for _ in range(self.num_workers)]
        self._threads = [threading.Thread(target=self._work, args=(w,), daemon=True) for w in range(self.num_workers)]
        for thread in self._threads:
            thread.start()
        try:
            for index in range(self.num_batches):
                start = time.perf_counter()
                item = self._queues[index % self.num_workers].get()
                self.wait_seconds += time.perf_counter() - start
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the worker threads (idempotent)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
