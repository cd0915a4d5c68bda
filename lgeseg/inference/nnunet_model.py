"""Predict with a model nnU-Net v2 trained: its results folder used as it is, no conversion.

An nnU-Net training writes ``$nnUNet_results/DatasetNNN_Name/<trainer>__<plans>__<configuration>/``
with ``plans.json`` and ``dataset.json`` and one ``fold_<k>/checkpoint_final.pth`` per fold (a dict
whose ``network_weights`` is the network's state dict). For the ``2d`` configuration of a
``PlainConvUNet`` that is lgeseg's ``UNet2D`` with other parameter names: the plans become an
lgeseg ``Plan`` (``planning.nnunet.plan_from_nnunet``) and the weights are renamed onto it
(``map_nnunet_weights``); every other network is refused with one line naming what differs.

The checkpoint is read with ``torch.load(weights_only=True)``, allowing only NumPy's scalars and
arrays besides tensors (nnU-Net's training log holds NumPy numbers): a file that would run code on
load is refused. nnU-Net's own preprocessing is followed in its parameters (spacing, normalization,
resampling orders), not in every step (lgeseg crops, normalizes and windows its own way), so
predictions are close to, not equal to, ``nnUNetv2_predict``'s (docs/nnunet.md).

Usage (a trained nnU-Net folder)::

    from lgeseg.inference import predict_folder

    predict_folder("imagesTs", "pred", ["nnUNet_results/Dataset004_LGE/nnUNetTrainer__nnUNetPlans__2d"])
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lgeseg import __version__
from lgeseg.core.errors import CorruptFileError, InvalidInputError
from lgeseg.core.records import NetworkTopology, load_json
from lgeseg.model.folder import LoadedModel, ModelInfo
from lgeseg.planning.nnunet import CONFIGURATION, is_nnunet_plans, plan_from_nnunet

logger = logging.getLogger(__name__)

#: Parameter names nnU-Net's state dict holds twice (modules registered under two paths); not loaded.
_DUPLICATES = ("decoder.encoder.", ".all_modules.")


def nnunet_training_folder(path: str | Path) -> Path | None:
    """The nnU-Net training folder of ``path`` (itself, or its parent for ``fold_<k>``), or None.

    A training folder holds ``dataset.json`` and a ``plans.json`` with nnU-Net's ``configurations``.

    Example:
        >>> import json, tempfile
        >>> tmp = Path(tempfile.mkdtemp()) / "nnUNetTrainer__nnUNetPlans__2d"
        >>> (tmp / "fold_0").mkdir(parents=True)
        >>> _ = (tmp / "plans.json").write_text(json.dumps({"configurations": {"2d": {}}}))
        >>> _ = (tmp / "dataset.json").write_text(json.dumps({"labels": {"background": 0}}))
        >>> nnunet_training_folder(tmp / "fold_0") == tmp, nnunet_training_folder(tmp.parent)
        (True, None)
        >>> import shutil; shutil.rmtree(tmp.parent)
    """
    path = Path(path)
    for folder in (path, path.parent) if path.name.startswith("fold_") else (path,):
        plans = folder / "plans.json"
        if plans.is_file() and (folder / "dataset.json").is_file():
            try:
                if is_nnunet_plans(load_json(plans)):
                    return folder
            except ValueError:
                return None
    return None


def nnunet_fold_folders(path: str | Path, folds: Sequence[str] | None = None) -> list[Path]:
    """The ``fold_<k>`` folders of an nnU-Net training folder to ensemble (``path`` itself for one fold).

    Args:
        path: a training folder or one of its ``fold_<k>`` folders.
        folds: fold names (``"0"``, ``"all"``); None: every fold holding a ``checkpoint_*.pth``.

    Returns:
        The folders. Raises ``FileNotFoundError`` naming what is missing.

    Usage (an nnU-Net results folder)::

        nnunet_fold_folders("nnUNet_results/Dataset004_LGE/nnUNetTrainer__nnUNetPlans__2d", ["0", "1"])
    """
    path = Path(path)
    training = nnunet_training_folder(path)
    if training is None:
        raise FileNotFoundError(f"{path}: not an nnU-Net training folder (plans.json with 'configurations' and "
                                "dataset.json)")
    if training != path:
        return [path]
    if folds:
        found = [training / f"fold_{fold}" for fold in folds]
        missing = [p for p in found if not p.is_dir()]
        if missing:
            raise FileNotFoundError(f"{missing[0]}: fold not found in {training} (found: "
                                    f"{', '.join(p.name for p in _folds(training)) or 'no fold'})")
        return found
    found = _folds(training)
    if not found:
        raise FileNotFoundError(f"{training}: no fold_<k> folder with a checkpoint_*.pth (nothing trained?)")
    return found


def _folds(training: Path) -> list[Path]:
    return sorted((p for p in training.glob("fold_*") if p.is_dir() and any(p.glob("checkpoint_*.pth"))),
                  key=lambda p: (len(p.name), p.name))


def _safe_numpy_globals() -> list[Any]:
    """NumPy scalars, dtypes and arrays: the non-tensor data an nnU-Net checkpoint's log holds."""
    core = getattr(np, "_core", None) or np.core
    dtypes = getattr(np, "dtypes", None)
    classes = [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")] if dtypes else []
    return [core.multiarray.scalar, core.multiarray._reconstruct, np.ndarray, np.dtype, *classes]


def load_nnunet_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load an nnU-Net ``checkpoint_*.pth`` without unpickling code; returns the dict (``network_weights`` ...).

    Raises ``FileNotFoundError``, ``CorruptFileError`` (not a complete torch archive) or ``ValueError``
    (refused: other objects than tensors, NumPy data and plain values; or no ``network_weights``),
    each naming the file.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = Path(tmp.name) / "checkpoint_final.pth"
        >>> torch.save({"network_weights": {"w": torch.ones(1)}, "logging": {"ema_fg_dice": [np.float64(0.9)]},
        ...             "init_args": {"device": torch.device("cpu")}}, path)
        >>> sorted(load_nnunet_checkpoint(path))
        ['init_args', 'logging', 'network_weights']
        >>> tmp.cleanup()
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    if not zipfile.is_zipfile(path):
        raise CorruptFileError(f"{path}: checkpoint is corrupt or truncated (not a complete torch.save archive)")
    try:
        with torch.serialization.safe_globals(_safe_numpy_globals()):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        detail = str(err).strip().splitlines()[-1] if str(err).strip() else "no detail"
        raise ValueError(f"{path}: refused to load: the checkpoint holds objects other than tensors, NumPy data and "
                         f"plain values (it could run code on load): {detail[:200]}") from err
    if not isinstance(payload, dict) or not isinstance(payload.get("network_weights"), dict):
        raise ValueError(f"{path}: not an nnU-Net checkpoint (expected a dict with 'network_weights')")
    return payload


def nnunet_parameter_names(topology: NetworkTopology) -> dict[str, tuple[str, ...]]:
    """lgeseg ``UNet2D`` parameter name -> the ``PlainConvUNet`` names it is read from, preferred first.

    nnU-Net's ``encoder.stages.<s>.0.convs.<c>.{conv,norm}``, ``decoder.transpconvs.<j>``,
    ``decoder.stages.<j>.convs.<c>.{conv,norm}`` and ``decoder.seg_layers.<j>`` are lgeseg's
    ``encoder_blocks.<s>.<c>.{0,1}``, ``decoder_blocks.<j>.upsample``, ``decoder_blocks.<j>.convs.<c>.{0,1}``
    and ``heads.<j>``; both number the decoder stages from the deepest. The alternatives are the same
    tensors under ``all_modules`` and the encoder stages of older versions (without ``.0``).

    Example:
        >>> names = nnunet_parameter_names(NetworkTopology(1, 3, (4, 8), ((3, 3), (3, 3)), ((1, 1), (2, 2))))
        >>> names["encoder_blocks.1.0.1.weight"][0], names["decoder_blocks.0.upsample.bias"], names["heads.0.bias"]
        ('encoder.stages.1.0.convs.0.norm.weight', ('decoder.transpconvs.0.bias',), ('decoder.seg_layers.0.bias',))
    """
    names: dict[str, tuple[str, ...]] = {}

    def convs(target: str, *sources: str) -> None:
        for c in range(topology.conv_per_stage):
            for index, part in ((0, "conv"), (1, "norm")):
                for kind in ("weight", "bias"):
                    names[f"{target}.{c}.{index}.{kind}"] = tuple(
                        [f"{s}.convs.{c}.{part}.{kind}" for s in sources]
                        + [f"{s}.convs.{c}.all_modules.{index}.{kind}" for s in sources])

    for s in range(topology.num_stages):
        convs(f"encoder_blocks.{s}", f"encoder.stages.{s}.0", f"encoder.stages.{s}")
    for j in range(topology.num_stages - 1):
        for kind in ("weight", "bias"):
            names[f"decoder_blocks.{j}.upsample.{kind}"] = (f"decoder.transpconvs.{j}.{kind}",)
        convs(f"decoder_blocks.{j}.convs", f"decoder.stages.{j}")
        for kind in ("weight", "bias"):
            names[f"heads.{j}.{kind}"] = (f"decoder.seg_layers.{j}.{kind}",)
    return names


def map_nnunet_weights(weights: dict[str, torch.Tensor], topology: NetworkTopology) -> dict[str, torch.Tensor]:
    """Rename a ``PlainConvUNet`` state dict (2D) onto lgeseg's ``UNet2D`` of ``topology``.

    The names follow ``nnunet_parameter_names``. Convolutions without a bias (``conv_bias: false``)
    get a zero bias. nnU-Net's state dict holds some tensors twice (``decoder.encoder.*``,
    ``*.all_modules.*``); those copies are left out.

    Returns:
        lgeseg's state dict. Raises ``ValueError`` naming the missing and the unexpected parameters
        when the weights are not this topology's PlainConvUNet.

    Example:
        >>> from lgeseg.network import build_unet
        >>> topology = NetworkTopology(1, 3, (4, 8), ((3, 3), (3, 3)), ((1, 1), (2, 2)))
        >>> ours = build_unet(topology, seed=0).state_dict()
        >>> theirs = {sources[0]: ours[name] for name, sources in nnunet_parameter_names(topology).items()}
        >>> mapped = map_nnunet_weights(theirs, topology)
        >>> sorted(mapped) == sorted(ours) and all(torch.equal(mapped[k], ours[k]) for k in ours)
        True
        >>> map_nnunet_weights({"encoder.stem.weight": torch.ones(1)}, topology)
        Traceback (most recent call last):
        ValueError: not the network of plans.json (...): missing ...; unexpected encoder.stem.weight
    """
    used: set[str] = set()
    mapped: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    for target, sources in nnunet_parameter_names(topology).items():
        found = next((name for name in sources if name in weights), None)
        if found is not None:
            used.add(found)
            mapped[target] = weights[found]
        elif target.endswith(".0.bias") or target.endswith("upsample.bias"):  # conv_bias: false
            weight = mapped.get(target.removesuffix("bias") + "weight")
            if weight is not None:  # a transposed convolution's outputs are its weight's dimension 1
                mapped[target] = torch.zeros(weight.shape[1 if "upsample" in target else 0], dtype=weight.dtype)
            else:
                missing.append(sources[0])
        else:
            missing.append(sources[0])
    unexpected = sorted(k for k in weights if k not in used and not any(d in k or k.startswith(d) for d in _DUPLICATES))
    if missing or unexpected:
        raise ValueError(f"not the network of plans.json (a PlainConvUNet of {topology.num_stages} stages with "
                         f"{topology.conv_per_stage} convolutions each): missing {_first(missing)}; "
                         f"unexpected {_first(unexpected)}")
    return mapped


def _first(names: list[str], count: int = 4) -> str:
    if not names:
        return "nothing"
    return ", ".join(names[:count]) + (f" (+{len(names) - count} more)" if len(names) > count else "")


def _configuration(training: Path) -> str:
    """``2d`` from ``<trainer>__<plans>__2d``; the folder name's last part is nnU-Net's configuration."""
    parts = training.name.split("__")
    return parts[-1] if len(parts) == 3 else CONFIGURATION


def nnunet_checkpoint(fold_dir: Path, checkpoint: str = "final") -> Path:
    """``fold_dir/checkpoint_<checkpoint>.pth``; ``FileNotFoundError`` naming the checkpoints there when missing.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     nnunet_checkpoint(Path(folder), "best")
        Traceback (most recent call last):
        FileNotFoundError: .../checkpoint_best.pth: not found (--checkpoint best); found: no checkpoint
    """
    path = fold_dir / f"checkpoint_{checkpoint}.pth"
    if not path.is_file():
        found = ", ".join(sorted(p.name for p in fold_dir.glob("checkpoint_*.pth"))) or "no checkpoint"
        raise FileNotFoundError(f"{path}: not found (--checkpoint {checkpoint}); found: {found}")
    return path


def load_nnunet_model(fold_dir: str | Path, device: str | torch.device = "cpu",
                      checkpoint: str = "final") -> LoadedModel:
    """Load one fold of an nnU-Net 2d PlainConvUNet as an lgeseg ``LoadedModel`` (network in eval mode).

    The plan comes from the training folder's ``plans.json`` (its configuration named by the folder,
    ``<trainer>__<plans>__2d``) and ``dataset.json``; ``info`` holds the labels and channels, the
    trainer's name and postprocessing ``none`` (nnU-Net's ``postprocessing.pkl`` is not read).
    Raises ``InvalidInputError`` naming ``plans.json`` and what differs for any other network, and
    ``ValueError`` naming the checkpoint when its weights do not fit the plans.

    Usage (one fold of an nnU-Net results folder)::

        model = load_nnunet_model("nnUNet_results/Dataset004_LGE/nnUNetTrainer__nnUNetPlans__2d/fold_0")
    """
    from lgeseg.network import build_unet  # deferred: lgeseg_predict starts before any network is built

    fold_dir = Path(fold_dir)
    training = nnunet_training_folder(fold_dir)
    if training is None or training == fold_dir:
        raise FileNotFoundError(f"{fold_dir}: not a fold_<k> folder of an nnU-Net training folder")
    dataset = load_json(training / "dataset.json")
    plan = plan_from_nnunet(load_json(training / "plans.json"), dataset, _configuration(training),
                            str(training / "plans.json"))
    path = nnunet_checkpoint(fold_dir, checkpoint)
    payload = load_nnunet_checkpoint(path)
    network = build_unet(plan.topology)
    try:
        network.load_state_dict(map_nnunet_weights(payload["network_weights"], plan.topology))
    except (RuntimeError, ValueError) as err:
        detail = str(err).strip().splitlines()
        raise ValueError(f"{path}: weights do not fit {training / 'plans.json'}: "
                         f"{' '.join(line.strip() for line in detail)[:400]}") from err
    channels = dataset.get("channel_names") or dataset.get("modality") or {"0": "LGE"}
    info = ModelInfo(lgeseg_version=__version__, labels=dict(plan.labels),
                     channel_names={str(k): str(v) for k, v in channels.items()},
                     recipe=None, datasets=(str(dataset.get("name") or training.parent.name),),
                     fold=_fold_number(fold_dir), postprocessing="none",
                     epochs_trained=int(payload.get("current_epoch") or 0),
                     extras={"nnunet_trainer": str(payload.get("trainer_name") or training.name.split("__")[0])})
    if len(info.channel_names) != plan.topology.in_channels:
        raise InvalidInputError(f"{training / 'dataset.json'}: channel_names has {len(info.channel_names)} "
                                f"channel(s), the network of plans.json {plan.topology.in_channels}")
    network.deep_supervision = False
    network.eval()
    return LoadedModel(network=network.to(device), plan=plan, info=info, model_dir=fold_dir, checkpoint=path)


def _fold_number(fold_dir: Path) -> int:
    text = fold_dir.name.removeprefix("fold_")
    return int(text) if text.isdigit() else 0
