"""nnU-Net v2 habits: flag spellings, dataset ids, labels from dataset.json, ensemble-readable probabilities."""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lgeseg import io
from lgeseg.cli.evaluate import main as evaluate_main
from lgeseg.cli.predict import main as predict_main
from lgeseg.cli.validate import main as validate_main
from lgeseg.dataset import load_dataset_info, resolve_dataset
from lgeseg.evaluation import evaluate_folders
from lgeseg.inference import predict_folder
from lgeseg.records import CaseGeometry, save_json

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPACING = (5.0, 1.5, 0.7)
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, make_model: Callable[..., Path]) -> Path:
    """A parent folder with fold_0 and fold_1 (nnU-Net's layout)."""
    root = tmp_path_factory.mktemp("models")
    make_model(root / "fold_0")
    shutil.copytree(root / "fold_0", root / "fold_1")
    return root


@pytest.fixture()
def write_inputs(write_input_image: Callable[..., CaseGeometry]) -> Callable[[Path, int], CaseGeometry]:
    """``write_inputs(folder, count) -> geometry``: images ``case<i>_0000.nii.gz`` of shape (3, 33, 29), i < count."""
    def write(folder: Path, count: int) -> CaseGeometry:
        geometries = [write_input_image(folder / f"case{i}_0000.nii.gz", (3, 33, 29), seed=i) for i in range(count)]
        return geometries[0]
    return write


def test_nnunet_flag_spellings_predict_the_folds_and_write_what_nnunet_ensemble_reads(
        tmp_path: Path, models: Path, write_inputs: Callable) -> None:
    geometry = write_inputs(tmp_path / "in", 2)
    args = ["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(models), "-f", "0", "1",
            "-chk", "checkpoint_final.pth", "--disable_tta", "--save_probabilities", "-npp", "2", "-nps", "2",
            "-device", "cpu", "-step_size", "0.5", "--postprocess", "none"]
    assert predict_main(args) == 0
    out = tmp_path / "out"
    # What nnUNetv2_ensemble does with a folder: dataset.json + plans.json, then per case npz + pkl.
    dataset_json = json.loads((out / "dataset.json").read_text())
    plans = json.loads((out / "plans.json").read_text())
    assert dataset_json["file_ending"] == ".nii.gz" and plans["image_reader_writer"] == "SimpleITKIO"
    assert dataset_json["labels"] == {"background": 0, "blood_pool": 1, "myocardium": 2}
    for case in ("case0", "case1"):
        probabilities = np.load(out / f"{case}.npz")["probabilities"]
        with open(out / f"{case}.pkl", "rb") as handle:
            properties = pickle.load(handle)
        merged = sitk.GetImageFromArray(probabilities.argmax(0).astype(np.uint8))  # nnU-Net's SimpleITKIO.write_seg
        merged.SetSpacing(properties["sitk_stuff"]["spacing"])
        merged.SetOrigin(properties["sitk_stuff"]["origin"])
        merged.SetDirection(properties["sitk_stuff"]["direction"])
        sitk.WriteImage(merged, str(tmp_path / f"{case}_merged.nii.gz"))
        ours, our_geometry = io.read_label(out / f"{case}.nii.gz")
        theirs, their_geometry = io.read_label(tmp_path / f"{case}_merged.nii.gz")
        np.testing.assert_array_equal(theirs, ours)
        assert io.geometry_mismatch(their_geometry, geometry, tolerance=1e-6) == []
        assert properties["spacing"] == pytest.approx(list(geometry.spacing))


def test_folds_that_do_not_exist_are_named(tmp_path: Path, models: Path, write_inputs: Callable) -> None:
    write_inputs(tmp_path / "in", 1)
    assert predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(models), "-f", "4"]) == 1
    with pytest.raises(SystemExit) as exit_info:  # -chk with a name nnU-Net does not have either
        predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(models), "-chk", "x.pth"])
    assert exit_info.value.code == 2


def test_parts_predict_each_case_exactly_once(tmp_path: Path, models: Path, write_inputs: Callable) -> None:
    write_inputs(tmp_path / "in", 5)
    model = [models / "fold_0"]
    names = []
    for part in range(2):
        written = predict_folder(tmp_path / "in", tmp_path / "out", model, device="cpu", mirroring=False,
                                 num_parts=2, part_id=part, num_readers=2, num_writers=2)
        names.append({p.name for p in written})
    assert names[0] == {"case0.nii.gz", "case2.nii.gz", "case4.nii.gz"}
    assert names[1] == {"case1.nii.gz", "case3.nii.gz"}
    with pytest.raises(ValueError, match="part-id"):
        predict_folder(tmp_path / "in", tmp_path / "out2", model, device="cpu", num_parts=2, part_id=2)


def _label_maps(root: Path, extra_label: int) -> None:
    geometry = CaseGeometry(shape=(3, 12, 12), spacing=SPACING, origin=(0.0, 0.0, 0.0), direction=IDENTITY)
    ref = np.zeros(geometry.shape, np.uint8)
    ref[:, 2:9, 2:9] = 2
    ref[:, 4:7, 4:7] = 1
    ref[:, 10:12, 0:4] = extra_label
    pred = ref.copy()
    pred[:, 10:12, 0:2] = 0  # half of the extra structure missed
    io.write_label(root / "pred" / "a.nii.gz", pred, geometry)
    io.write_label(root / "ds" / "labelsTr" / "a.nii.gz", ref, geometry)


def test_evaluation_scores_every_label_of_dataset_json_and_regions_as_unions(tmp_path: Path) -> None:
    _label_maps(tmp_path, extra_label=3)
    labels = {"background": 0, "blood_pool": 1, "myocardium": 2, "scar": 3}
    save_json({"channel_names": {"0": "LGE"}, "labels": labels, "numTraining": 1, "file_ending": ".nii.gz"},
              tmp_path / "ds" / "dataset.json")
    assert evaluate_main(["-p", str(tmp_path / "pred"), "-r", str(tmp_path / "ds"), "-o", str(tmp_path / "m")]) == 0
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["structures"]["scar"]["dice"]["mean"] == pytest.approx(2 * 4 * 3 / (8 * 3 + 4 * 3))
    assert summary["structures"]["lv"]["dice"]["mean"] == 1.0 and summary["undeclared_label_values"] == []
    # Without the label in dataset.json the value is reported, not silently dropped.
    regions = {"background": 0, "cavity": 1, "wall_and_scar": [2, 3]}
    summary = evaluate_folders(tmp_path / "pred", tmp_path / "ds", tmp_path / "m2", labels=regions)
    assert set(summary["structures"]) == {"cavity", "wall_and_scar"} and summary["clinical"] == {}
    assert summary["structures"]["wall_and_scar"]["dice"]["mean"] < 1.0
    summary = evaluate_folders(tmp_path / "pred", tmp_path / "ds", tmp_path / "m3")
    assert summary["undeclared_label_values"] == [3]


def test_region_based_labels_are_refused_for_training_with_a_message_saying_so(tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "ds" / "imagesTr").mkdir(parents=True)
    save_json({"channel_names": {"0": "LGE"}, "labels": {"background": 0, "lv": [1, 2], "myocardium": 2},
               "regions_class_order": [1, 2], "numTraining": 0, "file_ending": ".nii.gz"},
              tmp_path / "ds" / "dataset.json")
    with pytest.raises(ValueError, match="region-based"):
        load_dataset_info(tmp_path / "ds")
    assert validate_main([str(tmp_path / "ds"), "--headers-only"]) == 1
    assert "does not support region-based training" in capsys.readouterr().out


def test_a_dataset_id_resolves_under_nnunet_raw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "Dataset004_LGE").mkdir()
    (tmp_path / "Dataset012_Cine").mkdir()
    for spec in ("4", "004", "Dataset004", "Dataset004_LGE"):
        assert resolve_dataset(spec, tmp_path) == tmp_path / "Dataset004_LGE"
    with pytest.raises(FileNotFoundError, match="Dataset007_"):
        resolve_dataset("7", tmp_path)
    with pytest.raises(FileNotFoundError, match="nnUNet_raw"):
        resolve_dataset("12", None)
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    assert validate_main(["12", "--headers-only"]) == 1  # found, and reported as an empty dataset
    assert "Dataset012_Cine" in capsys.readouterr().out
