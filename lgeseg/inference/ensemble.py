"""The models of one prediction and one volume's probabilities averaged over them.

``fold_model_folders`` expands ``-m`` names and folders to member model folders, ``load_models`` loads them
(checking they preprocess alike, so they can be ensembled), and ``predict_volume`` preprocesses one raw
volume with their shared plan (the same code path as training), predicts it slice by slice
(``sliding_window.predict_slices``) with each model, averages the probabilities and puts them back on
the raw grid (``preprocessing.revert_to_original``). ``predictor.Predictor`` builds on these.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lgeseg.core.device import resolve_device
from lgeseg.core.records import CaseGeometry, PreprocessedCase
from lgeseg.inference.adaptation import AdaptationSettings, adapted
from lgeseg.inference.nnunet_model import load_nnunet_model, nnunet_fold_folders, nnunet_training_folder
from lgeseg.inference.prediction_settings import WINDOWS
from lgeseg.inference.quality import MirrorAgreement
from lgeseg.inference.sliding_window import predict_slices, prepare_for_inference
from lgeseg.model.folder import LoadedModel, load_model
from lgeseg.model.registry import resolve_model, resolve_model_folders

#: Largest whole slice (pixels) predicted in one pass; bigger slices use sliding-window tiles.
MAX_WHOLE_SLICE = 512 * 512


def inference_device(device: str | torch.device | None) -> torch.device:
    """``device.resolve_device`` for ``--device``, with an unknown name refused as a ``ValueError`` naming it.

    Example:
        >>> inference_device("cpu")
        device(type='cpu')
        >>> inference_device("quantum")
        Traceback (most recent call last):
        ValueError: --device 'quantum': not a torch device; expected cpu, cuda, cuda:N (a GPU's index) or mps
    """
    try:
        return resolve_device(device)
    except RuntimeError as err:  # torch.device("quantum") says "Expected one of cpu, cuda, ..., found quantum"
        raise ValueError(f"--device {str(device)!r}: not a torch device; expected cpu, cuda, cuda:N (a GPU's index) "
                         "or mps") from err


def _preprocessing_key(model: LoadedModel) -> tuple:
    plan = model.plan
    return (tuple(plan.target_spacing), plan.normalization.to_dict(), plan.image_interpolation_order,
            tuple(sorted(plan.labels.items())), tuple(sorted(model.info.channel_names.items())))


def load_models(model_dirs: Sequence[str | Path], device: torch.device, checkpoint: str = "final") -> list[LoadedModel]:
    """Load every model folder for inference and check they can be ensembled.

    A folder of an nnU-Net training (``fold_<k>`` of ``<trainer>__<plans>__2d``) is loaded with
    ``nnunet_model.load_nnunet_model``. Returns the models (networks in eval mode on ``device``, see
    ``prepare_for_inference``). Raises
    ``FileNotFoundError``/``ValueError`` naming the folder for a missing or incomplete model folder,
    and ``ValueError`` when two models preprocess differently (target spacing, normalization,
    interpolation, labels or channels) and so cannot share one prediction.

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = tempfile.TemporaryDirectory()  # an untrained model folder; a trained one loads the same way
        >>> models = load_models([write_untrained_model(tmp.name)], torch.device("cpu"))
        >>> len(models), models[0].network.training  # several folders (-m A B): an ensemble
        (1, False)
        >>> tmp.cleanup()
    """
    if not model_dirs:
        raise ValueError("no model folder given (use -m MODEL_DIR)")
    models = []
    for model_dir in model_dirs:
        if nnunet_training_folder(model_dir) is not None:
            model = load_nnunet_model(model_dir, device=device, checkpoint=checkpoint)
        else:
            model = load_model(model_dir, device=device, checkpoint=checkpoint)
        prepare_for_inference(model.network, device)
        if models and _preprocessing_key(model) != _preprocessing_key(models[0]):
            raise ValueError(f"{model_dir}: cannot be ensembled with {models[0].model_dir}: their plans preprocess "
                             "differently (target spacing, normalization, interpolation, labels or channels)")
        models.append(model)
    return models


def fold_model_folders(model_dirs: Sequence[str | Path], folds: Sequence[str] | None) -> list[Path]:
    """The model folders to ensemble: ``-m`` names and folders resolved, folds picked (nnU-Net's ``-f 0 1 2``).

    Args:
        model_dirs: what ``-m`` gave: model folders, ensemble folders (``fold_<k>`` members), the
            names of installed or shipped models (``lge-lv``; ``lgeseg.model.registry``) or nnU-Net
            training folders (``nnunet_model.nnunet_fold_folders``).
        folds: fold names (``"0"``, ``"1"``, ..., ``"all"``) or None (every member of each).

    Returns:
        Without folds, every member model folder of each spec; with folds, ``MODEL/fold_<k>`` for each
        spec and fold. Raises ``FileNotFoundError`` naming the missing folder, fold or name.

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = tempfile.TemporaryDirectory()
        >>> for fold in (0, 1):
        ...     _ = write_untrained_model(Path(tmp.name) / f"fold_{fold}", seed=fold)
        >>> chosen, every = fold_model_folders([tmp.name], ["1"]), fold_model_folders([tmp.name], None)
        >>> [p.name for p in chosen], [p.name for p in every]
        (['fold_1'], ['fold_0', 'fold_1'])
        >>> fold_model_folders([tmp.name], ["2"])
        Traceback (most recent call last):
        FileNotFoundError: .../fold_2: fold 2 not found in ... (-f names the fold_<k> subfolders of each -m folder; ...
        >>> tmp.cleanup()
    """
    found: list[Path] = []
    for spec in model_dirs:
        if nnunet_training_folder(spec) is not None:
            found += nnunet_fold_folders(spec, folds)
            continue
        if not folds:
            found += resolve_model_folders([spec])
            continue
        model_dir = resolve_model(spec).path
        for fold in folds:
            folder = Path(model_dir) / f"fold_{fold}"
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder}: fold {fold} not found in {model_dir} (-f names the fold_<k> "
                                        "subfolders of each -m folder; without -f, -m is the model folder itself)")
            found.append(folder)
    return found


def _record(case_id: str, geometry: CaseGeometry, crop_box: Sequence[Sequence[int]],
            shape_after_crop: Sequence[int], shape_after: Sequence[int]) -> PreprocessedCase:
    spacing_after = tuple(float(s) * c / a for s, c, a in zip(geometry.spacing, shape_after_crop, shape_after,
                                                                 strict=True))
    return PreprocessedCase(
        case_id=case_id, dataset="", center=None, original=geometry,
        crop_box=tuple((int(a), int(b)) for a, b in crop_box), shape_after_crop=tuple(int(v) for v in shape_after_crop),
        spacing_after_resampling=spacing_after, shape_after_resampling=tuple(int(v) for v in shape_after),
    )


def inference_window(model: LoadedModel, slice_shape: Sequence[int], window: str) -> tuple[int, int]:
    """The (py, px) input size of one forward pass for slices of ``slice_shape`` (y, x) voxels.

    ``window="slice"`` (and the localizing pass of ``"roi"``): the whole slice, zero-padded up to the
    network's divisor, so each slice takes one forward pass; slices over ``MAX_WHOLE_SLICE`` pixels
    fall back to tiles. ``window="sliding"``: nnU-Net's Gaussian-weighted tiles of the plan's patch size.

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = tempfile.TemporaryDirectory()  # an untrained 3-stage model: slices padded to a multiple of 4
        >>> models = load_models([write_untrained_model(tmp.name, features=(4, 8, 8))], torch.device("cpu"))
        >>> inference_window(models[0], (50, 70), "slice"), inference_window(models[0], (50, 70), "sliding")
        ((52, 72), (32, 32))
        >>> tmp.cleanup()
    """
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}, found {window!r}")
    patch = tuple(int(v) for v in model.plan.patch_size)
    divisor = getattr(model.network, "divisor", (1, 1))
    whole = tuple(max(p, -(-int(n) // d) * d) for n, d, p in zip(slice_shape, divisor, patch, strict=True))
    if window == "sliding" or whole[0] * whole[1] > MAX_WHOLE_SLICE:
        return patch  # type: ignore[return-value]
    return whole  # type: ignore[return-value]


def predict_volume(image: np.ndarray, geometry: CaseGeometry, models: Sequence[LoadedModel], mirroring: bool = True,
                   step: float = 0.5, batch_size: int | None = None, case_id: str = "case",
                   window: str = "roi", agreement: MirrorAgreement | None = None,
                   adaptation: AdaptationSettings | None = None) -> np.ndarray:
    """Class probabilities of one raw volume, averaged over ``models``.

    Args:
        image: float32 (C, Z, Y, X) raw intensities on the grid described by ``geometry``.
        geometry: the image's geometry (shape (Z, Y, X), spacing mm (z, y, x)).
        models: loaded models with one shared preprocessing (see ``load_models``).
        mirroring: in-plane flip test-time augmentation.
        step: sliding-window stride as a fraction of the patch.
        batch_size: tiles per forward pass (None: a device default).
        case_id: used in log messages and the preprocessing record.
        window: ``"roi"`` (default: localize with whole slices, refine a training-patch-sized box
            around the ventricle), ``"sliding"`` (nnU-Net: training-patch tiles everywhere) or
            ``"slice"`` (whole slices only); see ``sliding_window.predict_slices``.
        agreement: with ``mirroring``, collects how the flipped passes of every model agree with
            their average (``quality.MirrorAgreement``, on the preprocessed grid).
        adaptation: test-time adaptation of each model to this case before it predicts it (TENT's
            entropy minimization on the whole slices, ``adaptation.adapted``; the trained weights are
            restored afterwards); None or method ``"none"``: the trained weights as they are.

    Returns:
        float32 (K, Z, Y, X) probabilities on the raw grid (background 1 outside the crop box).

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = tempfile.TemporaryDirectory()  # an untrained model folder; a trained one loads the same way
        >>> models = load_models([write_untrained_model(tmp.name)], torch.device("cpu"))
        >>> geometry = CaseGeometry((4, 40, 40), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> image = np.random.default_rng(0).random((1, 4, 40, 40), dtype=np.float32)
        >>> probabilities = predict_volume(image, geometry, models, mirroring=False)
        >>> probabilities.shape, bool(np.allclose(probabilities.sum(axis=0), 1.0, atol=1e-4))  # (K, z, y, x), raw grid
        ((3, 4, 40, 40), True)
        >>> tmp.cleanup()
    """
    # deferred: lgeseg_predict starts without the preprocessing and planning modules
    from lgeseg.preprocessing import preprocess_arrays, revert_to_original

    plan = models[0].plan
    image_pp, _, crop_box, shape_after_crop = preprocess_arrays(image, geometry, plan)
    tensor = torch.from_numpy(np.ascontiguousarray(image_pp, dtype=np.float32))
    total: np.ndarray | None = None
    for model in models:
        size = inference_window(model, image_pp.shape[2:], window)
        roi_patch = model.plan.patch_size if window == "roi" else None
        whole_slices = inference_window(model, image_pp.shape[2:], "slice")
        with adapted(model.network, tensor, whole_slices, adaptation or AdaptationSettings(), batch_size, case_id):
            probabilities = predict_slices(model.network, tensor, size, step=step, mirroring=mirroring,
                                           batch_size=batch_size, roi_patch=roi_patch, agreement=agreement)
        total = probabilities if total is None else total + probabilities
    assert total is not None  # models is never empty (load_models)
    if len(models) > 1:
        total /= len(models)
    record = _record(case_id, geometry, crop_box, shape_after_crop, image_pp.shape[1:])
    return np.asarray(revert_to_original(total, record), dtype=np.float32)


def label_values(models: Sequence[LoadedModel]) -> np.ndarray:
    """Class index -> label value: uint8 (K,), the plan's label values in increasing order (a model's classes).

    ``label_values(models)[np.argmax(probabilities, axis=0)]`` is the label map of ``predict_volume``'s output.

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = tempfile.TemporaryDirectory()
        >>> models = load_models([write_untrained_model(tmp.name)], torch.device("cpu"))
        >>> label_values(models).tolist()  # background, blood pool, myocardium
        [0, 1, 2]
        >>> tmp.cleanup()
    """
    return np.array(sorted(models[0].plan.labels.values()), dtype=np.uint8)

