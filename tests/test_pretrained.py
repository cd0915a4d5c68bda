"""The shipped pretrained models: they load with no training, their cards match their weights, they segment."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lgeseg.cli.predict import main as predict_main
from lgeseg.evaluation.metrics import dice
from lgeseg.files import io
from lgeseg.model.folder import load_checkpoint, load_model
from lgeseg.model.registry import PRETRAINED_DIR, ensemble_card, list_models, resolve_model
from lgeseg.synth import generate_multicenter

SHIPPED = ("lge-lv", "lge-lv-cine")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_is_found_by_name_and_is_small(name: str) -> None:
    entry = resolve_model(name)
    assert entry.path == PRETRAINED_DIR / name and len(entry.members) >= 3
    assert name in {e.name for e in list_models() if e.source in ("shipped", "installed")}
    size_mb = sum(p.stat().st_size for p in entry.path.rglob("*") if p.is_file()) / 1e6
    assert size_mb < 15, f"{name} is {size_mb:.1f} MB: too big to ship inside the package"


@pytest.mark.parametrize("name", SHIPPED)
def test_card_matches_the_weights(name: str) -> None:
    entry = resolve_model(name)
    card = ensemble_card(entry.path)
    assert card is not None and card["model"] == name and card["members"] == len(entry.members)
    assert "research use" in card["intended_use"].lower() and card["licence"]
    for member, weights in zip(entry.members, card["weights"], strict=True):
        checkpoint = member / "checkpoint_final.pt"
        assert weights["folder"] == member.name
        assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == weights["sha256"]
        state = load_checkpoint(checkpoint)["network"]  # weights only: nothing is unpickled
        assert {t.dtype for t in state.values() if t.is_floating_point()} == {torch.float16}
        assert sum(t.numel() for t in state.values()) == weights["parameters"]
        model = load_model(member)
        assert next(model.network.parameters()).dtype == torch.float32  # fp16 on disk, fp32 to compute
        assert list(model.plan.patch_size) == card["task"]["patch_size"]
        info = json.loads((member / "model.json").read_text())
        assert "preprocessed" not in info["extras"]  # no paths of the machine it was built on
    measured = card["validation"]
    assert measured.get("ensemble", measured.get("cross_validated"))["lv"]["mean"] > 0.8


@pytest.fixture(scope="module")
def phantom_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One full-size synthetic LGE case of center 1 (image folder, label file).

    The shipped models never saw the phantom (real cine and LGE only): on center 1 they score whole LV
    0.85-0.95; on some cases of the other centers far less (docs/pretrained.md). An untrained network scores ~0.
    """
    raw = generate_multicenter(tmp_path_factory.mktemp("phantom"), cases_per_center=1, seed=3, centers=(1,))[0]
    return raw / "imagesTr", raw / "labelsTr" / "c1_000.nii.gz"


def test_lge_lv_segments_a_synthetic_case_with_no_training(phantom_case: tuple[Path, Path], tmp_path: Path) -> None:
    images, label_file = phantom_case
    assert predict_main(["-i", str(images), "-o", str(tmp_path / "pred"), "-m", "lge-lv", "--device", "cpu",
                         "--no-mirroring"]) == 0
    predicted, _ = io.read_label(tmp_path / "pred" / "c1_000.nii.gz")
    reference, _ = io.read_label(label_file)
    whole_lv = dice(predicted, reference, (1, 2))
    myocardium = dice(predicted, reference, 2)
    assert whole_lv > 0.75 and myocardium > 0.5, (whole_lv, myocardium)
    assert np.isin(np.unique(predicted), [0, 1, 2]).all()


def test_segment_in_three_lines_keeps_the_input_geometry(phantom_case: tuple[Path, Path]) -> None:
    import SimpleITK as sitk

    import lgeseg

    images, label_file = phantom_case
    image = sitk.ReadImage(str(next(images.iterdir())))
    image.SetOrigin((12.0, -40.0, 7.5))
    labels = lgeseg.segment(image, model="lge-lv", device="cpu", mirroring=False)
    assert labels.GetSize() == image.GetSize() and labels.GetOrigin() == image.GetOrigin()
    assert labels.GetSpacing() == image.GetSpacing() and labels.GetDirection() == image.GetDirection()
    reference, _ = io.read_label(label_file)
    assert dice(sitk.GetArrayFromImage(labels), reference, (1, 2)) > 0.75
    array = sitk.GetArrayFromImage(image)
    as_numpy = lgeseg.segment(array, model="lge-lv", spacing=image.GetSpacing()[::-1], device="cpu",
                              mirroring=False)
    assert np.array_equal(as_numpy, sitk.GetArrayFromImage(labels))
    with pytest.raises(ValueError, match="needs spacing"):
        lgeseg.segment(array, model="lge-lv")
