"""Shared test fixtures: torch threads, tiny synthetic raw and preprocessed datasets, a tiny plan.

Tests take their data from these fixtures instead of writing their own: ``raw_centers`` (raw
datasets from ``lgeseg.synth``, read-only), ``make_preprocessed`` (a preprocessed folder of tiny
LV-like cases), ``tiny_plan`` and ``tiny_training`` (settings for a few-second CPU training).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from lgeseg.records import (
    LABELS,
    CaseFingerprint,
    Fingerprint,
    NetworkTopology,
    NormalizationConfig,
    Plan,
    PreprocessedCase,
    save_json,
)
from lgeseg.synth import generate_multicenter


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
def make_preprocessed() -> Callable[..., Path]:
    """``make_preprocessed(root, {dataset: n_cases}, seed=0, plan=None) -> root``: a preprocessed folder."""
    return _make_preprocessed


@pytest.fixture(scope="session")
def tiny_plan() -> Callable[..., Plan]:
    """``tiny_plan(patch=(32, 32)) -> Plan``: a 3-stage, 8-feature U-Net plan."""
    return _tiny_plan


@pytest.fixture(scope="session")
def tiny_training() -> dict:
    """``train``/``finetune`` keyword arguments for a few-second CPU run (do not modify; copy with ``{**...}``)."""
    return dict(TINY_TRAINING)


TINY_TRAINING = {"epochs": 2, "iterations_per_epoch": 4, "device": "cpu", "num_workers": 1, "augmentation": "none"}


def _tiny_plan(patch: tuple[int, int] = (32, 32)) -> Plan:
    """A 3-stage, 8-feature U-Net plan for 32x32 patches."""
    topology = NetworkTopology(in_channels=1, num_classes=3, features_per_stage=(8, 16, 32),
                               kernel_sizes=((3, 3),) * 3, strides=((1, 1), (2, 2), (2, 2)))
    return Plan(name="2d", preset="test", target_spacing=(8.0, 1.5, 1.5), patch_size=patch, batch_size=4,
                normalization=NormalizationConfig(), topology=topology, labels=dict(LABELS))


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
                        "direction": (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)}
            record = PreprocessedCase.from_dict({
                "case_id": case_id, "dataset": dataset, "center": dataset, "original": geometry,
                "crop_box": [[0, s] for s in label.shape], "shape_after_crop": label.shape,
                "spacing_after_resampling": plan.target_spacing, "shape_after_resampling": label.shape})
            save_json(record, root / dataset / f"{case_id}.json")
    return root
