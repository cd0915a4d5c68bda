"""The model folder: everything needed to use a trained model, in files a person can open.

Layout of ``MODEL_DIR``::

    model.json              ModelInfo: labels, channels, recipe, augmentation, datasets, lineage
    plans.json              records.Plan the network and preprocessing follow
    fingerprint.json        the training data's fingerprint (a record; nothing reads it back)
    harmonization_reference.json  histogram-matching reference (lgeseg.harmonization)
    splits.json             training/validation case ids per fold
    checkpoint_final.pt     weights (and, for latest, optimizer state) — tensors and plain values only
    checkpoint_best.pt
    checkpoint_latest.pt
    training_log.txt, progress.png

Checkpoints are loaded with ``torch.load(weights_only=True)``: a file that tries to unpickle
arbitrary objects (and so could run code) is refused with a ``ValueError``.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lgeseg import __version__
from lgeseg.core.atomic import atomic_output
from lgeseg.core.checks import model_info_problems, model_plan_problems, raise_problems
from lgeseg.core.errors import CorruptFileError, InvalidInputError
from lgeseg.core.records import (
    FINGERPRINT_FILE,
    LABELS,
    PLANS_FILE,
    Fingerprint,
    JsonRecord,
    Plan,
    load_json,
    read_plan,
    save_json,
)
from lgeseg.core.train_config import TrainConfig

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

# The file names of a model folder (the layout in the module docstring). Code names them through these
# constants; ``PLANS_FILE`` and ``FINGERPRINT_FILE`` come from ``core.records`` (a preprocessed folder has them too).
MODEL_INFO_FILE = "model.json"
SPLITS_FILE = "splits.json"
HARMONIZATION_REFERENCE_FILE = "harmonization_reference.json"
TRAINING_LOG_FILE = "training_log.txt"
PROGRESS_PLOT_FILE = "progress.png"

#: Checkpoints by name, in ``find_checkpoint``'s fallback order; ``checkpoint_file(name)`` is the file.
CHECKPOINT_NAMES: tuple[str, ...] = ("final", "best", "latest")


def checkpoint_file(name: str) -> str:
    """The file name of checkpoint ``name`` (``"final"``, ``"best"`` or ``"latest"``).

    Example:
        >>> checkpoint_file("final")
        'checkpoint_final.pt'
    """
    return f"checkpoint_{name}.pt"


CHECKPOINT_FINAL_FILE = checkpoint_file("final")
CHECKPOINT_BEST_FILE = checkpoint_file("best")
CHECKPOINT_LATEST_FILE = checkpoint_file("latest")
#: Every checkpoint file, in ``CHECKPOINT_NAMES`` order.
CHECKPOINT_FILES: tuple[str, ...] = tuple(checkpoint_file(name) for name in CHECKPOINT_NAMES)
#: The files of a model folder other than checkpoints.
METADATA_FILES: tuple[str, ...] = (MODEL_INFO_FILE, PLANS_FILE, FINGERPRINT_FILE, SPLITS_FILE,
                                   HARMONIZATION_REFERENCE_FILE, TRAINING_LOG_FILE, PROGRESS_PLOT_FILE)


@dataclasses.dataclass(frozen=True, init=False)
class ModelInfo(JsonRecord):
    """Contents of ``model.json``.

    Attributes:
        lgeseg_version: version that wrote the folder.
        labels: label name -> value.
        channel_names: channel index (as string) -> name.
        recipe: the resolved training recipe (``TrainConfig``: optimizer, lr, epochs, the batch size
            trained with, the augmentation preset, ...); None for a model lgeseg did not train (an
            untrained example folder, an nnU-Net model read for prediction).
        datasets: names of the preprocessed datasets trained on.
        fold: cross-validation fold.
        postprocessing: ``"lcc"``, ``"lcc_per_label"`` or ``"none"`` (chosen on validation cases).
        parent: model folder this one was fine-tuned from, or None.
        trainable: ``"all"``, ``"encoder:K"`` or ``"decoder:K"``.
        target_cases: fine-tuning cases of the new center, or None.
        epochs_trained: completed epochs.
        extras: free-form (timings, validation Dice, ...).
        model_card: training data, budget, validation Dice and intended use (``lgeseg.model.card``).

    The augmentation preset is kept once, in the recipe; ``augmentation`` reads it from there. Arguments
    after ``channel_names`` are keywords. ``model.json`` files of lgeseg 0.1 still load (``from_dict``):
    they also kept the preset at the top level and wrote ``"recipe": {}`` for no recipe.

    Example:
        >>> from lgeseg.core.train_config import TrainConfig
        >>> labels = {"background": 0, "blood_pool": 1, "myocardium": 2}
        >>> info = ModelInfo("0.2.0", labels, {"0": "LGE"}, recipe=TrainConfig(augmentation="nnunet"), datasets=("d",))
        >>> info.augmentation, "augmentation" in info.to_dict(), info.to_dict()["recipe"]["augmentation"]
        ('nnunet', False, 'nnunet')
        >>> old = dict(info.to_dict(), augmentation="nnunet")  # as lgeseg 0.1 wrote it
        >>> ModelInfo.from_dict(old) == info
        True
    """

    lgeseg_version: str
    labels: dict[str, int]
    channel_names: dict[str, str]
    recipe: TrainConfig | None
    datasets: tuple[str, ...]
    fold: int
    postprocessing: str
    parent: str | None
    trainable: str
    target_cases: tuple[str, ...] | None
    epochs_trained: int
    extras: dict[str, Any]
    model_card: dict[str, Any]

    def __init__(self, lgeseg_version: str, labels: dict[str, int], channel_names: dict[str, str], *,
                 recipe: TrainConfig | dict[str, Any] | None, datasets: tuple[str, ...], fold: int = 0,
                 postprocessing: str = "lcc", parent: str | None = None, trainable: str = "all",
                 target_cases: tuple[str, ...] | None = None, epochs_trained: int = 0,
                 extras: dict[str, Any] | None = None, model_card: dict[str, Any] | None = None,
                 augmentation: str | None = None) -> None:
        # recipe as a dict and augmentation: lgeseg 0.1's form, still accepted; the dict becomes the record
        # and augmentation must agree with it (see _recipe_record)
        values = {"lgeseg_version": lgeseg_version, "labels": labels, "channel_names": channel_names,
                  "recipe": _recipe_record(recipe, augmentation), "datasets": datasets, "fold": fold,
                  "postprocessing": postprocessing, "parent": parent, "trainable": trainable,
                  "target_cases": target_cases, "epochs_trained": epochs_trained,
                  "extras": {} if extras is None else extras, "model_card": {} if model_card is None else model_card}
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def augmentation(self) -> str:
        """The augmentation preset the model was trained with (the recipe's); ``"none"`` without a recipe."""
        return self.recipe.augmentation if self.recipe is not None else "none"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        """Read ``model.json``'s object, also as lgeseg 0.1 wrote it (``ValueError`` names a bad field)."""
        data = dict(data)
        augmentation = data.pop("augmentation", None)  # lgeseg 0.1 kept the preset beside the recipe's
        info = super().from_dict(data)
        _recipe_record(info.recipe, augmentation)  # refuses a top-level preset the recipe contradicts
        return info


def _recipe_record(recipe: TrainConfig | dict[str, Any] | None, augmentation: str | None = None) -> TrainConfig | None:
    """``ModelInfo.recipe`` from what lgeseg wrote: a record, None, or (0.1) a dict, ``{}`` for none.

    ``{}`` and ``{"nnunet_trainer": ...}`` (what ``inference.nnunet_model`` passed before it gave ``recipe=None``
    and the trainer in ``extras``; kept for callers of that form) are no lgeseg recipe: None.
    ``augmentation``, lgeseg 0.1's second copy of the preset, must match the recipe's.
    """
    if isinstance(recipe, dict):
        recipe = None if set(recipe) <= {"nnunet_trainer"} else TrainConfig.from_dict(recipe)
    if recipe is not None and not isinstance(recipe, TrainConfig):
        raise ValueError(f"ModelInfo: recipe must be a training recipe (an object) or null, found {recipe!r}")
    if augmentation is not None and recipe is not None and augmentation != recipe.augmentation:
        raise ValueError(f"augmentation {augmentation!r} differs from the recipe's {recipe.augmentation!r}")
    return recipe


@dataclasses.dataclass
class LoadedModel:
    """A model ready for inference: network in eval mode on ``device``, its plan, info and checkpoint file."""

    network: torch.nn.Module
    plan: Plan
    info: ModelInfo
    model_dir: Path
    checkpoint: Path | None = None


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (tensors, state dicts, numbers, strings, lists, dicts) to ``path`` atomically.

    A failed write (a full disk: torch reports "unexpected pos ...", or an ``OSError``) leaves the
    old file as it was and raises an ``OSError`` naming ``path`` (``atomic.atomic_output``).

    Example:
        >>> import tempfile, torch
        >>> tmp = tempfile.TemporaryDirectory()
        >>> save_checkpoint(Path(tmp.name) / "checkpoint_final.pt", {"network": {"w": torch.ones(2)}, "epoch": 3})
        >>> load_checkpoint(Path(tmp.name) / "checkpoint_final.pt")["epoch"]
        3
        >>> tmp.cleanup()
    """
    import torch  # deferred: model.json, plans.json and the file names are read without torch (card, registry)

    with atomic_output(path) as tmp:
        try:
            torch.save(payload, tmp)
        except RuntimeError as err:  # torch's zip writer: "unexpected pos ..." when a write comes up short
            detail = _first_line(err)
            raise OSError(errno.EIO, f"writing the checkpoint failed ({detail[:160]}); is the disk full? free "
                                     "space or write the model folder elsewhere", str(path)) from err


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects.

    Returns the payload dict. Raises ``FileNotFoundError`` if missing, ``CorruptFileError`` naming
    the file when it is empty, truncated or damaged (not a complete archive as ``torch.save`` writes),
    and ``ValueError`` naming the file when it is a complete file that is not a plain-data checkpoint
    (for example one crafted to run code on load).

    Example:
        >>> import tempfile, torch
        >>> tmp = tempfile.TemporaryDirectory()
        >>> save_checkpoint(Path(tmp.name) / "checkpoint_best.pt", {"network": {"w": torch.arange(3.0)}})
        >>> load_checkpoint(Path(tmp.name) / "checkpoint_best.pt")["network"]["w"].tolist()
        [0.0, 1.0, 2.0]
        >>> tmp.cleanup()
    """
    import torch  # deferred: as in save_checkpoint

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    size = path.stat().st_size
    if size == 0:
        raise CorruptFileError(f"{path}: checkpoint is empty (0 bytes): truncated or never finished writing; "
                               "use another checkpoint (--checkpoint best) or train again")
    if not zipfile.is_zipfile(path):
        raise CorruptFileError(f"{path}: checkpoint is corrupt or truncated ({size} bytes, not a complete "
                               "torch.save archive); use another checkpoint or train again")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path}: refused to load: not a plain weights checkpoint (it may try to run code on load). "
            f"Only files written by lgeseg are accepted. Details: {_first_line(err)}"
        ) from err
    except Exception as err:  # noqa: BLE001 - torch reports damaged archives with many exception types
        raise CorruptFileError(f"{path}: checkpoint is corrupt ({type(err).__name__}: {_first_line(err)}); "
                               "use another checkpoint or train again") from err
    if not isinstance(payload, dict) or "network" not in payload:
        raise ValueError(f"{path}: not an lgeseg checkpoint (expected a dict with a 'network' entry)")
    return payload


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else "no detail"


def write_model_metadata(model_dir: str | Path, plan: Plan, info: ModelInfo,
                         fingerprint: Fingerprint | None = None) -> None:
    """Write ``plans.json``, ``model.json`` and (if given) ``fingerprint.json`` into ``model_dir``.

    Example:
        >>> import tempfile
        >>> from lgeseg.planning.planner import plan_experiment
        >>> from lgeseg.core.records import CaseFingerprint
        >>> tmp = tempfile.TemporaryDirectory()
        >>> fingerprint = Fingerprint(cases=(CaseFingerprint("a", "d", (8.0, 1.25, 1.25), (10, 64, 64), (10, 40, 40)),))
        >>> plan = plan_experiment(fingerprint, gpu_memory_gb=None, preset="cpu")
        >>> labels = {"background": 0, "blood_pool": 1, "myocardium": 2}
        >>> info = ModelInfo("0.1.0", labels, {"0": "LGE"}, recipe=None, datasets=("d",))
        >>> write_model_metadata(tmp.name, plan, info, fingerprint)
        >>> sorted(p.name for p in Path(tmp.name).iterdir())
        ['fingerprint.json', 'model.json', 'plans.json']
        >>> tmp.cleanup()
    """
    model_dir = Path(model_dir)
    save_json(plan, model_dir / PLANS_FILE)
    save_json(info, model_dir / MODEL_INFO_FILE)
    if fingerprint is not None:
        save_json(fingerprint, model_dir / FINGERPRINT_FILE)


def read_model_metadata(model_dir: str | Path) -> tuple[Plan, ModelInfo]:
    """Read ``plans.json`` and ``model.json`` of a model folder.

    Raises ``FileNotFoundError``/``ValueError`` naming the folder and the missing or bad file (and
    its bad fields: see ``lgeseg.core.checks``), also when ``model.json``'s labels or channels disagree
    with the network of ``plans.json`` (``checks.model_plan_problems``).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> plan, info = read_model_metadata(write_untrained_model(tmp.name, target_spacing=(8.0, 1.25, 1.25)))
        >>> plan.target_spacing, plan.patch_size, info.labels
        ((8.0, 1.25, 1.25), (32, 32), {'background': 0, 'blood_pool': 1, 'myocardium': 2})
        >>> read_model_metadata(Path(tmp.name) / "elsewhere")
        Traceback (most recent call last):
        FileNotFoundError: .../elsewhere: model folder not found
        >>> tmp.cleanup()
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: model folder not found")
    for name in (PLANS_FILE, MODEL_INFO_FILE):
        if not (model_dir / name).is_file():
            if _is_nnunet_folder(model_dir):
                raise FileNotFoundError(
                    f"{model_dir}: a model folder of nnU-Net v2, not of lgeseg ({name} is missing): lgeseg_predict -m "
                    f"{model_dir} predicts with it (a 2d PlainConvUNet; docs/nnunet.md); training, fine-tuning and "
                    "export need an lgeseg model folder")
            raise FileNotFoundError(f"{model_dir}: incomplete model folder, {name} is missing")
    plan = read_plan(model_dir / PLANS_FILE)
    info = read_model_info(model_dir / MODEL_INFO_FILE)
    problems = model_plan_problems(info, plan)
    if problems:  # the network's outputs would be named (or counted) wrongly
        raise InvalidInputError(f"{model_dir / MODEL_INFO_FILE}: does not match {model_dir / PLANS_FILE}: "
                                + "; ".join(problems) + "; restore model.json from the trained model folder or archive")
    return plan, info


def _is_nnunet_folder(folder: Path) -> bool:
    """True for an nnU-Net training folder or one of its folds (``checkpoint_*.pth``, nnU-Net's plans.json)."""
    # deferred: the nnU-Net reader loads SimpleITK (datasets.layout); only a folder lgeseg refuses needs it
    from lgeseg.planning.nnunet import is_nnunet_plans

    if any(folder.glob("checkpoint_*.pth")) or any(folder.glob("fold_*/checkpoint_*.pth")):
        return True
    plans = folder / PLANS_FILE
    try:
        return plans.is_file() and is_nnunet_plans(load_json(plans))
    except ValueError:
        return False


def read_model_info(path: str | Path) -> ModelInfo:
    """Read and check ``model.json``; ``InvalidInputError`` names the file and every bad field.

    Example:
        >>> import json, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> labels = {"background": 0, "blood_pool": 1, "myocardium": 2}
        >>> info = ModelInfo("0.1.0", labels, {"0": "LGE"}, recipe=None, datasets=("d",))
        >>> save_json(info, Path(tmp.name) / "model.json")
        >>> read_model_info(Path(tmp.name) / "model.json").postprocessing
        'lcc'
        >>> tmp.cleanup()
    """
    data = load_json(path)
    try:
        info = ModelInfo.from_dict(data) if isinstance(data, dict) else None
    except (ValueError, TypeError) as err:
        raise InvalidInputError(f"{path}: invalid model.json: {err}") from err
    if info is None:
        raise InvalidInputError(f"{path}: invalid model.json: expected a JSON object, found {type(data).__name__}")
    raise_problems(path, MODEL_INFO_FILE, model_info_problems(info))
    return info


def find_checkpoint(model_dir: str | Path, checkpoint: str = "final") -> Path:
    """Return the path of ``checkpoint_<checkpoint>.pt``; with ``"final"`` fall back to best, then latest.

    Raises ``FileNotFoundError`` naming the folder when none exists.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> save_checkpoint(Path(tmp.name) / "checkpoint_best.pt", {"network": {}})
        >>> find_checkpoint(tmp.name).name  # no checkpoint_final.pt: the best one
        'checkpoint_best.pt'
        >>> tmp.cleanup()
    """
    model_dir = Path(model_dir)
    order = [checkpoint] + ([n for n in CHECKPOINT_NAMES if n != checkpoint] if checkpoint == "final" else [])
    for name in order:
        path = model_dir / checkpoint_file(name)
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{model_dir}: incomplete model folder, no {checkpoint_file(checkpoint)} (nothing trained?)")


def checkpoint_for_inference(model_dir: str | Path, checkpoint: str = "final") -> Path:
    """The checkpoint a prediction uses: ``checkpoint_<checkpoint>.pt``, with ``"final"``'s rule for a missing one.

    Without ``checkpoint_final.pt``, a folder that holds ``checkpoint_latest.pt`` is a training run that
    has not finished: refused (``FileNotFoundError`` naming the folder and what to do: finish it with
    ``lgeseg_train --continue``, or ask for ``--checkpoint best``/``latest``). Any other folder without
    it (an archive of the best weights, say) uses ``checkpoint_best.pt`` with a warning naming the
    folder and the file. ``"best"`` and ``"latest"`` are used as asked (``FileNotFoundError`` if missing).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> save_checkpoint(Path(tmp.name) / "checkpoint_best.pt", {"network": {}})
        >>> checkpoint_for_inference(tmp.name).name  # logs a warning: no checkpoint_final.pt, using best
        'checkpoint_best.pt'
        >>> save_checkpoint(Path(tmp.name) / "checkpoint_latest.pt", {"network": {}})
        >>> checkpoint_for_inference(tmp.name)
        Traceback (most recent call last):
        FileNotFoundError: ...: no checkpoint_final.pt: training has not finished (checkpoint_latest.pt is there); ...
        >>> tmp.cleanup()
    """
    model_dir = Path(model_dir)
    wanted = model_dir / checkpoint_file(checkpoint)
    if checkpoint != "final" or wanted.is_file():
        if not wanted.is_file():
            raise FileNotFoundError(f"{model_dir}: no {wanted.name} (--checkpoint {checkpoint}); "
                                    f"found: {_checkpoints_in(model_dir)}")
        return wanted
    if (model_dir / CHECKPOINT_LATEST_FILE).is_file():
        unfinished = " or ".join(f"--checkpoint {n}" for n in ("best", "latest")
                                 if (model_dir / checkpoint_file(n)).is_file())
        raise FileNotFoundError(
            f"{model_dir}: no checkpoint_final.pt: training has not finished (checkpoint_latest.pt is there); finish "
            f"it with lgeseg_train --continue -o {model_dir} (and its -p), or predict with the unfinished weights "
            f"with {unfinished}")
    best = model_dir / CHECKPOINT_BEST_FILE
    if not best.is_file():
        raise FileNotFoundError(f"{model_dir}: incomplete model folder, no checkpoint_final.pt (nothing trained?)")
    logger.warning("%s: no checkpoint_final.pt; using %s (the best validation epoch) instead", model_dir, best.name)
    return best


def _checkpoints_in(model_dir: Path) -> str:
    found = [name for name in CHECKPOINT_FILES if (model_dir / name).is_file()]
    return ", ".join(found) or "no checkpoint"


def load_model(model_dir: str | Path, device: str | torch.device = "cpu", checkpoint: str = "final") -> LoadedModel:
    """Build the network from ``plans.json`` and load its weights for inference.

    Args:
        model_dir: model folder.
        device: torch device for the network.
        checkpoint: ``"final"``, ``"best"`` or ``"latest"``; a missing final one is refused for an
            unfinished training run, else replaced by best with a warning (``checkpoint_for_inference``).

    Returns:
        ``LoadedModel`` with the network in eval mode and deep supervision off, and the checkpoint file.

    Example:
        >>> import tempfile, torch
        >>> tmp = tempfile.TemporaryDirectory()
        >>> model = load_model(write_untrained_model(tmp.name))  # a trained model folder loads the same way
        >>> model.network.training, tuple(model.network(torch.zeros(1, 1, 32, 32))[0].shape)  # (slices, classes, y, x)
        (False, (1, 3, 32, 32))
        >>> tmp.cleanup()
    """
    from lgeseg.network import build_unet  # deferred: lgeseg_predict starts before any network is built

    model_dir = Path(model_dir)
    plan, info = read_model_metadata(model_dir)
    path = checkpoint_for_inference(model_dir, checkpoint)
    payload = load_checkpoint(path, map_location="cpu")
    network = build_unet(plan.topology)
    try:
        network.load_state_dict(payload["network"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not match the network in {model_dir / PLANS_FILE}: {err}") from err
    network.deep_supervision = False
    network.eval()
    return LoadedModel(network=network.to(device), plan=plan, info=info, model_dir=model_dir, checkpoint=path)


def write_untrained_model(
    model_dir: str | Path,
    *,
    target_spacing: tuple[float, float, float] = (6.0, 1.6, 1.6),
    in_channels: int = 1,
    labels: dict[str, int] | None = None,
    patch_size: tuple[int, int] = (32, 32),
    features: tuple[int, ...] = (4, 8),
    channel_names: Sequence[str] | None = None,
    postprocessing: str = "lcc",
    seed: int = 0,
) -> Path:
    """Write a small model folder with untrained weights that ``load_model`` and prediction accept.

    For examples, tests and benchmarks that need a model folder without training one: ``plans.json``
    (``planning.small_plan``), ``model.json`` (no datasets, 0 epochs) and ``checkpoint_final.pt`` with
    the weights ``build_unet(plan.topology, seed=seed)`` starts from. Its predictions are meaningless.

    Args:
        model_dir: the folder to write (created; files already there are replaced).
        target_spacing: mm, (z, y, x), the spacing inputs are resampled to.
        in_channels: image channels.
        labels: label name -> value (background 0 included); None: background, blood_pool, myocardium.
        patch_size: training patch, pixels (y, x); a multiple of ``2 ** (len(features) - 1)``.
        features: width of each U-Net stage (one stage per entry).
        channel_names: one name per channel, in channel order; None: ``LGE`` for one channel,
            ``channel_0``, ``channel_1``, ... for several.
        postprocessing: ``"lcc"``, ``"lcc_per_label"`` or ``"none"``, recorded in ``model.json``.
        seed: seeds the weight initialization (other seeds, other weights, one plan: an ensemble).

    Returns:
        ``model_dir`` as a ``Path``. Raises ``ValueError`` (nothing written) when ``channel_names``
        does not name ``in_channels`` channels, the patch does not fit the stages, or the labels or
        ``postprocessing`` are not ones a model folder may hold.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> model_dir = write_untrained_model(Path(tmp.name) / "model", target_spacing=(8.0, 1.25, 1.25))
        >>> sorted(p.name for p in model_dir.iterdir())
        ['checkpoint_final.pt', 'model.json', 'plans.json']
        >>> model = load_model(model_dir)
        >>> model.plan.target_spacing, model.plan.topology.features_per_stage, model.info.channel_names
        ((8.0, 1.25, 1.25), (4, 8), {'0': 'LGE'})
        >>> tmp.cleanup()
    """
    # deferred: lgeseg_predict starts without the planning modules and before any network is built
    from lgeseg.network import build_unet
    from lgeseg.planning.planner import small_plan

    names = list(channel_names) if channel_names is not None else (
        ["LGE"] if in_channels == 1 else [f"channel_{c}" for c in range(in_channels)])
    if len(names) != in_channels:
        raise ValueError(f"channel_names: expected {in_channels} name(s), one per input channel, found {names}")
    plan = small_plan(target_spacing, in_channels, dict(labels or LABELS), patch_size, features)
    info = ModelInfo(lgeseg_version=__version__, labels=dict(plan.labels),
                     channel_names={str(c): name for c, name in enumerate(names)}, recipe=None, datasets=(),
                     postprocessing=postprocessing)
    model_dir = Path(model_dir)
    raise_problems(model_dir / MODEL_INFO_FILE, MODEL_INFO_FILE, model_info_problems(info))  # before writing anything
    write_model_metadata(model_dir, plan, info)
    save_checkpoint(model_dir / CHECKPOINT_FINAL_FILE, {"network": build_unet(plan.topology, seed=seed).state_dict()})
    return model_dir
