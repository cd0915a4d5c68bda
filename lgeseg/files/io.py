"""Image files <-> (ndarray, CaseGeometry). The only module that touches SimpleITK file I/O.

Arrays are returned in (z, y, x) order; ``CaseGeometry`` keeps spacing in the same order and
origin/direction exactly as ITK reports them, so ``write_image(path, *read_image(path))``
reproduces the header bit for bit.
"""

from __future__ import annotations

import dataclasses
import errno
import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lgeseg.core.atomic import atomic_output
from lgeseg.core.errors import CorruptFileError, InvalidInputError
from lgeseg.core.records import CaseGeometry

#: File endings lgeseg reads and writes (anything SimpleITK reads; these are the common ones).
SUPPORTED_ENDINGS: tuple[str, ...] = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd")


def file_ending(path: str | Path) -> str:
    """Return the supported ending of ``path`` (``".nii.gz"``, ...) or ``""`` if none matches.

    Example:
        >>> file_ending("imagesTr/C1_000_0000.NII.GZ"), file_ending("notes.txt")
        ('.nii.gz', '')
    """
    name = Path(path).name.lower()
    for ending in SUPPORTED_ENDINGS:
        if name.endswith(ending):
            return ending
    return ""


def strip_ending(path: str | Path) -> str:
    """Return the file name of ``path`` without its supported ending (``case_0000``).

    Example:
        >>> strip_ending("imagesTr/c1_000_0000.nii.gz")
        'c1_000_0000'
    """
    name = Path(path).name
    ending = file_ending(name)
    return name[: len(name) - len(ending)] if ending else name


#: Largest deviation of ``D @ D.T`` from the identity accepted for a direction matrix D (ITK writes 1e-10).
DIRECTION_TOLERANCE = 1e-3


def direction_problem(direction: tuple[float, ...]) -> str | None:
    """Why a 3x3 ITK direction (row-major) is not a rotation or reflection (orthonormal), or None.

    A non-orthonormal matrix (a hand-edited or damaged ``TransformMatrix``) has no physical meaning:
    resampling and every mm measurement would be skewed. NIfTI readers orthonormalize; MetaImage
    and NRRD readers pass the matrix on as written.

    Example:
        >>> direction_problem((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)) is None
        True
        >>> print(direction_problem((1.7, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)))  # a column of length 1.7
        direction matrix (1.7, 0, 0, 0, 1, 0, 0, 0, 1) is not orthonormal (...); the header is damaged or ...
    """
    matrix = np.asarray(direction, dtype=float)
    if matrix.size != 9 or not np.all(np.isfinite(matrix)):
        return f"direction matrix {tuple(direction)} is not 9 finite numbers"
    matrix = matrix.reshape(3, 3)
    deviation = float(np.abs(matrix @ matrix.T - np.eye(3)).max())
    if deviation <= DIRECTION_TOLERANCE:
        return None
    shown = ", ".join(f"{v:g}" for v in direction)
    return (f"direction matrix ({shown}) is not orthonormal (its columns must be unit vectors at right angles; "
            f"D x D^T deviates from the identity by {deviation:.3g}); the header is damaged or hand-edited: "
            "rewrite it with the scanner's orientation")


def _checked_geometry(path: str | Path, geometry: CaseGeometry) -> CaseGeometry:
    problem = direction_problem(geometry.direction)
    if problem:
        raise InvalidInputError(f"{path}: {problem}")
    return geometry


def geometry_of(image: sitk.Image) -> CaseGeometry:
    """The geometry of a 3D SimpleITK image: shape and spacing (z, y, x), origin and direction as ITK's.

    Example:
        >>> geometry_of(sitk.Image(4, 3, 2, sitk.sitkFloat32)).shape  # ITK size (x, y, z) = (4, 3, 2)
        (2, 3, 4)
    """
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
        is unreadable or not 3D, or its direction matrix is not orthonormal (``direction_problem``).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> geometry = CaseGeometry((2, 3, 4), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> write_image(Path(tmp.name) / "c_0000.nii.gz", np.zeros((2, 3, 4), np.float32), geometry)
        >>> header, components = read_geometry(Path(tmp.name) / "c_0000.nii.gz")
        >>> header.shape, header.spacing, components
        ((2, 3, 4), (8.0, 1.25, 1.25), 1)
        >>> tmp.cleanup()
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
    _check_header_spacing(path)
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
    return _checked_geometry(path, geometry), int(reader.GetNumberOfComponents())


def read_image(path: str | Path, check_content: bool = True) -> tuple[np.ndarray, CaseGeometry]:
    """Read a 3D image.

    Args:
        path: .nii.gz, .nii, .mha, .mhd or .nrrd file.
        check_content: False when ``check_image_content(path)`` already passed for this file (the
            prediction's up-front check, ``input_cases.check_case``): a NIfTI file's bytes are then not
            decompressed and checked again. Other formats are always checked, from the array read here.

    Returns:
        (array float32 of shape (z, y, x), geometry). Raises ``ValueError`` naming the file for
        unreadable, non-3D or multi-component images, ``CorruptFileError`` for a truncated or
        damaged file, and ``InvalidInputError`` for NaN/Inf voxels, values beyond float32,
        zero/negative spacing (``check_image_content``) or a direction matrix that is not
        orthonormal (``direction_problem``). The plausible-range check of the spacing
        is the caller's (``spacing_problem``), since ``--allow-unusual-spacing`` may lift it.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> geometry = CaseGeometry((2, 3, 4), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> write_image(Path(tmp.name) / "c_0000.nii.gz", np.arange(24, dtype=np.int16).reshape(2, 3, 4), geometry)
        >>> image, read_back = read_image(Path(tmp.name) / "c_0000.nii.gz")
        >>> image.dtype, image.shape, float(image[1, 2, 3]), read_back.spacing
        (dtype('float32'), (2, 3, 4), 23.0, (8.0, 1.25, 1.25))
        >>> tmp.cleanup()
    """
    image = _read_sitk(path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"{path}: expected one value per voxel, found {image.GetNumberOfComponentsPerPixel()}")
    try:
        geometry = geometry_of(image)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    _checked_geometry(path, geometry)
    array = sitk.GetArrayFromImage(image)
    if check_content or file_ending(path) not in (".nii", ".nii.gz"):  # only NIfTI is checked without the array
        check_image_content(path, array)
    problem = spacing_problem(geometry.spacing, allow_unusual=True)
    if problem:
        raise InvalidInputError(f"{path}: {problem}")
    return array.astype(np.float32, copy=False), geometry


def read_label(path: str | Path) -> tuple[np.ndarray, CaseGeometry]:
    """Read a 3D label map.

    Returns:
        (array uint8 of shape (z, y, x), geometry). Raises ``ValueError`` naming the file if a
        value is NaN, Inf, negative, non-integer or above 255 (``InvalidInputError``), or the direction
        matrix is not orthonormal (``direction_problem``).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> geometry = CaseGeometry((1, 2, 3), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> write_image(Path(tmp.name) / "c.nii.gz", np.array([[[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]]]), geometry)
        >>> labels, _ = read_label(Path(tmp.name) / "c.nii.gz")
        >>> labels.dtype, labels.tolist()
        (dtype('uint8'), [[[0, 1, 2], [2, 1, 0]]])
        >>> tmp.cleanup()
    """
    image = _read_sitk(path)
    try:
        geometry = geometry_of(image)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    _checked_geometry(path, geometry)
    content = read_nifti_content(path)  # a truncated label map would read as background
    array = sitk.GetArrayFromImage(image)
    # ITK reads a NIfTI NaN as 0 (background): the stored values are checked, not ITK's
    stored = content.values if content is not None and content.values is not None else array
    if stored.dtype.kind == "f":
        finite = np.isfinite(stored)
        if not finite.all():
            nan = int(np.isnan(stored).sum())
            raise InvalidInputError(f"{path}: label map holds {nan} NaN and {stored.size - int(finite.sum()) - nan} "
                                    f"Inf voxel(s) of {stored.size}; a label map holds whole numbers 0..255 "
                                    "(fix or re-export the label file)")
    if array.dtype.kind == "f" and not np.all(np.equal(np.mod(array, 1), 0)):
        raise InvalidInputError(f"{path}: label map holds non-integer values; expected whole numbers 0..255")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"{path}: label values must lie in 0..255, found {array.min()}..{array.max()}")
    return array.astype(np.uint8), geometry


def to_sitk(array: np.ndarray, geometry: CaseGeometry) -> sitk.Image:
    """Build a SimpleITK image from a (z, y, x) array and its geometry.

    Example:
        >>> geometry = CaseGeometry((2, 3, 4), (8.0, 1.25, 1.5), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> image = to_sitk(np.zeros((2, 3, 4), np.float32), geometry)
        >>> image.GetSize(), image.GetSpacing()  # ITK's (x, y, z) order
        ((4, 3, 2), (1.5, 1.25, 8.0))
    """
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

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> geometry = CaseGeometry((2, 3, 4), (8.0, 1.25, 1.25), (10.0, -5.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> write_image(Path(tmp.name) / "c_0000.nii.gz", np.ones((2, 3, 4), np.float32), geometry)
        >>> image, read_back = read_image(Path(tmp.name) / "c_0000.nii.gz")
        >>> float(image.sum()), read_back.origin
        (24.0, (10.0, -5.0, 0.0))
        >>> tmp.cleanup()
    """
    path = Path(path)
    ending = file_ending(path)
    if not ending:
        raise ValueError(f"{path}: unsupported file ending; expected one of {', '.join(SUPPORTED_ENDINGS)}")
    image = to_sitk(np.ascontiguousarray(array), geometry)
    with atomic_output(path, suffix=ending) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=compress)
        except RuntimeError as err:  # ITK says "could not write" / "Write failed" for a full disk
            detail = str(err).strip().splitlines()[-1] if str(err).strip() else "no detail"
            raise OSError(errno.EIO, f"cannot be written ({detail[:160]}); is the disk full or the folder "
                                     "read-only?", str(path)) from err


def write_label(path: str | Path, array: np.ndarray, geometry: CaseGeometry) -> None:
    """Write a (z, y, x) label map as uint8 (see ``write_image``).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> geometry = CaseGeometry((1, 1, 3), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> write_label(Path(tmp.name) / "c.nii.gz", np.array([[[0, 1, 2]]], np.int64), geometry)
        >>> read_label(Path(tmp.name) / "c.nii.gz")[0].tolist()
        [[[0, 1, 2]]]
        >>> tmp.cleanup()
    """
    write_image(path, np.asarray(array).astype(np.uint8), geometry)


def geometry_mismatch(a: CaseGeometry, b: CaseGeometry, tolerance: float = 1e-4) -> list[str]:
    """Describe how two geometries differ, one string per field, empty when they match.

    Spacing/origin compare with a relative tolerance of ``tolerance`` (and the same absolute
    tolerance in mm), direction cosines with an absolute tolerance of ``tolerance``.

    Example:
        >>> a = CaseGeometry((3, 8, 8), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> b = CaseGeometry((3, 8, 8), (8.0, 1.5, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> geometry_mismatch(a, a), geometry_mismatch(a, b)
        ([], ['spacing (8.0, 1.25, 1.25) vs (8.0, 1.5, 1.25)'])
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


# --- damaged and out-of-range content: what ITK reads silently --------------------------------------------------

#: Plausible voxel spacing of a cardiac MR volume, mm: in-plane (y, x) and through-plane (z). Spacing
#: outside these is refused by ``lgeseg_validate``, ``lgeseg_plan_and_preprocess`` and ``lgeseg_predict``
#: unless ``--allow-unusual-spacing`` is given (``spacing_problem``); zero or negative spacing never passes.
IN_PLANE_SPACING_MM: tuple[float, float] = (0.1, 20.0)
THROUGH_PLANE_SPACING_MM: tuple[float, float] = (0.5, 30.0)
#: NIfTI datatype code -> NumPy type (without byte order).
_NIFTI_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4", 1024: "i8",
                 1280: "u8"}
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclasses.dataclass(frozen=True)
class NiftiContent:
    """What a NIfTI file holds according to its own bytes (ITK hides some of it).

    Attributes:
        pixdim: header spacing of the first three axes, mm (x, y, z), as written (ITK turns 0 into 1).
        values: the voxel values as stored (x fastest), or None for a datatype lgeseg does not inspect.
    """

    pixdim: tuple[float, ...]
    values: np.ndarray | None


def _nifti_bytes(path: Path) -> bytes:
    """The decompressed bytes of a ``.nii``/``.nii.gz`` file; ``CorruptFileError`` for a broken gzip stream."""
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except EOFError as err:
        raise CorruptFileError(f"{path}: file is truncated (the compressed stream ends early: {err})") from err
    except (gzip.BadGzipFile, zlib.error) as err:
        raise CorruptFileError(f"{path}: file is corrupt (not a valid gzip stream: {err})") from err
    except OSError as err:
        if isinstance(err, (FileNotFoundError, PermissionError)):
            raise
        raise CorruptFileError(f"{path}: file is corrupt ({err})") from err


def read_nifti_content(path: str | Path) -> NiftiContent | None:
    """Check a NIfTI-1/2 file's bytes and return its header spacing and stored voxel values.

    Returns None for files that are not NIfTI (other endings). Raises ``CorruptFileError`` naming
    the file when the gzip stream is incomplete or broken, or when the payload is shorter than the
    header's dimensions and datatype require (ITK would fill the missing part with zeros).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> geometry = CaseGeometry((1, 2, 2), (8.0, 1.25, 1.5), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> write_image(Path(tmp.name) / "c_0000.nii.gz", np.full((1, 2, 2), 7, np.float32), geometry)
        >>> content = read_nifti_content(Path(tmp.name) / "c_0000.nii.gz")
        >>> content.pixdim, content.values.tolist()
        ((1.5, 1.25, 8.0), [7.0, 7.0, 7.0, 7.0])
        >>> read_nifti_content(Path(tmp.name) / "c_0000.mha") is None  # not NIfTI
        True
        >>> tmp.cleanup()
    """
    path = Path(path)
    if file_ending(path) not in (".nii", ".nii.gz"):
        return None
    data = _nifti_bytes(path)
    layout = _nifti_layout(data)
    if layout is None:
        raise CorruptFileError(f"{path}: not a NIfTI file (no valid header; {len(data)} bytes)")
    order, dims, datatype, bitpix, pixdim, offset = layout
    if not 1 <= dims[0] <= 7 or any(d < 1 for d in dims[1:1 + dims[0]]):
        raise CorruptFileError(f"{path}: invalid dimensions in the header: {dims[1:1 + max(0, min(dims[0], 7))]}")
    count = int(np.prod(dims[1:1 + dims[0]], dtype=np.int64))
    needed = offset + count * max(bitpix, 1) // 8
    if len(data) < needed:
        raise CorruptFileError(f"{path}: file is truncated: the voxel data is {max(0, len(data) - offset)} bytes, the "
                               f"header ({'x'.join(map(str, dims[1:1 + dims[0]]))} voxels, {bitpix} bits) needs "
                               f"{needed - offset}")
    kind = _NIFTI_DTYPES.get(datatype)
    values = np.frombuffer(data, dtype=f"{order}{kind}", count=count, offset=offset) if kind else None
    return NiftiContent(pixdim=tuple(pixdim), values=values)


def _nifti_layout(data: bytes) -> tuple[str, tuple[int, ...], int, int, tuple[float, ...], int] | None:
    """(byte order, dim[0..7], datatype, bitpix, pixdim[1..3], vox_offset) of a NIfTI-1 or -2 header."""
    for order in "<>":
        if len(data) >= 348 and struct.unpack(f"{order}i", data[:4])[0] == 348:
            dims = struct.unpack(f"{order}8h", data[40:56])
            datatype, bitpix = struct.unpack(f"{order}2h", data[70:74])
            pixdim = struct.unpack(f"{order}3f", data[80:92])
            offset = int(struct.unpack(f"{order}f", data[108:112])[0])
            return order, dims, datatype, bitpix, pixdim, max(offset, 348)
        if len(data) >= 540 and struct.unpack(f"{order}i", data[:4])[0] == 540:
            datatype, bitpix = struct.unpack(f"{order}2h", data[12:16])
            dims = struct.unpack(f"{order}8q", data[16:80])
            pixdim = struct.unpack(f"{order}3d", data[112:136])
            offset = int(struct.unpack(f"{order}q", data[168:176])[0])
            return order, dims, datatype, bitpix, pixdim, max(offset, 540)
    return None


def value_problem(values: np.ndarray) -> str | None:
    """Why stored voxel ``values`` cannot be used as a float32 image, or None: NaN/Inf, or beyond float32.

    Example:
        >>> value_problem(np.array([0.0, 1.5])) is None
        True
        >>> value_problem(np.array([0.0, np.nan, np.inf]))
        'image holds 1 NaN and 1 Inf voxel(s) of 3'
    """
    if values.dtype.kind != "f" or values.size == 0:
        return None
    finite = np.isfinite(values)
    if not finite.all():
        nan = int(np.isnan(values).sum())
        return f"image holds {nan} NaN and {values.size - int(finite.sum()) - nan} Inf voxel(s) of {values.size}"
    largest = float(np.abs(values).max())
    if largest > _FLOAT32_MAX:
        return f"values up to {largest:.3g} do not fit float32 (largest {_FLOAT32_MAX:.3g})"
    return None


def spacing_problem(spacing: tuple[float, ...], allow_unusual: bool = False) -> str | None:
    """Why a (z, y, x) spacing in mm cannot be right, or None.

    Zero, negative or non-finite spacing is always a problem; spacing outside ``IN_PLANE_SPACING_MM``
    (y, x) or ``THROUGH_PLANE_SPACING_MM`` (z) is one unless ``allow_unusual``.

    Example:
        >>> spacing_problem((8.0, 1.25, 1.25)) is None
        True
        >>> spacing_problem((8.0, 0.0, 1.25))
        'voxel spacing (z, y, x) 8, 0, 1.25 mm: every spacing must be a finite number > 0'
        >>> spacing_problem((8.0, 12.0, 12.0), allow_unusual=True) is None
        True
    """
    text = "(z, y, x) " + ", ".join(f"{s:g}" for s in spacing) + " mm"
    if not all(np.isfinite(s) and s > 0 for s in spacing):
        return f"voxel spacing {text}: every spacing must be a finite number > 0"
    (z_low, z_high), (p_low, p_high) = THROUGH_PLANE_SPACING_MM, IN_PLANE_SPACING_MM
    if not allow_unusual and not (z_low <= spacing[0] <= z_high and all(p_low <= s <= p_high for s in spacing[1:])):
        return (f"voxel spacing {text} is implausible for cardiac MR (expected {p_low:g}-{p_high:g} mm in-plane, "
                f"{z_low:g}-{z_high:g} mm through-plane); check the header, or pass --allow-unusual-spacing")
    return None


def _check_header_spacing(path: Path) -> None:
    """``InvalidInputError`` when a NIfTI header's spacing is zero, negative or not finite (ITK hides it)."""
    if file_ending(path) not in (".nii", ".nii.gz"):
        return
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            layout = _nifti_layout(handle.read(544))
    except (OSError, EOFError, zlib.error):
        return  # the full read names the damage
    if layout is not None and not all(np.isfinite(s) and s > 0 for s in layout[4]):
        spacing = ", ".join(f"{s:g}" for s in layout[4])
        raise InvalidInputError(f"{path}: voxel spacing in the header (pixdim, x, y, z) is {spacing} mm; "
                                "every spacing must be a finite number > 0")


def check_image_content(path: str | Path, array: np.ndarray | None = None) -> None:
    """Raise ``CorruptFileError``/``InvalidInputError`` naming ``path`` for content ITK reads silently.

    NIfTI files are checked from their bytes (complete gzip stream and payload, header spacing > 0,
    finite values within float32); other formats through ``array``, the values as ITK read them.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> geometry = CaseGeometry((1, 1, 2), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> write_image(Path(tmp.name) / "c_0000.nii.gz", np.array([[[1.0, np.nan]]], np.float32), geometry)
        >>> check_image_content(Path(tmp.name) / "c_0000.nii.gz")
        Traceback (most recent call last):
        ...
        lgeseg.core.errors.InvalidInputError: .../c_0000.nii.gz: image holds 1 NaN and 0 Inf voxel(s) of 2
        >>> tmp.cleanup()
    """
    path = Path(path)
    content = read_nifti_content(path)
    if content is not None:
        if not all(np.isfinite(s) and s > 0 for s in content.pixdim):
            spacing = ", ".join(f"{s:g}" for s in content.pixdim)
            raise InvalidInputError(f"{path}: voxel spacing in the header (pixdim, x, y, z) is {spacing} mm; "
                                    "every spacing must be a finite number > 0")
        array = content.values
    problem = value_problem(array) if array is not None else None
    if problem:
        raise InvalidInputError(f"{path}: {problem}")
