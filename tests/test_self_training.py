"""Unlabeled adaptation (``lgeseg_adapt``): pseudo-labels, quality filter, fine-tuned members, untouched inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from lgeseg.cli.adapt import main as adapt_main
from lgeseg.inference import predict_folder
from lgeseg.inference.quality import assess_segmentation
from lgeseg.model.folder import load_model
from lgeseg.training import train
from lgeseg.workflows.self_training import RECORD, adapt_to_center, choose_pseudo_labels


def _tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def teacher(preprocessed_centers: dict[str, Path], tmp_path_factory: pytest.TempPathFactory,
            tiny_training: dict) -> Path:
    """A tiny model trained on center1 (a few steps: it segments badly, which the tests allow for)."""
    return train(preprocessed_centers["center1"], tmp_path_factory.mktemp("teacher") / "model", **tiny_training)


def test_adapt_fine_tunes_on_pseudo_labels_and_leaves_the_images_alone(
        teacher: Path, raw_centers: dict[str, Path], preprocessed_centers: dict[str, Path], tmp_path: Path) -> None:
    images = raw_centers["center2"] / "imagesTr"
    before = _tree_hash(raw_centers["center2"])
    out = adapt_to_center(teacher, images, tmp_path / "adapted", source=[preprocessed_centers["center1"]], epochs=1,
                          iterations_per_epoch=2, device="cpu", keep_flagged=True)
    assert _tree_hash(raw_centers["center2"]) == before
    record = json.loads((out / RECORD).read_text())
    assert record["finished"] and sorted(record["kept"]) == ["c2_000", "c2_001"]
    student = load_model(out / "fold_0")
    info = json.loads((out / "fold_0" / "model.json").read_text())
    assert info["parent"] == str(teacher.resolve()) and info["trainable"] == "all"
    assert set(info["datasets"]) == {"target", "center1"}  # pseudo-labels mixed with the labelled source
    assert student.plan == load_model(teacher).plan
    written = predict_folder(images, tmp_path / "pred", [out], device="cpu", mirroring=False)  # -m OUT works
    assert len(written) == 2


def test_adapt_refuses_a_folder_it_did_not_make_and_a_finished_run(teacher: Path, raw_centers: dict[str, Path],
                                                                    tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    argv = ["-m", str(teacher), "-i", str(raw_centers["center2"] / "imagesTr"), "-o", str(mine), "--device", "cpu"]
    assert adapt_main(argv) == 1
    assert "not an lgeseg_adapt output" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    inside = ["-m", str(teacher), "-i", str(raw_centers["center2"]), "-o", str(raw_centers["center2"] / "x")]
    assert adapt_main(inside) == 1
    assert "must not be the image folder or inside it" in capsys.readouterr().err


def test_flagged_pseudo_labels_are_dropped_and_none_left_is_a_clear_error() -> None:
    ring = np.zeros((2, 64, 64), np.uint8)
    ring[:, 12:52, 12:52] = 2
    ring[:, 20:44, 20:44] = 1
    good = assess_segmentation(ring, (8.0, 1.5, 1.5), "good", blood_label=1, myocardium_label=2)
    empty = assess_segmentation(np.zeros_like(ring), (8.0, 1.5, 1.5), "empty", blood_label=1, myocardium_label=2)
    assert choose_pseudo_labels([good, empty]).kept == ("good",)
    with pytest.raises(ValueError, match="only 0 of 1 pseudo-labelled case.*annotate a few cases"):
        choose_pseudo_labels([empty])
