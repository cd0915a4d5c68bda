"""``lgeseg.segment``: one call from an image in memory to its label map, for notebooks and scripts.

    import SimpleITK as sitk
    import lgeseg
    labels = lgeseg.segment(sitk.ReadImage("lge.nii.gz"), model="lge-lv")   # SimpleITK in, SimpleITK out

A NumPy array needs its spacing: ``lgeseg.segment(array, spacing=(10.0, 1.4, 1.4))`` returns a uint8
array of the same shape ((z, y, x) voxels; spacing in mm in the same order). The label map is on the
input's exact grid (0 background, 1 LV blood pool, 2 LV myocardium) after the model's postprocessing.
Models are loaded once per (model, device, checkpoint) and kept for the next call; each call predicts
with a ``Predictor`` over them (``Predictor.predict_case``), so a constant (blank) image gets an empty
label map, as in ``lgeseg_predict``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from lgeseg.core.device import resolve_device
from lgeseg.core.records import CaseGeometry
from lgeseg.files import io
from lgeseg.inference.ensemble import fold_model_folders, load_models
from lgeseg.inference.predictor import PredictionSettings, Predictor
from lgeseg.model.folder import LoadedModel

#: The model ``segment`` uses when none is named.
DEFAULT_MODEL = "lge-lv"
_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@functools.lru_cache(maxsize=4)
def _cached_models(model: str, device: str, checkpoint: str) -> tuple[LoadedModel, ...]:
    return tuple(load_models(fold_model_folders([model], None), torch.device(device), checkpoint))


def _as_volume(image: Any, spacing: Sequence[float] | None) -> tuple[np.ndarray, CaseGeometry]:
    """(float32 (C, Z, Y, X), geometry) of a SimpleITK image or a NumPy (z, y, x) / (C, z, y, x) array."""
    if isinstance(image, sitk.Image):
        if spacing is not None:
            raise ValueError("spacing is given by the SimpleITK image itself; pass spacing only with a NumPy array")
        geometry = io.geometry_of(image)
        array = sitk.GetArrayFromImage(image)
        return np.asarray(array, dtype=np.float32)[None], geometry
    array = np.asarray(image)
    if array.ndim not in (3, 4) or not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise ValueError(f"image must be a SimpleITK image or a real-valued NumPy array (z, y, x) or (C, z, y, x), "
                         f"found {type(image).__name__} of shape {getattr(array, 'shape', None)} and dtype "
                         f"{getattr(array, 'dtype', None)}")
    if spacing is None or len(spacing) != 3 or not all(float(s) > 0 for s in spacing):
        raise ValueError(f"a NumPy image needs spacing=(z, y, x) in mm, three numbers > 0; found {spacing!r}")
    volume = array[None] if array.ndim == 3 else array
    geometry = CaseGeometry(tuple(int(s) for s in volume.shape[1:]), tuple(float(s) for s in spacing),
                            (0.0, 0.0, 0.0), _IDENTITY)
    return volume.astype(np.float32), geometry


def segment(image: Any, model: str = DEFAULT_MODEL, spacing: Sequence[float] | None = None,
            device: str | None = None, mirroring: bool = True, postprocess: str | None = None,
            checkpoint: str = "final") -> Any:
    """Segment one image in memory with a model given by name or folder.

    Args:
        image: a 3D ``SimpleITK.Image``, or a NumPy array (z, y, x) (or (C, z, y, x) for several channels).
        model: a shipped or installed model name (``"lge-lv"``, ``"lge-lv-cine"``), a model folder or an
            ensemble folder (``lgeseg.model.registry``).
        spacing: voxel size in mm, (z, y, x); required for a NumPy array, refused for a SimpleITK image.
        device: ``"cpu"``, ``"cuda"``, ... (None: CUDA when available).
        mirroring: in-plane flip test-time augmentation (4 passes; slower, slightly better).
        postprocess: ``"lcc"``, ``"lcc_per_label"`` or ``"none"``; None: the model's choice.
        checkpoint: ``"final"``, ``"best"`` or ``"latest"``.

    Returns:
        The label map on the input's grid: a uint8 ``SimpleITK.Image`` with the input's geometry for a
        SimpleITK input, a uint8 NumPy array (z, y, x) for a NumPy input.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from lgeseg.model.folder import write_untrained_model
        >>> folder = write_untrained_model(Path(tempfile.mkdtemp()) / "model")  # a real model: "lge-lv"
        >>> image = np.random.default_rng(0).random((3, 40, 48), dtype=np.float32)
        >>> labels = segment(image, model=str(folder), spacing=(8.0, 1.25, 1.25), device="cpu", mirroring=False)
        >>> labels.shape, labels.dtype
        ((3, 40, 48), dtype('uint8'))
        >>> itk_labels = segment(sitk.GetImageFromArray(image), model=str(folder), device="cpu", mirroring=False)
        >>> itk_labels.GetSize(), itk_labels.GetPixelIDTypeAsString()
        ((48, 40, 3), '8-bit unsigned integer')
    """
    volume, geometry = _as_volume(image, spacing)
    models = _cached_models(str(model), str(resolve_device(device)), checkpoint)
    if volume.shape[0] != len(models[0].info.channel_names):
        raise ValueError(f"the model {model} takes {len(models[0].info.channel_names)} channel(s) "
                         f"({', '.join(models[0].info.channel_names.values())}), the image has {volume.shape[0]}")
    settings = PredictionSettings(checkpoint=checkpoint, mirroring=mirroring, postprocess=postprocess)
    labels = Predictor(models, settings).predict_case(volume, geometry).labels
    if isinstance(image, sitk.Image):
        result = sitk.GetImageFromArray(labels)
        result.CopyInformation(image)
        return result
    return labels
