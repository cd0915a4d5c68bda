"""Models that travel: export to a zip, install with every refusal, the model card."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from lgeseg.cli.export_model import main as export_main
from lgeseg.cli.install_model import main as install_main
from lgeseg.cli.predict import main as predict_main
from lgeseg.core.records import CaseGeometry
from lgeseg.files import io
from lgeseg.model.archive import export_model, install_model
from lgeseg.model.card import DEFAULT_INTENDED_USE, build_model_card

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Payload:
    """Stands for any object a malicious pickle would build; weights-only loading must refuse it."""

    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned > /dev/null",))


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, make_model: Callable[..., Path]) -> Path:
    model = make_model(tmp_path_factory.mktemp("model") / "lv_model")
    zip_path = tmp_path_factory.mktemp("zips") / "lv_model.zip"
    assert export_main([str(model), str(zip_path), "--intended-use", "phantom test model"]) == 0
    return zip_path


def _rewrite(source: Path, target: Path, add: dict[str, bytes] | None = None, drop: tuple[str, ...] = (),
             replace: dict[str, bytes] | None = None) -> Path:
    """Copy a model zip, adding, dropping or replacing entries."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            if info.filename not in drop:
                new.writestr(info.filename, (replace or {}).get(info.filename, old.read(info)))
        for name, data in (add or {}).items():
            new.writestr(name, data)
    return target


def test_exported_model_installs_and_predicts_like_the_original(tmp_path: Path, archive: Path,
                                                                write_input_image: Callable[..., CaseGeometry],
                                                                capsys: pytest.CaptureFixture) -> None:
    with zipfile.ZipFile(archive) as zipped:
        names = set(zipped.namelist())
    assert names == {"model.json", "plans.json", "checkpoint_final.pt", "manifest.json"}
    assert install_main([str(archive), str(tmp_path / "installed")]) == 0
    geometry = write_input_image(tmp_path / "in" / "c_0000.nii.gz", (2, 30, 30))
    assert predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(tmp_path / "installed"),
                         "--disable_tta"]) == 0
    assert io.read_label(tmp_path / "out" / "c.nii.gz")[0].shape == geometry.shape
    capsys.readouterr()
    assert predict_main(["--model-info", "-m", str(tmp_path / "installed")]) == 0
    printed = capsys.readouterr().out
    assert "intended use: phantom test model" in printed and "training data:" in printed
    assert "validation:" in printed and "budget:" in printed
    assert install_main([str(archive), str(tmp_path / "installed")]) == 1  # never over an existing folder


@pytest.mark.parametrize("entry", ["../evil", "/etc/evil", "sub/model.json", "run.sh", "checkpoint_final.pkl"])
def test_entries_outside_the_expected_files_are_refused(tmp_path: Path, archive: Path, entry: str,
                                                        capsys: pytest.CaptureFixture) -> None:
    bad = _rewrite(archive, tmp_path / "bad.zip", add={entry: b"x"})
    assert install_main([str(bad), str(tmp_path / "dest")]) == 1
    message = capsys.readouterr().err
    assert "refused" in message and entry in message
    assert not (tmp_path / "dest").exists() and list(tmp_path.iterdir()) == [bad]  # nothing left behind


def _symbolic_link_entry(archive: Path, folder: Path) -> Path:
    bad = _rewrite(archive, folder / "link.zip", drop=("training_log.txt",))
    with zipfile.ZipFile(bad, "a") as zipped:
        info = zipfile.ZipInfo("training_log.txt")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zipped.writestr(info, "/etc/passwd")
    return bad


def _pickle_checkpoint_with_matching_manifest(archive: Path, folder: Path) -> Path:
    torch.save({"network": {}, "extra": _Payload()}, folder / "evil.pt")
    evil = (folder / "evil.pt").read_bytes()
    with zipfile.ZipFile(archive) as zipped:
        manifest = json.loads(zipped.read("manifest.json"))
    manifest["files"]["checkpoint_final.pt"] = {"sha256": hashlib.sha256(evil).hexdigest(), "bytes": len(evil)}
    return _rewrite(archive, folder / "pickle.zip",
                    replace={"checkpoint_final.pt": evil, "manifest.json": json.dumps(manifest).encode()})


def _altered_plans(archive: Path, folder: Path) -> Path:
    with zipfile.ZipFile(archive) as zipped:
        plans = json.loads(zipped.read("plans.json"))
    plans["patch_size"] = [64, 64]
    return _rewrite(archive, folder / "altered.zip", replace={"plans.json": json.dumps(plans).encode()})


def _without_manifest(archive: Path, folder: Path) -> Path:
    return _rewrite(archive, folder / "nomanifest.zip", drop=("manifest.json",))


#: A damaged or unsafe archive (made from the good one, in a folder) and what the refusal says.
BAD_ARCHIVES: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "symbolic link entry": (_symbolic_link_entry, "symbolic link"),
    "pickle checkpoint, matching manifest": (_pickle_checkpoint_with_matching_manifest, "weights-only"),
    "altered plans.json": (_altered_plans, "plans.json differs from its SHA-256"),
    "no manifest": (_without_manifest, "manifest.json is missing"),
}


@pytest.mark.parametrize("damage", list(BAD_ARCHIVES))
def test_a_damaged_or_unsafe_archive_is_refused_and_installs_nothing(tmp_path: Path, archive: Path,
                                                                     damage: str) -> None:
    make_bad, words = BAD_ARCHIVES[damage]
    with pytest.raises(ValueError, match=words):
        install_model(make_bad(archive, tmp_path), tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_export_refuses_a_model_whose_checkpoint_is_a_pickle(tmp_path: Path, make_model: Callable[..., Path]) -> None:
    model = make_model(tmp_path / "m")
    torch.save({"network": {}, "extra": _Payload()}, model / "checkpoint_final.pt")
    with pytest.raises(ValueError, match="refused to load"):
        export_model(model, tmp_path / "m.zip")
    assert not (tmp_path / "m.zip").exists()


def test_model_card_reports_training_data_budget_and_validation(tiny_model: Path) -> None:
    card = build_model_card(tiny_model)
    assert card["training_data"]["datasets"] == [] and card["intended_use"] == DEFAULT_INTENDED_USE  # untrained
    assert set(card) >= {"task", "training_data", "budget", "validation", "intended_use"}
    assert card["task"]["labels"] == {"background": 0, "blood_pool": 1, "myocardium": 2}
    assert np.isfinite(card["task"]["target_spacing_mm_zyx"]).all()


def _plant_provenance(model: Path) -> dict[str, str]:
    """Give an untrained model folder the provenance a trained, fine-tuned one has; returns the planted strings."""
    secrets = {"data path": "/srv/hospital_a/preprocessed", "raw path": "/srv/hospital_a/raw/cohort_x",
               "parent path": "/srv/hospital_a/models/parent_model", "case id": "secretpatient017"}
    info = json.loads((model / "model.json").read_text())
    info["extras"]["preprocessed"] = [secrets["data path"]]
    info["parent"] = secrets["parent path"]
    info["target_cases"] = [f"cohort_x/{secrets['case id']}"]
    (model / "model.json").write_text(json.dumps(info))
    fingerprint = {"cases": [{"case_id": secrets["case id"], "dataset": "cohort_x", "spacing": [8.0, 1.5, 1.5],
                              "shape": [8, 64, 64], "shape_after_crop": [8, 40, 40]}],
                   "datasets": [{"name": "cohort_x", "path": secrets["raw path"], "num_cases": 1}],
                   "summary": {"spacing": {"median": [8.0, 1.5, 1.5]}}}
    (model / "fingerprint.json").write_text(json.dumps(fingerprint))
    (model / "splits.json").write_text(json.dumps([{"train": [f"cohort_x/{secrets['case id']}"], "val": []}]))
    (model / "training_log.txt").write_text(f"INFO starting: 1 training case from {secrets['data path']}\n")
    return secrets


def _folder_hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_export_leaves_out_training_paths_case_ids_and_splits_unless_asked(tmp_path: Path,
                                                                        make_model: Callable[..., Path]) -> None:
    """Issue 25, item 6: the zip carried the data path, every case id and the splits; the source stays untouched."""
    model = make_model(tmp_path / "lv_model")
    secrets = _plant_provenance(model)
    before = _folder_hashes(model)
    assert export_main([str(model), str(tmp_path / "shared.zip")]) == 0
    assert _folder_hashes(model) == before  # model.json (and everything else) not rewritten
    with zipfile.ZipFile(tmp_path / "shared.zip") as zipped:
        names = set(zipped.namelist())
        contents = {name: zipped.read(name).decode("utf-8", "replace") for name in names if not name.endswith(".pt")}
        manifest, card = json.loads(contents["manifest.json"]), json.loads(contents["model.json"])["model_card"]
    assert "splits.json" not in names and "training_log.txt" not in names and "fingerprint.json" in names
    for what, secret in secrets.items():
        assert not [name for name, text in contents.items() if secret in text], f"{what} left in the zip"
    assert manifest["provenance"] == "stripped" and card["provenance"] == "stripped"
    assert card["training_data"]["finetuned_from"] == "parent_model" and card["training_data"]["target_case_count"] == 1
    assert json.loads(contents["fingerprint.json"])["datasets"][0]["num_cases"] == 1  # counts stay
    install_model(tmp_path / "shared.zip", tmp_path / "installed")  # a stripped model is a complete model
    assert export_main([str(model), str(tmp_path / "full.zip"), "--include-provenance"]) == 0
    with zipfile.ZipFile(tmp_path / "full.zip") as zipped:
        kept = zipped.read("splits.json").decode() + zipped.read("model.json").decode() + \
            zipped.read("fingerprint.json").decode() + zipped.read("training_log.txt").decode()
        assert json.loads(zipped.read("manifest.json"))["provenance"] == "included"
    assert all(secret in kept for secret in secrets.values())
    assert _folder_hashes(model) == before


def test_model_card_says_validation_dice_is_3d() -> None:
    """Issue 25, item 9: the card said "2D Dice" where training.validate_epoch scores each case's whole volume."""
    from lgeseg.model.card import VALIDATION_WHAT
    from lgeseg.training import validate_epoch

    assert "3D Dice" in VALIDATION_WHAT and "2D" not in VALIDATION_WHAT
    assert "3D Dice" in (validate_epoch.__doc__ or "")  # what the card describes
