"""Round-trips of images and geometry through lgeseg.files.io."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lgeseg.core.records import CaseGeometry
from lgeseg.files import io

Oblique = Callable[..., CaseGeometry]


@pytest.mark.parametrize("ending", [".nii.gz", ".nii", ".mha", ".nrrd"])
def test_image_round_trip_keeps_array_and_geometry(tmp_path: Path, ending: str, oblique_geometry: Oblique) -> None:
    geometry = oblique_geometry((4, 9, 7))
    array = np.random.default_rng(0).normal(size=geometry.shape).astype(np.float32)
    path = tmp_path / f"case_0000{ending}"
    io.write_image(path, array, geometry)
    back, back_geometry = io.read_image(path)
    np.testing.assert_array_equal(back, array)
    assert io.geometry_mismatch(back_geometry, geometry) == []
    assert back_geometry.shape == (4, 9, 7)


def test_label_round_trip_is_uint8(tmp_path: Path, oblique_geometry: Oblique) -> None:
    geometry = oblique_geometry((3, 5, 6))
    label = np.zeros(geometry.shape, dtype=np.uint8)
    label[1, 2:4, 2:5] = 2
    io.write_label(tmp_path / "case.nii.gz", label, geometry)
    back, _ = io.read_label(tmp_path / "case.nii.gz")
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, label)


@pytest.mark.parametrize("name, message", [("broken.nii.gz", "broken.nii.gz"),  # unreadable: names the file
                                           ("case.png", "unsupported file ending")])
@pytest.mark.parametrize("read", [io.read_image, io.read_label])
def test_a_file_that_is_not_an_image_is_refused_naming_it(tmp_path: Path, name: str, message: str, read) -> None:
    path = tmp_path / name
    path.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=message) as err:
        read(path)
    assert name in str(err.value)


def test_geometry_mismatch_names_each_field(oblique_geometry: Oblique) -> None:
    a = oblique_geometry((4, 9, 7))
    b = dataclasses.replace(a, shape=(4, 9, 8), spacing=(a.spacing[0], 1.0, a.spacing[2]))
    problems = io.geometry_mismatch(a, b)
    assert any(p.startswith("shape") for p in problems)
    assert any(p.startswith("spacing") for p in problems)
    assert len(problems) == 2


def test_written_files_are_readable_by_others(tmp_path: Path, oblique_geometry: Oblique) -> None:
    """Atomic writes must not leave mkstemp's private 0600 mode on shared outputs."""
    geometry = oblique_geometry((2, 3, 4))
    io.write_image(tmp_path / "img.nii.gz", np.zeros(geometry.shape, np.float32), geometry)
    assert (tmp_path / "img.nii.gz").stat().st_mode & 0o044 == 0o044
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
