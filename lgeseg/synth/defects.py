"""Plant defects in image files, the way damaged downloads and broken converters make them.

Used by the reliability tests (``tests/test_reliability.py``) and by ``benchmarks/reliability_matrix.py``
to check that every reader refuses the file with a message naming it. Each function rewrites one
NIfTI file (``.nii.gz`` or ``.nii``) in place, except ``write_clean_image``, a small clean image to try
them on.

Usage (a raw dataset)::

    truncate_gzip(Path("raw/imagesTr/c1_000_0000.nii.gz"))   # cut the compressed file in half
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lgeseg.core.records import CaseGeometry
from lgeseg.files import io


def _read_raw(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()


def _write_raw(path: Path, data: bytes) -> None:
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def write_clean_image(path: Path) -> Path:
    """Write a small defect-free image to plant a defect in (``.nii.gz`` or ``.nii`` by the name); returns ``path``.

    The image is float32 (z, y, x) = (2, 4, 4) voxels holding 0, 1, ..., 31, spacing (8.0, 1.25, 1.25)
    mm (z, y, x), origin 0 and identity direction: 128 bytes of voxel data.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> image, geometry = io.read_image(write_clean_image(Path(tmp.name) / "c_0000.nii.gz"))
        >>> image.shape, float(image.max()), geometry.spacing
        ((2, 4, 4), 31.0, (8.0, 1.25, 1.25))
        >>> tmp.cleanup()
    """
    geometry = CaseGeometry((2, 4, 4), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    io.write_image(path, np.arange(32, dtype=np.float32).reshape(2, 4, 4), geometry)
    return Path(path)

def truncate_gzip(path: Path, fraction: float = 0.5) -> None:
    """Keep only the first ``fraction`` of the compressed bytes (an interrupted download).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = write_clean_image(Path(tmp.name) / "c_0000.nii.gz")
        >>> truncate_gzip(path)
        >>> io.check_image_content(path)
        Traceback (most recent call last):
        lgeseg.core.errors.CorruptFileError: .../c_0000.nii.gz: file is truncated (the compressed stream ends early: ...
        >>> tmp.cleanup()
    """
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def truncate_payload(path: Path, fraction: float = 0.5) -> None:
    """Keep the header but only ``fraction`` of the voxel data, in a complete gzip stream (a short write).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = write_clean_image(Path(tmp.name) / "c_0000.nii.gz")
        >>> truncate_payload(path)
        >>> io.read_image(path)
        Traceback (most recent call last):
        lgeseg.core.errors.CorruptFileError: ...: file is truncated: the voxel data is 64 bytes, the header (...)
        needs 128
        >>> tmp.cleanup()
    """
    data = _read_raw(path)
    offset = int(struct.unpack("<f", data[108:112])[0])
    _write_raw(path, data[: offset + int((len(data) - offset) * fraction)])


def set_pixdim(path: Path, axis: int, value: float) -> None:
    """Write ``value`` as the header spacing of ``axis`` (0 x, 1 y, 2 z), in mm, leaving the rest alone.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = write_clean_image(Path(tmp.name) / "c_0000.nii.gz")
        >>> set_pixdim(path, axis=2, value=0.0)
        >>> io.read_image(path)
        Traceback (most recent call last):
        lgeseg.core.errors.InvalidInputError: ...: voxel spacing in the header (pixdim, x, y, z) is 1.25, 1.25, 0 mm;
        ...
        >>> tmp.cleanup()
    """
    data = bytearray(_read_raw(path))
    start = 80 + 4 * axis
    data[start:start + 4] = struct.pack("<f", value)
    _write_raw(path, bytes(data))


def rewrite_values(path: Path, array: np.ndarray) -> None:
    """Replace the voxel values, keeping the geometry (``array`` (z, y, x) of any dtype, e.g. float64).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = write_clean_image(Path(tmp.name) / "c_0000.nii.gz")
        >>> rewrite_values(path, np.ones((2, 4, 4), np.float64))
        >>> image, read_back = io.read_image(path)
        >>> float(image.sum()), read_back.spacing  # new values, same geometry
        (32.0, (8.0, 1.25, 1.25))
        >>> tmp.cleanup()
    """
    geometry, _ = io.read_geometry(path)
    io.write_image(path, array, geometry)


def with_nan_voxel(path: Path, value: float = float("nan")) -> None:
    """Set one voxel (the centre) to ``value`` (NaN by default; Inf works too).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = write_clean_image(Path(tmp.name) / "c_0000.nii.gz")
        >>> with_nan_voxel(path)
        >>> io.read_image(path)
        Traceback (most recent call last):
        lgeseg.core.errors.InvalidInputError: .../c_0000.nii.gz: image holds 1 NaN and 0 Inf voxel(s) of 32
        >>> tmp.cleanup()
    """
    content = io.read_nifti_content(path)
    if content is None or content.values is None:
        raise ValueError(f"{path}: not a NIfTI file with numeric voxels")
    geometry, _ = io.read_geometry(path)
    array = content.values.reshape(geometry.shape).astype(np.float32)
    array[tuple(s // 2 for s in array.shape)] = value
    rewrite_values(path, array)


def constant(path: Path, value: float = 0.0) -> None:
    """Make every voxel ``value`` (an all-zero or blank image).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = write_clean_image(Path(tmp.name) / "c_0000.nii.gz")
        >>> constant(path, 0.0)
        >>> float(io.read_image(path)[0].max())
        0.0
        >>> tmp.cleanup()
    """
    geometry, _ = io.read_geometry(path)
    rewrite_values(path, np.full(geometry.shape, value, np.float32))


def beyond_float32(path: Path) -> None:
    """Store the image as float64 with values beyond float32's range (1e39 and up).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = write_clean_image(Path(tmp.name) / "c_0000.nii.gz")
        >>> beyond_float32(path)
        >>> io.read_image(path)
        Traceback (most recent call last):
        lgeseg.core.errors.InvalidInputError: .../c_0000.nii.gz: values up to 2e+39 do not fit float32 (largest 3.4e+38)
        >>> tmp.cleanup()
    """
    geometry, _ = io.read_geometry(path)
    rewrite_values(path, np.full(geometry.shape, 1e39, np.float64) * np.linspace(1, 2, int(np.prod(geometry.shape)))
                   .reshape(geometry.shape))


#: The image defects of the reliability matrix: name -> function planting it in one image file.
IMAGE_DEFECTS: dict[str, Callable[[Path], None]] = {
    "gzip stream cut in half": truncate_gzip,
    "voxel data cut in half (complete gzip)": truncate_payload,
    "one NaN voxel": with_nan_voxel,
    "one Inf voxel": lambda path: with_nan_voxel(path, float("inf")),
    "all voxels NaN": lambda path: rewrite_values(path, np.full(io.read_geometry(path)[0].shape, np.nan, np.float32)),
    "float64 values beyond float32": beyond_float32,
    "zero z spacing": lambda path: set_pixdim(path, 2, 0.0),
    "negative x spacing": lambda path: set_pixdim(path, 0, -1.5),
    "1000 mm z spacing": lambda path: set_pixdim(path, 2, 1000.0),
    "0.01 mm in-plane spacing": lambda path: set_pixdim(path, 0, 0.01),
}
