"""DICOM input: series written by SimpleITK in the test, read back with their exact geometry."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest

from lgeseg.cli.convert import main as convert_main
from lgeseg.cli.predict import main as predict_main
from lgeseg.core.records import CaseGeometry, load_json
from lgeseg.files import io
from lgeseg.files.dicom import find_series, read_series, select_series
from lgeseg.inference import input_cases
from lgeseg.synth import dicom_series as synth_dicom

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STUDY_UID = "1.2.826.0.1.3680043.8.498.1"


def _oblique(shape: tuple[int, int, int], spacing: tuple[float, float, float],
             origin: tuple[float, float, float]) -> CaseGeometry:
    a, b = np.deg2rad(30.0), np.deg2rad(-20.0)  # a short-axis-like oblique plane
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return CaseGeometry(shape=shape, spacing=spacing, origin=origin, direction=tuple((rz @ rx).ravel().tolist()))


#: What this test's scanner writes into every slice besides the geometry and identifiers of the series.
SCANNER_TAGS = {"0020|000d": STUDY_UID, "0008|0070": "Phantom Medical", "0018|0087": "1.5",
                "0020|0052": f"{STUDY_UID}.7", "0010|0010": "Phantom^One", "0010|0020": "P001",
                "0010|0030": "19600101", "0010|0040": "O", "0008|0020": "20260101", "0008|0030": "120000",
                "0020|0010": "1", "0008|0050": "A1", "0008|0090": "", "0008|0021": "20260101"}


def write_dicom_series(folder: Path, volume: np.ndarray, geometry: CaseGeometry, uid: str, number: int,
                       description: str, extra: dict[str, str] | None = None, first: int = 1,
                       name: str = "IM{z:04d}.dcm") -> None:
    """Write ``volume`` (z, y, x) as one MR slice file per z, the way a scanner export looks.

    ``extra``: more tags ("gggg|eeee" -> value); ``first``: the first InstanceNumber (and SOPInstanceUID suffix);
    ``name``: the file names, formatted with ``z``.
    """
    synth_dicom.write_dicom_series(folder, volume, geometry, uid, number, description,
                                   {**SCANNER_TAGS, **(extra or {})}, first_instance=first, file_name=name)


@pytest.fixture(scope="module")
def pacs_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, CaseGeometry]]:
    """Two series in nested folders (LGE short axis and a localizer), as a PACS export arrives."""
    root = tmp_path_factory.mktemp("pacs")
    rng = np.random.default_rng(0)
    lge = _oblique((5, 36, 32), (8.0, 1.25, 1.40625), (-40.25, 12.5, 101.0))
    scout = _oblique((3, 20, 24), (6.0, 2.0, 2.0), (10.0, -5.5, 3.25))
    volume = rng.integers(0, 900, size=lge.shape)
    write_dicom_series(root / "patient1" / "study" / "series12", volume, lge, "1.2.3.4.12", 12, "SAX LGE PSIR")
    write_dicom_series(root / "patient1" / "study" / "series2", rng.integers(0, 500, size=scout.shape), scout,
                       "1.2.3.4.2", 2, "localizer")
    np.save(root / "lge.npy", volume)
    return root, {"SAX_LGE_PSIR_s12": lge, "localizer_s2": scout}


def test_series_are_found_named_and_read_with_their_exact_geometry(pacs_export: tuple) -> None:
    root, geometries = pacs_export
    series = find_series(root)
    assert [s.case_id for s in series] == ["localizer_s2", "SAX_LGE_PSIR_s12"]  # by series number
    for s in series:
        array, geometry = read_series(s)
        expected = geometries[s.case_id]
        assert geometry.shape == expected.shape
        np.testing.assert_allclose(geometry.spacing, expected.spacing, rtol=0, atol=1e-6)
        np.testing.assert_allclose(geometry.origin, expected.origin, rtol=0, atol=1e-6)
        np.testing.assert_allclose(geometry.direction, expected.direction, rtol=0, atol=1e-6)
    lge, _ = read_series(series[1])
    np.testing.assert_array_equal(lge, np.load(root / "lge.npy"))  # slice order and voxel values
    assert [s.case_id for s in select_series(series, ["*lge*"])] == ["SAX_LGE_PSIR_s12"]
    assert [s.case_id for s in select_series(series, ["1.2.3.4.2"])] == ["localizer_s2"]
    with pytest.raises(ValueError, match="matches no series.*SAX LGE PSIR"):
        select_series(series, ["T2"])


def test_predict_reads_a_dicom_folder_and_writes_nifti_on_the_series_grid(
        tmp_path: Path, pacs_export: tuple, tiny_model: Path, capsys: pytest.CaptureFixture) -> None:
    root, geometries = pacs_export
    assert predict_main(["-i", str(root), "--list-series"]) == 0
    assert "SAX LGE PSIR" in capsys.readouterr().out
    assert predict_main(["-i", str(root), "-o", str(tmp_path / "out"), "-m", str(tiny_model), "--series", "12",
                         "--disable_tta"]) == 0
    label, geometry = io.read_label(tmp_path / "out" / "SAX_LGE_PSIR_s12.nii.gz")
    assert io.geometry_mismatch(geometry, geometries["SAX_LGE_PSIR_s12"], tolerance=1e-6) == []
    assert not (tmp_path / "out" / "localizer_s2.nii.gz").exists()
    record = load_json(tmp_path / "out" / "dicom_series.json")
    assert record["SAX_LGE_PSIR_s12"]["series_instance_uid"] == "1.2.3.4.12"


def test_each_predicted_series_is_read_once(tmp_path: Path, pacs_export: tuple, tiny_model: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    original = input_cases.read_series
    monkeypatch.setattr(input_cases, "read_series", lambda series: reads.append(series.case_id) or original(series))
    root, _ = pacs_export
    assert predict_main(["-i", str(root), "-o", str(tmp_path / "out"), "-m", str(tiny_model), "--series", "12",
                         "--series", "2", "--disable_tta"]) == 0
    assert sorted(reads) == ["SAX_LGE_PSIR_s12", "localizer_s2"]  # checked from the tags, read when predicted


def test_convert_dicom_writes_the_raw_layout_with_the_series_geometry(tmp_path: Path, pacs_export: tuple) -> None:
    root, geometries = pacs_export
    assert convert_main(["dicom", str(root), str(tmp_path / "raw")]) == 0
    image, geometry = io.read_image(tmp_path / "raw" / "imagesTs" / "SAX_LGE_PSIR_s12_0000.nii.gz")
    assert io.geometry_mismatch(geometry, geometries["SAX_LGE_PSIR_s12"], tolerance=1e-6) == []
    np.testing.assert_array_equal(image, np.load(root / "lge.npy"))
    dataset = load_json(tmp_path / "raw" / "dataset.json")
    assert dataset["vendor"] == "Phantom Medical" and dataset["field_strength"] == "1.5T"
    assert list(dataset["dicom_series"]) == ["SAX_LGE_PSIR_s12"]  # the localizer is skipped by default
    assert dataset["dicom_series"]["SAX_LGE_PSIR_s12"]["series_instance_uid"] == "1.2.3.4.12"
    assert convert_main(["dicom", str(root), str(tmp_path / "all"), "--all-series"]) == 0
    every = sorted(p.name for p in (tmp_path / "all" / "imagesTs").iterdir())
    assert every == ["SAX_LGE_PSIR_s12_0000.nii.gz", "localizer_s2_0000.nii.gz"]
    _, geometry = io.read_image(tmp_path / "all" / "imagesTs" / "localizer_s2_0000.nii.gz")
    assert io.geometry_mismatch(geometry, geometries["localizer_s2"], tolerance=1e-6) == []
    assert load_json(tmp_path / "all" / "dataset.json")["dicom_series"]["localizer_s2"]["series_instance_uid"] == \
        "1.2.3.4.2"


def test_cine_phases_in_one_series_are_refused_by_name(tmp_path: Path) -> None:
    geometry = _oblique((2, 16, 16), (8.0, 1.5, 1.5), (0.0, 0.0, 0.0))
    volume = np.zeros(geometry.shape)
    write_dicom_series(tmp_path / "a", volume, geometry, "1.2.3.9", 9, "cine")
    write_dicom_series(tmp_path / "b", volume, geometry, "1.2.3.9", 9, "cine")  # same positions again
    (series,) = find_series(tmp_path)
    with pytest.raises(ValueError, match="cine_s9.*several images share one slice position"):
        read_series(series)


def test_dicom_seg_references_the_source_slices_and_holds_the_label_map(
        tmp_path: Path, pacs_export: tuple, tiny_model: Path) -> None:
    highdicom = pytest.importorskip("highdicom")  # the optional extra lgeseg[dicom]; scripts/setup.sh installs it
    root, _ = pacs_export
    assert predict_main(["-i", str(root), "-o", str(tmp_path / "out"), "-m", str(tiny_model), "--series", "*LGE*",
                         "--disable_tta", "--dicom-seg", "--postprocess", "none"]) == 0
    label, _ = io.read_label(tmp_path / "out" / "SAX_LGE_PSIR_s12.nii.gz")
    seg = highdicom.seg.segread(tmp_path / "out" / "SAX_LGE_PSIR_s12.seg.dcm")
    sources = sorted(find_series(root)[1].files)
    import pydicom

    source_uids = [pydicom.dcmread(f).SOPInstanceUID for f in sources]
    assert {s.segment_label for s in seg.SegmentSequence} == {"blood pool", "myocardium"}
    present = sorted(int(v) for v in np.unique(label) if v)
    volume = seg.get_pixels_by_source_instance(source_uids, segment_numbers=present,
                                               combine_segments=True, skip_overlap_checks=True)
    expected = np.stack([label[z] for z in range(label.shape[0])])
    np.testing.assert_array_equal(np.asarray(volume), expected)


def test_dicom_seg_on_image_files_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    pytest.importorskip("highdicom")
    geometry = _oblique((2, 16, 16), (8.0, 1.5, 1.5), (0.0, 0.0, 0.0))
    io.write_image(tmp_path / "in" / "a_0000.nii.gz", np.zeros(geometry.shape, np.float32), geometry)
    assert predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(tiny_model),
                         "--dicom-seg"]) == 1
    assert not (tmp_path / "out").exists()


# --- issue 25 item 3: a study folder as the scanner exports it --------------------------------------------------


def write_multiframe(path: Path, volume: np.ndarray, geometry: CaseGeometry, uid: str, number: int,
                     description: str, frame_order: list[int]) -> None:
    """Write ``volume`` as one Enhanced MR Image Storage file (every slice a frame), frames in ``frame_order``.

    As the standard puts it: the orientation and pixel spacing in SharedFunctionalGroupsSequence, each
    frame's ImagePositionPatient in its PerFrameFunctionalGroupsSequence item, a rescale per frame.
    """
    import pydicom  # the optional extra lgeseg[dicom] (highdicom's dependency) that multi-frame files need
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian

    d = np.array(geometry.direction).reshape(3, 3)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    meta.MediaStorageSOPInstanceUID = f"{uid}.1"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    for key, value in {"SOPClassUID": meta.MediaStorageSOPClassUID, "SOPInstanceUID": f"{uid}.1", "Modality": "MR",
                       "SeriesInstanceUID": uid, "StudyInstanceUID": STUDY_UID, "SeriesNumber": number,
                       "SeriesDescription": description, "ImageType": ["ORIGINAL", "PRIMARY", "M", "NONE"],
                       "PatientName": "Phantom^Two", "PatientID": "P002", "PatientBirthDate": "19600101",
                       "PatientSex": "F", "StudyID": "1", "StudyDate": "20260101", "StudyTime": "120000",
                       "AccessionNumber": "A2", "ReferringPhysicianName": "", "FrameOfReferenceUID": f"{STUDY_UID}.8",
                       "Manufacturer": "Phantom Medical", "InstanceNumber": 1, "ContentDate": "20260101",
                       "ContentTime": "120000", "AcquisitionDateTime": "20260101120000", "Rows": volume.shape[1],
                       "Columns": volume.shape[2], "NumberOfFrames": volume.shape[0], "SamplesPerPixel": 1,
                       "PhotometricInterpretation": "MONOCHROME2", "BitsAllocated": 16, "BitsStored": 16,
                       "HighBit": 15, "PixelRepresentation": 1}.items():
        setattr(ds, key, value)
    measures, plane, shared = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing = [geometry.spacing[1], geometry.spacing[2]]
    measures.SliceThickness = geometry.spacing[0]
    plane.ImageOrientationPatient = [float(v) for v in (*d[:, 0], *d[:, 1])]
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = Sequence([measures]), Sequence([plane])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for z in frame_order:
        position, transform, frame = Dataset(), Dataset(), Dataset()
        corner = np.array(geometry.origin) + z * geometry.spacing[0] * d[:, 2]
        position.ImagePositionPatient = [float(v) for v in corner]
        transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 2, -100, "US"
        frame.PlanePositionSequence, frame.PixelValueTransformationSequence = (Sequence([position]),
                                                                               Sequence([transform]))
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    stored = ((volume[frame_order] + 100) // 2).astype(np.int16)  # the rescale gives volume back
    ds.PixelData = stored.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


@pytest.fixture(scope="module")
def scanner_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CaseGeometry]:
    """A study as the scanner exports it: localizer, cine short axis (2 phases), LGE short axis (known only by its
    inversion time), a one-slice LGE 4-chamber view and a T1 map, one folder per series."""
    root = tmp_path_factory.mktemp("study")
    rng = np.random.default_rng(3)
    sax = _oblique((5, 36, 32), (8.0, 1.25, 1.40625), (-40.25, 12.5, 101.0))
    scout = _oblique((3, 20, 24), (6.0, 2.0, 2.0), (10.0, -5.5, 3.25))
    write_dicom_series(root / "s1", rng.integers(0, 500, size=scout.shape), scout, "1.2.5.1", 1, "localizer",
                       {"0008|0008": "ORIGINAL\\PRIMARY\\LOCALIZER"})
    for phase in range(2):  # two cardiac phases at every slice position: one cine series
        write_dicom_series(root / "s5", rng.integers(0, 500, size=sax.shape), sax, "1.2.5.5", 5, "sa_cine_retro",
                           {"0018|1090": "2", "0018|1060": str(400 * phase)}, first=1 + 10 * phase,
                           name=f"P{phase}_{{z:04d}}.dcm")
    write_dicom_series(root / "s7", rng.integers(0, 500, size=sax.shape), sax, "1.2.5.7", 7, "MOLLI T1 map",
                       {"0018|0082": "100"})
    lge = rng.integers(0, 900, size=sax.shape)
    write_dicom_series(root / "s12", lge, sax, "1.2.5.12", 12, "tfl2d1_SA", {"0018|0082": "300"})
    write_dicom_series(root / "s13", rng.integers(0, 900, size=(1, 36, 32)), _oblique((1, 36, 32), (8.0, 1.25, 1.25),
                       (0.0, 0.0, 0.0)), "1.2.5.13", 13, "LGE 4CH", {"0018|0082": "300"})
    np.save(root / "lge.npy", lge)
    return root, sax


def test_a_study_folder_predicts_its_short_axis_lge_and_skips_the_rest_one_line_each(
        tmp_path: Path, scanner_study: tuple, tiny_model: Path, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture) -> None:
    root, sax = scanner_study
    assert predict_main(["-i", str(root), "--list-series"]) == 0
    listing = capsys.readouterr().out
    assert "lge " in listing and "cine" in listing and "localizer" in listing
    with caplog.at_level(logging.INFO):
        assert predict_main(["-i", str(root), "-o", str(tmp_path / "out"), "-m", str(tiny_model),
                             "--disable_tta"]) == 0  # no --series: the cine series used to abort the run
    assert sorted(p.name for p in (tmp_path / "out").glob("*.nii.gz")) == ["tfl2d1_SA_s12.nii.gz"]
    _, geometry = io.read_label(tmp_path / "out" / "tfl2d1_SA_s12.nii.gz")
    assert io.geometry_mismatch(geometry, sax, tolerance=1e-6) == []
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped series")]
    assert len(skipped) == 4
    for number, kind in (("1", "localizer"), ("5", "cine"), ("7", "map"), ("13", "long axis")):
        assert any(line.startswith(f"skipped series {number} ") and f": {kind} (" in line for line in skipped), skipped


def test_convert_dicom_takes_the_short_axis_lge_of_a_study_and_skips_the_rest_one_line_each(
        tmp_path: Path, scanner_study: tuple, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture) -> None:
    root, sax = scanner_study
    with caplog.at_level(logging.INFO):
        assert convert_main(["dicom", str(root), str(tmp_path / "lge")]) == 0  # no --series: the cine used to abort
    assert sorted(p.name for p in (tmp_path / "lge" / "imagesTs").iterdir()) == ["tfl2d1_SA_s12_0000.nii.gz"]
    image, geometry = io.read_image(tmp_path / "lge" / "imagesTs" / "tfl2d1_SA_s12_0000.nii.gz")
    assert io.geometry_mismatch(geometry, sax, tolerance=1e-6) == []
    np.testing.assert_array_equal(image, np.load(root / "lge.npy"))
    assert list(load_json(tmp_path / "lge" / "dataset.json")["dicom_series"]) == ["tfl2d1_SA_s12"]
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped series")]
    assert len(skipped) == 4 and all("\n" not in line for line in skipped)
    for number, kind in (("1", "localizer"), ("5", "cine"), ("7", "map"), ("13", "long axis")):
        assert any(line.startswith(f"skipped series {number} ") and f": {kind} (" in line
                   and line.endswith(f"--series {number} takes it anyway") for line in skipped), skipped
    # --series still takes exactly the named series, whatever its kind
    assert convert_main(["dicom", str(root), str(tmp_path / "scout"), "--series", "1"]) == 0
    assert sorted(p.name for p in (tmp_path / "scout" / "imagesTs").iterdir()) == ["localizer_s1_0000.nii.gz"]
    # --all-series takes the cine too, which is refused by name (its two phases are not one volume)
    capsys.readouterr()
    assert convert_main(["dicom", str(root), str(tmp_path / "every"), "--all-series"]) == 1
    assert "sa_cine_retro_s5" in capsys.readouterr().err and not (tmp_path / "every").exists()
    with pytest.raises(SystemExit) as usage_error:
        convert_main(["dicom", str(root), str(tmp_path / "both"), "--all-series", "--series", "12"])
    assert usage_error.value.code == 2


def test_convert_dicom_of_a_study_without_lge_names_every_series_and_both_options(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    scout = _oblique((3, 20, 24), (6.0, 2.0, 2.0), (10.0, -5.5, 3.25))
    write_dicom_series(tmp_path / "in", np.zeros(scout.shape), scout, "1.2.8", 2, "localizer")
    assert convert_main(["dicom", str(tmp_path / "in"), str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert "no short-axis LGE series found among 1 series (2 localizer (localizer))" in error
    assert "--series NUMBER" in error and "or take every series with --all-series" in error


def test_a_study_without_lge_names_every_series_and_the_option_to_pick_one(tmp_path: Path, tiny_model: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    geometry = _oblique((2, 16, 16), (8.0, 1.5, 1.5), (0.0, 0.0, 0.0))
    for phase in range(2):
        write_dicom_series(tmp_path / "in" / f"p{phase}", np.zeros(geometry.shape), geometry, "1.2.9", 9, "cine")
    assert predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(tiny_model)]) == 1
    assert "no short-axis LGE series found among 1 series (9 cine (cine)); pick the series to segment with " \
           "--series" in capsys.readouterr().err


def test_a_multiframe_enhanced_mr_file_reads_as_the_same_volume_and_grid_as_its_slices(
        tmp_path: Path, tiny_model: Path) -> None:
    geometry = _oblique((5, 36, 32), (8.0, 1.25, 1.40625), (-40.25, 12.5, 101.0))
    volume = np.random.default_rng(4).integers(0, 900, size=geometry.shape).astype(np.int16) * 2
    write_dicom_series(tmp_path / "slices", volume, geometry, "1.2.6.1", 3, "SAX LGE")
    write_multiframe(tmp_path / "enhanced" / "lge.dcm", volume, geometry, "1.2.6.2", 4, "SAX LGE enhanced",
                     frame_order=[3, 0, 4, 1, 2])  # frames need not be in slice order
    (from_slices,), (multiframe,) = find_series(tmp_path / "slices"), find_series(tmp_path / "enhanced")
    expected, expected_geometry = read_series(from_slices)
    array, found_geometry = read_series(multiframe)  # was: a 4D image, then an internal shape error
    np.testing.assert_array_equal(array, expected)
    assert io.geometry_mismatch(found_geometry, expected_geometry, tolerance=1e-6) == []
    assert predict_main(["-i", str(tmp_path / "enhanced"), "-o", str(tmp_path / "out"), "-m", str(tiny_model),
                         "--disable_tta"]) == 0
    _, written = io.read_label(tmp_path / "out" / "SAX_LGE_enhanced_s4.nii.gz")
    assert io.geometry_mismatch(written, geometry, tolerance=1e-6) == []


def test_dicom_seg_of_a_multiframe_file_follows_its_frames_and_highdicom_stays_quiet(
        tmp_path: Path, tiny_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    highdicom = pytest.importorskip("highdicom")
    geometry = _oblique((4, 32, 32), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0))
    volume = np.zeros(geometry.shape, np.int16)
    volume[:, 8:24, 8:24] = 800  # a bright square the untrained model labels somewhere
    write_multiframe(tmp_path / "in" / "lge.dcm", volume, geometry, "1.2.6.3", 5, "LGE", frame_order=[2, 0, 3, 1])
    with caplog.at_level(logging.INFO):
        assert predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(tiny_model),
                             "--disable_tta", "--dicom-seg", "--postprocess", "none"]) == 0
    assert not [r for r in caplog.records if r.name.startswith("highdicom") and r.levelno < logging.WARNING]
    label, _ = io.read_label(tmp_path / "out" / "LGE_s5.nii.gz")
    seg = highdicom.seg.segread(tmp_path / "out" / "LGE_s5.seg.dcm")
    for segment in (int(v) for v in np.unique(label) if v):
        frames = [i for i, item in enumerate(seg.PerFrameFunctionalGroupsSequence)
                  if item.SegmentIdentificationSequence[0].ReferencedSegmentNumber == segment]
        sources = {int(seg.PerFrameFunctionalGroupsSequence[i].DerivationImageSequence[0].SourceImageSequence[0]
                       .ReferencedFrameNumber) for i in frames}
        # the label map's slice z is the file's frame [2, 0, 3, 1][z] (1-based in DICOM)
        assert sources == {[2, 0, 3, 1][z] + 1 for z in range(4) if (label[z] == segment).any()}


def test_a_duplicate_slice_is_named_as_one_not_as_an_uneven_gap(tmp_path: Path, tiny_model: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    geometry = _oblique((10, 16, 16), (8.6, 1.5, 1.5), (0.0, 0.0, 0.0))
    volume = np.random.default_rng(5).integers(0, 900, size=geometry.shape)
    write_dicom_series(tmp_path / "in", volume, geometry, "1.2.7.1", 12, "SAX LGE")
    write_dicom_series(tmp_path / "in", volume[:1], dataclasses.replace(geometry, shape=(1, 16, 16)), "1.2.7.1", 12,
                       "SAX LGE", first=100,
                       name="ZZ_copy{z:04d}.dcm")  # slice 1 again, exported twice: sorts last by name
    assert predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(tiny_model)]) == 1
    err = capsys.readouterr().err
    assert "several images share one slice position: IM0000.dcm and ZZ_copy0000.dcm" in err, err
    assert "a duplicate slice: remove one of them" in err and "not evenly spaced" not in err
