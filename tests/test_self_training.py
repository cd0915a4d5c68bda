"""Unlabeled adaptation (``lgeseg_adapt``): pseudo-labels, quality filter, fine-tuned members, untouched inputs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from lgeseg.cli.adapt import main as adapt_main
from lgeseg.core.records import LABELS
from lgeseg.files import io
from lgeseg.inference import predict_folder
from lgeseg.inference.quality import assess_segmentation
from lgeseg.model.folder import load_model
from lgeseg.training import train
from lgeseg.workflows.self_training import RECORD, adapt_to_center, choose_pseudo_labels
from lgeseg.workflows.uncertain_voxels import mask_uncertain


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
                          iterations_per_epoch=2, device="cpu", keep_flagged=True,
                          uncertain_voxels="keep", rounds=1)
    assert _tree_hash(raw_centers["center2"]) == before
    record = json.loads((out / RECORD).read_text())
    assert record["finished"] and sorted(record["kept"]) == ["c2_000", "c2_001"]
    assert record["uncertain_voxels"] == {"mode": "keep"} and not list((out / "pseudo_labels").glob("*.npz"))
    assert "ignore" not in json.loads((out / "raw" / "target" / "dataset.json").read_text())["labels"]
    student = load_model(out / "fold_0")
    info = json.loads((out / "fold_0" / "model.json").read_text())
    assert info["parent"] == str(teacher.resolve()) and info["trainable"] == "all"
    assert set(info["datasets"]) == {"target", "center1"}  # pseudo-labels mixed with the labelled source
    assert student.plan == load_model(teacher).plan
    written = predict_folder(images, tmp_path / "pred", [out], device="cpu", mirroring=False)  # -m OUT works
    assert len(written) == 2


def test_adapt_rerun_after_an_interruption_before_the_first_checkpoint_finishes(
        teacher: Path, raw_centers: dict[str, Path], preprocessed_centers: dict[str, Path], tmp_path: Path) -> None:
    """Ctrl-C during a member's first epoch leaves fold_0 with model.json and no checkpoint: a rerun must finish it."""
    images = raw_centers["center2"] / "imagesTr"
    settings = dict(source=[preprocessed_centers["center1"]], epochs=1, iterations_per_epoch=2, device="cpu",
                    keep_flagged=True, rounds=1)
    out = adapt_to_center(teacher, images, tmp_path / "adapted", **settings)
    record = json.loads((out / RECORD).read_text())
    (out / RECORD).write_text(json.dumps({**record, "finished": False}))  # as if stopped inside member 0
    for checkpoint in (out / "fold_0").glob("checkpoint_*.pt"):
        checkpoint.unlink()
    assert (out / "fold_0" / "model.json").is_file()
    adapt_to_center(teacher, images, out, **settings)
    assert json.loads((out / RECORD).read_text())["finished"]
    assert (out / "fold_0" / "checkpoint_final.pt").is_file()
    load_model(out / "fold_0")


def test_adapt_by_default_in_two_rounds_teaches_round_two_with_round_one(
        teacher: Path, raw_centers: dict[str, Path], preprocessed_centers: dict[str, Path], tmp_path: Path) -> None:
    images = raw_centers["center2"] / "imagesTr"
    argv = ["-m", str(teacher), "-i", str(images), "-o", str(tmp_path / "adapted"), "-s",
            str(preprocessed_centers["center1"]), "--epochs", "1", "--iterations-per-epoch", "2", "--device", "cpu",
            "--keep-flagged"]
    assert adapt_main(argv) == 0  # the defaults: two rounds, unsure voxels masked
    out, first = tmp_path / "adapted", tmp_path / "adapted" / "rounds" / "round_1"
    record, first_record = (json.loads((folder / RECORD).read_text()) for folder in (out, first))
    assert record["finished"] and first_record["finished"] and record["rounds"] == 2
    assert record["uncertain_voxels"]["mode"] == first_record["uncertain_voxels"]["mode"] == "mask"
    assert first_record["teacher"] == str(teacher.resolve()) and record["teacher"] == str(first.resolve())
    info = json.loads((out / "fold_0" / "model.json").read_text())
    assert info["parent"] == str((first / "fold_0").resolve())  # round 2 fine-tunes round 1's member
    assert adapt_main(argv) == 1  # finished: refused without --overwrite, nothing redone
    with pytest.raises(SystemExit, match="2"):
        adapt_main(argv + ["--rounds", "0"])


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


def test_adapt_with_mask_uncertain_keeps_mirror_unstable_cases_and_masks_unsure_voxels(
        teacher: Path, raw_centers: dict[str, Path], preprocessed_centers: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from lgeseg.inference.predictor import FolderPrediction, Predictor

    predict_folder_once = Predictor.predict_folder

    def flagging(self: Predictor, *args: object, **kwargs: object) -> FolderPrediction:
        """The teacher's run, with c2_000 flagged for mirror_unstable alone and c2_001 for more."""
        result = predict_folder_once(self, *args, **kwargs)
        reasons = {"c2_000": ("mirror_unstable",), "c2_001": ("mirror_unstable", "thin_wall")}
        quality = tuple(dataclasses.replace(q, flagged=True, reasons=reasons[q.case_id]) for q in result.quality)
        return dataclasses.replace(result, quality=quality)

    monkeypatch.setattr(Predictor, "predict_folder", flagging)
    images = raw_centers["center2"] / "imagesTr"
    out = tmp_path / "adapted"
    argv = ["-m", str(teacher), "-i", str(images), "-o", str(out), "-s", str(preprocessed_centers["center1"]),
            "--epochs", "1", "--iterations-per-epoch", "2", "--device", "cpu", "--mask-uncertain", "--rounds", "1",
            "--confidence", "0.99"]
    assert adapt_main(argv) == 0
    record = json.loads((out / RECORD).read_text())
    assert record["kept"] == ["c2_000"] and record["dropped"] == {"c2_001": ["mirror_unstable", "thin_wall"]}
    masking = record["uncertain_voxels"]
    assert masking["mode"] == "mask" and masking["confidence"] == 0.99 and masking["ignore_label"] == 3
    assert masking["kept_flagged"] == {"c2_000": ["mirror_unstable"]} and "max_k p_k" in masking["rule"]
    label = io.read_label(out / "raw" / "target" / "labelsTr" / "c2_000.nii.gz")[0]
    assert masking["masked_voxels"]["c2_000"] == int(np.sum(label == 3)) > 0
    assert 0 < masking["masked_fraction"]["c2_000"] <= 1
    dataset = json.loads((out / "raw" / "target" / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, "blood_pool": 1, "myocardium": 2, "ignore": 3}
    with np.load(out / "pre" / "target" / "c2_000.npz") as data:
        assert 3 in np.unique(data["label"])  # preprocessed with the teacher's plans, the ignore label kept
    pseudo = io.read_label(out / "pseudo_labels" / "c2_000.nii.gz")[0]
    assert pseudo.max() <= 2 and np.array_equal(label[label != 3], pseudo[label != 3])  # a plain prediction
    student = load_model(out / "fold_0")
    assert student.plan == load_model(teacher).plan and student.info.labels == dict(LABELS)
    written = predict_folder(images, tmp_path / "pred", [out], device="cpu", mirroring=False)
    assert len(written) == 2 and io.read_label(written[0])[0].max() <= 2


def test_uncertain_voxels_are_masked_near_the_heart_only() -> None:
    labels = np.zeros((2, 20, 20), np.uint8)
    labels[0, 8:12, 8:12] = 1
    probabilities = np.full((3, 2, 20, 20), 0.1, np.float32)
    probabilities[0] = 0.8  # background, confident
    probabilities[0, :, :, :3] = 0.5  # unsure but far from the heart (and everywhere on slice 1): kept
    probabilities[1, 0, 8:12, 8:12], probabilities[0, 0, 8:12, 8:12] = 0.9, 0.0
    probabilities[1, 0, 8:12, 8], probabilities[0, 0, 8:12, 8] = 0.6, 0.3  # the heart's unsure left column
    masked = mask_uncertain(labels, probabilities, (8.0, 1.5, 1.5), ignore_label=3, confidence=0.8, band_mm=6.0)
    assert masked.masked_voxels == 4 and masked.masked_fraction == 0.25
    assert np.argwhere(masked.labels == 3).tolist() == [[0, y, 8] for y in range(8, 12)]
    assert np.array_equal(masked.labels[masked.labels != 3], labels[masked.labels != 3])
    with pytest.raises(ValueError, match="above every label value"):
        mask_uncertain(labels, probabilities, (8.0, 1.5, 1.5), ignore_label=1)
