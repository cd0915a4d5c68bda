"""Image files <-> (ndarray, CaseGeometry). The only module that touches SimpleITK file I/O.

Arrays are returned in (z, y, x) order; ``CaseGeometry`` keeps spacing in the same order and
origin/direction exactly as ITK reports them, so ``write_image(path, *read_image(path))``
reproduces the header bit for bit.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lgeseg.atomic import atomic_output
from lgeseg.records import CaseGeometry

#: File endings lgeseg reads and writes (anything SimpleITK reads; these are the common ones).
SUPPORTED_ENDINGS: tuple[str, ...] = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd")


def file_ending(path: str | Path) -> str:
    """Return the supported ending of ``path`` (``".nii.gz"``, ...) or ``""`` if none matches."""
    name = Path(path).name.lower()
    for ending in SUPPORTED_ENDINGS:
        if name.endswith(ending):
            return ending
    return ""


def strip_ending(path: str | Path) -> str:
    """Return the file name of ``path`` without its supported ending (``case_0000``)."""
    name = Path(path).name
    ending = file_ending(name)
    return name[: len(name) - len(ending)] if ending else name


def _geometry_of(image: sitk.Image) -> CaseGeometry:
    if image.GetDimension() != 3:
        raise ValueError(f"expected a 3D image, found {image.GetDimension()}D")
    size_xyz = image.GetSize()
    spacing_xyz = image.GetSpacing()
    return CaseGeometry(
        shape=(int(size_xyz[2]), int(size_xyz[1]), int(size_xyz[0])),
        spacing=(float(spacing_xyz[2]), float(spacing_xyz[1]), float(spacing_xyz[0])),
        origin=tuple(float(v) for v in image.GetOrigin()),
        direction=tuple(float(v) for v in image.GetDirection()),
    )


def _read_sitk(path: str | Path) -> sitk.Image:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    if not file_ending(path):
        raise ValueError(f"{path}: unsupported file ending; expected one of {', '.join(SUPPORTED_ENDINGS)}")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as err:
        first_line = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown error"
        raise ValueError(f"{path}: cannot be read as an image ({first_line})") from err


def read_geometry(path: str | Path) -> tuple[CaseGeometry, int]:
    """Read only the header of an image file.

    Returns:
        (geometry, number_of_components_per_pixel). Raises ``ValueError`` naming the file if it
        is unreadable or not 3D.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise ValueError(f"{path}: cannot be read as an image") from err
    dim = reader.GetDimension()
    if dim != 3:
        raise ValueError(f"{path}: expected a 3D image, found {dim}D (size {reader.GetSize()})")
    size = reader.GetSize()
    spacing = reader.GetSpacing()
    geometry = CaseGeometry(
        shape=(int(size[2]), int(size[1]), int(size[0])),
        spacing=(float(spacing[2]), float(spacing[1]), float(spacing[0])),
        origin=tuple(float(v) for v in reader.GetOrigin()),
        direction=tuple(float(v) for v in reader.GetDirection()),
    )
    return geometry, int(reader.GetNumberOfComponents())


def read_image(path: str | Path) -> tuple[np.ndarray, CaseGeometry]:
    """Read a 3D image.

    Args:
        path: .nii.gz, .nii, .mha, .mhd or .nrrd file.

    Returns:
        (array float32 of shape (z, y, x), geometry). Raises ``ValueError`` naming the file for
        unreadable, non-3D or multi-component images.
    """
    image = _read_sitk(path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"{path}: expected one value per voxel, found {image.GetNumberOfComponentsPerPixel()}")
    try:
        geometry = _geometry_of(image)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    return sitk.GetArrayFromImage(image).astype(np.float32, copy=False), geometry


def read_label(path: str | Path) -> tuple[np.ndarray, CaseGeometry]:
    """Read a 3D label map.

    Returns:
        (array uint8 of shape (z, y, x), geometry). Raises ``ValueError`` naming the file if a
        value is negative, non-integer or above 255.
    """
    image = _read_sitk(path)
    try:
        geometry = _geometry_of(image)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    array = sitk.GetArrayFromImage(image)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(np.equal(np.mod(array, 1), 0)):
            raise ValueError(f"{path}: label map holds non-integer values")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"{path}: label values must lie in 0..255, found {array.min()}..{array.max()}")
    return array.astype(np.uint8), geometry


def to_sitk(array: np.ndarray, geometry: CaseGeometry) -> sitk.Image:
    """Build a SimpleITK image from a (z, y, x) array and its geometry."""
    if tuple(array.shape) != tuple(geometry.shape):
        raise ValueError(f"array shape {tuple(array.shape)} does not match geometry shape {tuple(geometry.shape)}")
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in reversed(geometry.spacing)))
    image.SetOrigin(tuple(float(o) for o in geometry.origin))
    image.SetDirection(tuple(float(d) for d in geometry.direction))
    return image


def write_image(path: str | Path, array: np.ndarray, geometry: CaseGeometry, compress: bool = True) -> None:
    """Write a (z, y, x) array with ``geometry`` to ``path`` atomically (temp file + rename).

    The dtype of ``array`` is kept (use uint8 for label maps, float32 for images).
    """
    path = Path(path)
    ending = file_ending(path)
    if not ending:
        raise ValueError(f"{path}: unsupported file ending; expected one of {', '.join(SUPPORTED_ENDINGS)}")
    image = to_sitk(np.ascontiguousarray(array), geometry)
    with atomic_output(path, suffix=ending) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress)


def write_label(path: str | Path, array: np.ndarray, geometry: CaseGeometry) -> None:
    """Write a (z, y, x) label map as uint8 (see ``write_image``)."""
    write_image(path, np.asarray(array).astype(np.uint8), geometry)


def geometry_mismatch(a: CaseGeometry, b: CaseGeometry, tolerance: float = 1e-4) -> list[str]:
    """Describe how two geometries differ, one string per field, empty when they match.

    Spacing/origin compare with a relative tolerance of ``tolerance`` (and the same absolute
    tolerance in mm), direction cosines with an absolute tolerance of ``tolerance``.
    """
    problems: list[str] = []
    if tuple(a.shape) != tuple(b.shape):
        problems.append(f"shape {tuple(a.shape)} vs {tuple(b.shape)}")
    if not np.allclose(a.spacing, b.spacing, rtol=tolerance, atol=tolerance):
        problems.append(f"spacing {tuple(a.spacing)} vs {tuple(b.spacing)}")
    if not np.allclose(a.origin, b.origin, rtol=tolerance, atol=max(tolerance, 1e-3)):
        problems.append(f"origin {tuple(a.origin)} vs {tuple(b.origin)}")
    if not np.allclose(a.direction, b.direction, atol=tolerance):
        problems.append(f"direction {tuple(a.direction)} vs {tuple(b.direction)}")
    return problems


#: NIfTI-1 datatype code -> NumPy float type (integer types cannot hold NaN/Inf).
_NIFTI_FLOAT_TYPES = {16: "f4", 64: "f8"}


def nifti_nonfinite_counts(path: str | Path) -> tuple[int, int] | None:
    """Count (NaN, Inf) voxels of a float NIfTI-1 file (``.nii``/``.nii.gz``) from its raw bytes.

    ITK's NIfTI reader silently turns NaN and Inf into 0, so ``read_image`` cannot see them;
    other tools (and the person who made the file) do. Returns None for non-float or non-NIfTI-1
    files and for files this cannot parse (the regular read reports those).
    """
    path = Path(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
        order = next((o for o in "<>" if len(data) >= 348 and struct.unpack(f"{o}i", data[:4])[0] == 348), None)
        if order is None:
            return None
        dims = struct.unpack(f"{order}8h", data[40:56])
        dtype = _NIFTI_FLOAT_TYPES.get(struct.unpack(f"{order}h", data[70:72])[0])
        offset = int(struct.unpack(f"{order}f", data[108:112])[0])
        if dtype is None or not 1 <= dims[0] <= 7:
            return None
        values = np.frombuffer(data, dtype=f"{order}{dtype}", count=int(np.prod(dims[1:1 + dims[0]])), offset=offset)
    except (OSError, EOFError, ValueError, struct.error):
        return None
    return int(np.isnan(values).sum()), int(np.isinf(values).sum())
