"""The ``Predictor``: settings checked when built, models and harmonizer loaded once, the same label maps as
the ``predict_folder`` function, each output path built once and the quality records handed back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lgeseg.harmonization.apply
import lgeseg.inference.ensemble
import lgeseg.inference.output_folder
import lgeseg.inference.predictor
from lgeseg.cli.predict import main as predict_main
from lgeseg.core.errors import CorruptFileError
from lgeseg.core.records import CaseGeometry
from lgeseg.files import io
from lgeseg.harmonization import apply_harmonization, fit_reference_from_files
from lgeseg.inference import PredictionSettings, Predictor, predict_folder
from lgeseg.inference.input_cases import list_input_cases, read_case
from lgeseg.inference.quality import read_quality_report
from lgeseg.synth import defects

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = PredictionSettings(device="cpu", mirroring=False)


@pytest.fixture
def images(tmp_path: Path, write_input_image: Callable[..., CaseGeometry]) -> Path:
    """Three one-channel cases (NIfTI and MetaImage, oblique grids) in ``tmp_path/in``."""
    for name, seed in (("p1_0000.nii.gz", 0), ("p2_0000.nii.gz", 1), ("p3.mha", 2)):
        write_input_image(tmp_path / "in" / name, (3, 36, 40), seed=seed)
    return tmp_path / "in"


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[tuple]:
    """Replace ``module.name`` by a wrapper that records each call's arguments; returns the record."""
    calls: list[tuple] = []
    original = getattr(module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("window", "tiles", "expected one of roi, sliding, slice; found 'tiles'"),
    ("postprocess", "big", "expected one of none, lcc, lcc_per_label or None (the model's choice); found 'big'"),
    ("checkpoint", "checkpoint_best.pth", "expected one of final, best, latest; found 'checkpoint_best.pth'"),
    ("harmonize", "histogramm", "expected one of none, histogram, cyclegan:GAN_DIR or None; found 'histogramm'"),
    ("device", "quantum", "expected cpu, cuda, cuda:N (a GPU's index), mps, auto or None; found 'quantum'"),
    ("step", 0.0, "expected the sliding-window stride, a fraction of the patch in (0, 1]"),
    ("batch_size", 0, "expected a whole number >= 1 or None (a device default); found 0"),
    ("num_writers", 0, "expected a whole number >= 1 (threads); found 0"),
])
def test_settings_refuse_an_unknown_name_when_built_naming_the_field(field: str, value: object,
                                                                      expected: str) -> None:
    with pytest.raises(ValueError) as raised:
        PredictionSettings(**{field: value})
    assert str(raised.value).startswith(f"PredictionSettings.{field}: {expected}")


def test_settings_are_refused_before_any_model_is_loaded(tmp_path: Path, images: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    loads = _counting(monkeypatch, lgeseg.inference.ensemble, "load_model")
    with pytest.raises(ValueError, match="PredictionSettings.window"):
        predict_folder(images, tmp_path / "out", [tmp_path / "no_model_needed"], window="tiles")
    with pytest.raises(ValueError, match="adapt_steps must be at least 1, found 0"):
        predict_folder(images, tmp_path / "out", [tmp_path / "no_model_needed"], adapt="entropy", adapt_steps=0)
    assert loads == [] and not (tmp_path / "out").exists()


def test_the_predictor_and_the_predict_folder_function_write_identical_label_maps(
        tmp_path: Path, images: Path, tiny_model: Path) -> None:
    settings = PredictionSettings(device="cpu", window="sliding", save_probabilities=True)
    predictor = Predictor.from_model(tiny_model, settings)
    result = predictor.predict_folder(images, tmp_path / "new")
    written = predict_folder(images, tmp_path / "old", [tiny_model], device="cpu", window="sliding",
                             save_probabilities=True)
    assert [p.name for p in result.written] == [p.name for p in written] == ["p1.nii.gz", "p2.nii.gz", "p3.mha"]
    for new, old in zip(result.written, written, strict=True):
        assert new.read_bytes() == old.read_bytes()  # byte for byte (the same header and voxels)
        new_probabilities = np.load(new.with_name(new.name.split(".")[0] + ".npz"))["probabilities"]
        old_probabilities = np.load(old.with_name(old.name.split(".")[0] + ".npz"))["probabilities"]
        np.testing.assert_array_equal(new_probabilities, old_probabilities)
    case = list_input_cases(images)[2]
    image, geometry = read_case(case)
    in_memory = predictor.predict_case(image, geometry, case_id=case.case_id)  # the same steps, nothing written
    np.testing.assert_array_equal(in_memory.labels, io.read_label(result.written[2])[0])
    assert in_memory.quality == result.quality[2]


def test_the_models_load_once_for_many_cases_and_folders(tmp_path: Path, images: Path, make_model: Callable[..., Path],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for fold in (0, 1):
        make_model(tmp_path / "ensemble" / f"fold_{fold}", seed=fold)
    loads = _counting(monkeypatch, lgeseg.inference.ensemble, "load_model")
    predictor = Predictor.from_model(tmp_path / "ensemble", CPU)  # an ensemble folder: both members
    assert [Path(args[0]).name for args in loads] == ["fold_0", "fold_1"]
    predictor.predict_folder(images, tmp_path / "a")
    predictor.predict_folder(images, tmp_path / "b", num_parts=2, part_id=1)
    predictor.predict_case(*read_case(list_input_cases(images)[0]))
    assert len(loads) == 2  # one load per member for 6 cases in two folders and one in memory


def test_the_harmonizer_loads_once_and_predicts_as_harmonizing_each_case_did(
        tmp_path: Path, images: Path, make_model: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(tmp_path / "model")
    fit_reference_from_files(images, model)
    loads = _counting(monkeypatch, lgeseg.harmonization.apply, "load_reference")
    harmonized = Predictor.from_model(model, PredictionSettings(device="cpu", mirroring=False, harmonize="histogram"))
    result = harmonized.predict_folder(images, tmp_path / "out")
    assert len(result.written) == 3 and len(loads) == 1
    plain = Predictor.from_model(model, CPU)
    for case, written in zip(list_input_cases(images), result.written, strict=True):
        image, geometry = read_case(case)
        matched = np.asarray(apply_harmonization(image, geometry, "histogram", model), dtype=np.float32)  # the old way
        np.testing.assert_array_equal(plain.predict_case(matched, geometry).labels, io.read_label(written)[0])


def test_each_case_s_output_paths_are_built_once(tmp_path: Path, images: Path, tiny_model: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    built = _counting(monkeypatch, lgeseg.inference.output_folder, "output_ending")
    settings = PredictionSettings(device="cpu", mirroring=False, overlays=True, save_probabilities=True)
    Predictor.from_model(tiny_model, settings).predict_folder(images, tmp_path / "out")
    assert sorted(args[0].case_id for args in built) == ["p1", "p2", "p3"]  # case_outputs, once per case


def test_the_quality_records_come_back_to_the_command_without_reading_qc_json_again(
        tmp_path: Path, images: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    reads = _counting(monkeypatch, lgeseg.inference.predictor, "read_quality_report")
    out = tmp_path / "out"
    assert predict_main(["-i", str(images), "-o", str(out), "-m", str(tiny_model), "--device", "cpu",
                         "--no-mirroring"]) == 0
    assert len(reads) == 1  # the folder's earlier records, read once when the run starts
    printed = capsys.readouterr().out
    assert "wrote 3 prediction(s)" in printed and "quality check: " in printed and "of 3 case(s) flagged" in printed
    again = Predictor.from_model(tiny_model, CPU).predict_folder(images, out)  # every case skipped
    assert again.written == () and list(again.quality) == read_quality_report(out)


def test_each_nifti_input_is_decompressed_and_checked_once_and_a_damaged_one_refused_before_any_case(
        tmp_path: Path, images: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checked = _counting(monkeypatch, io, "_nifti_bytes")  # the byte check of io.check_image_content
    predictor = Predictor.from_model(tiny_model, CPU)
    assert len(predictor.predict_folder(images, tmp_path / "out").written) == 3
    assert sorted(Path(args[0]).name for args in checked) == ["p1_0000.nii.gz", "p2_0000.nii.gz"]  # once each
    values_read = _counting(monkeypatch, io, "value_problem")  # still checked for the MetaImage (from its array)
    read_case(list_input_cases(images)[2], checked=True)
    assert len(values_read) == 1
    defects.truncate_payload(images / "p2_0000.nii.gz")
    with pytest.raises(CorruptFileError, match=r"p2_0000\.nii\.gz: file is truncated"):
        predictor.predict_folder(images, tmp_path / "again")
    assert not (tmp_path / "again").exists()  # refused by the up-front check, before p1 was predicted
    with pytest.raises(CorruptFileError, match=r"p2_0000\.nii\.gz: file is truncated"):
        read_case(list_input_cases(images)[1])  # other callers of read_case still check the bytes
