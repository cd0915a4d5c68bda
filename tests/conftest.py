"""Shared test fixtures: torch threads, tiny synthetic raw and preprocessed datasets, tiny models.

Tests take their data from these fixtures instead of writing their own (no test module imports
another):

- ``raw_centers``: raw datasets from ``lgeseg.synth`` (read-only); ``preprocessed_centers``: the same
  through the real preprocessing (read-only).
- ``lv_phantom`` and ``make_raw_dataset``: an LV phantom with a known body box, and raw datasets of it
  with chosen spacings, brightness and labels.
- ``make_preprocessed``: a preprocessed folder of tiny LV-like cases (``tiny_case``: one such case, in
  memory); ``tiny_plan`` and ``tiny_training``: settings for a few-second CPU training.
- ``make_model`` and ``tiny_model`` (read-only): an untrained model folder; ``oblique_geometry`` and
  ``write_input_image``: prediction inputs on an oblique anisotropic grid.
- ``benchmarks_common``: ``benchmarks/_common.py``, which the reliability test shares with its benchmark;
  ``planted_inputs``: ``benchmarks/_planted_inputs.py``, issue 24's input defects, planted alike by
  ``tests/test_reliability_inputs.py`` and ``benchmarks/reliability_inputs.py``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from lgeseg.core.records import (
    LABELS,
    CaseFingerprint,
    CaseGeometry,
    Fingerprint,
    Plan,
    PreprocessedCase,
    save_json,
)
from lgeseg.files import io
from lgeseg.model.folder import write_untrained_model
from lgeseg.planning import small_plan
from lgeseg.preprocessing import run_preprocessing
from lgeseg.synth import generate_multicenter

ROOT = Path(__file__).resolve().parents[1]
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Run a test module's tiny networks on one torch thread (several times faster on contended cores).

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def raw_centers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Raw synthetic datasets ``center1`` and ``center2`` (2 cases each, 32 x 32 in-plane); do not modify."""
    folders = generate_multicenter(tmp_path_factory.mktemp("raw"), cases_per_center=2, seed=0, centers=(1, 2),
                                   in_plane_size=32)
    return {folder.name: folder for folder in folders}


@pytest.fixture(scope="session")
def lv_phantom() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """``lv_phantom(rng, brightness=1.0) -> (image, label)``: the (4, 56, 64) phantom of ``make_raw_dataset``.

    Its body is the box rows 6..50, columns 5..58 (ends exclusive); see ``_lv_phantom``.
    """
    return _lv_phantom


@pytest.fixture(scope="session")
def make_raw_dataset() -> Callable[..., Path]:
    """``make_raw_dataset(root, name, spacings, center=None, brightness=1.0, labels=None, seed=0) -> root/name``."""
    return _make_raw_dataset


@pytest.fixture(scope="session")
def tiny_case() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """``tiny_case(rng) -> (image (1, 3, 40, 44), label (3, 40, 44))``: one case of ``make_preprocessed``, in memory."""
    return _tiny_case


@pytest.fixture(scope="session")
def make_preprocessed() -> Callable[..., Path]:
    """``make_preprocessed(root, {dataset: n_cases}, seed=0, plan=None) -> root``: a preprocessed folder."""
    return _make_preprocessed


@pytest.fixture(scope="session")
def preprocessed_centers(raw_centers: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``raw_centers`` through ``run_preprocessing``, one preprocessed folder per center; do not modify.

    The plan is ``tiny_plan`` at 7 mm in-plane (the raw cases have ~10 mm), so slices are about 45 x 45 pixels;
    each case's ``source_files`` name its raw image and label in ``raw_centers``.
    """
    plan = dataclasses.replace(_tiny_plan(), target_spacing=(10.0, 7.0, 7.0))
    root = tmp_path_factory.mktemp("preprocessed")
    for name, raw in raw_centers.items():
        run_preprocessing([raw], root / name, plan)
    return {name: root / name for name in raw_centers}


@pytest.fixture(scope="session")
def tiny_plan() -> Callable[..., Plan]:
    """``tiny_plan(patch=(32, 32)) -> Plan``: a 3-stage, 8-feature U-Net plan."""
    return _tiny_plan


@pytest.fixture(scope="session")
def tiny_training() -> dict:
    """``train``/``finetune`` keyword arguments for a few-second CPU run (do not modify; copy with ``{**...}``)."""
    return dict(TINY_TRAINING)


@pytest.fixture(scope="session")
def make_model() -> Callable[..., Path]:
    """``make_model(model_dir, target_spacing=(6.0, 1.6, 1.6), postprocessing="lcc", seed=0, ...)``: an untrained
    2-stage, 4-feature model folder (``lgeseg.model.folder.write_untrained_model``)."""
    return write_untrained_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 2-stage model folder (``make_model`` defaults); do not modify."""
    return write_untrained_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def oblique_geometry() -> Callable[..., CaseGeometry]:
    """``oblique_geometry(shape) -> CaseGeometry``: rotated about z and x, anisotropic (7.5, 1.37, 1.21) mm."""
    return _oblique_geometry


@pytest.fixture(scope="session")
def write_input_image() -> Callable[..., CaseGeometry]:
    """``write_input_image(path, shape, seed=0) -> geometry``: a noisy image with a bright disc, oblique grid."""
    return _write_input_image


def _benchmarks_module(name: str) -> ModuleType:
    """``benchmarks/<name>.py``, loaded as the benchmark scripts load it (their folder is no package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def benchmarks_common() -> ModuleType:
    """``benchmarks/_common.py``, loaded as the benchmark scripts load it (their folder is no package)."""
    return _benchmarks_module("_common")


@pytest.fixture(scope="session")
def planted_inputs() -> ModuleType:
    """``benchmarks/_planted_inputs.py``: the input defects of issue 24, one owner for test and benchmark."""
    return _benchmarks_module("_planted_inputs")


TINY_TRAINING = {"epochs": 2, "iterations_per_epoch": 4, "device": "cpu", "num_workers": 1, "augmentation": "none"}


def _tiny_plan(patch: tuple[int, int] = (32, 32)) -> Plan:
    """A 3-stage, 8-feature U-Net plan for 32x32 patches."""
    return small_plan(target_spacing=(8.0, 1.5, 1.5), patch_size=patch, features=(8, 16, 32), batch_size=4)


def _rotation(about_z_deg: float, about_x_deg: float) -> tuple[float, ...]:
    """An ITK direction (row-major 3x3): a rotation about z, then about x."""
    a, b = np.deg2rad(about_z_deg), np.deg2rad(about_x_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return tuple((rz @ rx).ravel().tolist())


def _oblique_geometry(shape: tuple[int, int, int]) -> CaseGeometry:
    """An oblique (25 deg about z, 10 deg about x), anisotropic grid of ``shape`` (z, y, x)."""
    return CaseGeometry(shape=shape, spacing=(7.5, 1.37, 1.21), origin=(-40.2, 12.5, 101.0),
                        direction=_rotation(25.0, 10.0))


def _write_input_image(path: Path, shape: tuple[int, int, int], seed: int = 0) -> CaseGeometry:
    """Write a noisy image (mean 100) with a bright disc (+300) on an oblique grid to ``path``; returns the grid."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100, 10, size=shape).astype(np.float32)
    _, ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx]
    image[:, np.hypot(yy - ny / 2, xx - nx / 2) < ny / 4] += 300
    geometry = _oblique_geometry(shape)
    io.write_image(path, image, geometry)
    return geometry


PHANTOM_SHAPE = (4, 56, 64)


def _lv_phantom(rng: np.random.Generator, brightness: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A (4, 56, 64) LV phantom: body box (rows 6..50, columns 5..58) on dark noise, a blood pool (label 1,
    radius 7 px) in a myocardial ring (label 2, to 11 px) placed at random near the centre, the apex
    (slice 0) myocardium only; intensities (background ~3, body 100, blood 300, myocardium 60) times
    ``brightness``. Returns image float32 (z, y, x) and label uint8 (z, y, x)."""
    z, y, x = PHANTOM_SHAPE
    yy, xx = np.mgrid[:y, :x].astype(float)
    cy, cx = y / 2 + rng.uniform(-3, 3), x / 2 + rng.uniform(-3, 3)
    radius = np.hypot(yy - cy, xx - cx)
    label2d = np.where(radius < 7, 1, np.where(radius < 11, 2, 0)).astype(np.uint8)
    label = np.repeat(label2d[None], z, axis=0)
    label[0] = np.where(radius < 9, 2, 0)
    image = np.abs(rng.normal(0, 3, size=PHANTOM_SHAPE))
    image[:, 6:50, 5:58] += 100
    image[label == 1] = 300
    image[label == 2] = 60
    image = image + rng.normal(0, 5, size=PHANTOM_SHAPE) * (image > 50)
    return (brightness * image).astype(np.float32), label


def _make_raw_dataset(root: Path, name: str, spacings: list[tuple[float, float, float]], center: str | None = None,
                      brightness: float = 1.0, labels: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Write the raw dataset ``root/name``: one ``_lv_phantom`` case ``<name>_<nnn>`` per entry of ``spacings``
    (z, y, x mm) on an oblique grid, and a ``dataset.json`` (``center`` only when given)."""
    rng = np.random.default_rng(seed)
    folder = root / name
    for index, spacing in enumerate(spacings):
        image, label = _lv_phantom(rng, brightness)
        geometry = CaseGeometry(shape=PHANTOM_SHAPE, spacing=spacing, origin=(10.0, -4.0, 3.5),
                                direction=_rotation(25.0, -10.0))
        io.write_image(folder / "imagesTr" / f"{name}_{index:03d}_0000.nii.gz", image, geometry)
        io.write_label(folder / "labelsTr" / f"{name}_{index:03d}.nii.gz", label, geometry)
    meta = {"channel_names": {"0": "LGE"}, "labels": labels or dict(LABELS), "numTraining": len(spacings),
            "file_ending": ".nii.gz", **({"center": center} if center else {})}
    save_json(meta, folder / "dataset.json")
    return folder


def _tiny_case(rng: np.random.Generator, shape: tuple[int, int, int] = (3, 40, 44)) -> tuple[np.ndarray, np.ndarray]:
    """An LV-like phantom: bright disk (label 1) in a darker ring (label 2), noisy; (1,z,y,x), (z,y,x)."""
    z, h, w = shape
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.uniform(14, h - 14), rng.uniform(14, w - 14)
    radius = np.hypot(yy - cy, xx - cx)
    label = np.zeros(shape, np.uint8)
    inner, outer = rng.uniform(4, 6), rng.uniform(8, 10)
    label[:, radius < outer] = 2
    label[:, radius < inner] = 1
    image = np.choose(label, [0.2, 0.9, 0.5]).astype(np.float32) + rng.normal(0, 0.05, shape).astype(np.float32)
    return image[None], label


def _make_preprocessed(root: Path, cases: dict[str, int], seed: int = 0, plan: Plan | None = None) -> Path:
    """Write a preprocessed folder ``root`` with ``cases[dataset]`` tiny cases per dataset."""
    rng = np.random.default_rng(seed)
    plan = plan or _tiny_plan()
    save_json(plan, root / "plans.json")
    save_json(Fingerprint(cases=(CaseFingerprint("note", "test", (8.0, 1.0, 1.0), (3, 40, 44), (3, 40, 44)),)),
              root / "fingerprint.json")
    for dataset, count in cases.items():
        save_json({"channel_names": {"0": "LGE"}, "labels": dict(LABELS)}, root / dataset / "dataset.json")
        for index in range(count):
            image, label = _tiny_case(rng)
            case_id = f"{dataset}_{index:03d}"
            np.savez(root / dataset / f"{case_id}.npz", image=image, label=label)
            geometry = {"shape": label.shape, "spacing": plan.target_spacing, "origin": (0.0, 0.0, 0.0),
                        "direction": IDENTITY}
            record = PreprocessedCase.from_dict({
                "case_id": case_id, "dataset": dataset, "center": dataset, "original": geometry,
                "crop_box": [[0, s] for s in label.shape], "shape_after_crop": label.shape,
                "spacing_after_resampling": plan.target_spacing, "shape_after_resampling": label.shape})
            save_json(record, root / dataset / f"{case_id}.json")
    return root

