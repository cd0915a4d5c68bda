"""The model card: what a model was trained on, with what budget, how well it validated, what it is for.

The card lives in ``model.json`` (``model_card``) so that it travels with the model (``lgeseg_export_model``)
and is printed by ``lgeseg_predict --model-info``. It is built from the model folder's own records:
``model.json`` (datasets, recipe, epochs, validation Dice, device, timings) and ``fingerprint.json``
(centers, vendors, field strengths, case counts and spacings of the training data). The trainer writes
it when training ends; ``build_model_card`` rebuilds it for older folders. Only ``intended_use`` is
free text, and the default says what the validation numbers do and do not show.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from lgeseg.core.records import load_json, save_json
from lgeseg.model.folder import FINGERPRINT_FILE, MODEL_INFO_FILE, read_model_metadata

#: Intended use written unless the model's author states another.
DEFAULT_INTENDED_USE = (
    "Research use: segmentation of the left-ventricular blood pool (label 1) and myocardium (label 2) in "
    "short-axis late gadolinium enhancement (LGE) MRI, for volumes and myocardial mass. Not a medical device; "
    "a person checks every result (lgeseg_report draws the contours over every slice). Accuracy at a center "
    "or vendor absent from the training data is unknown until measured on annotated cases there "
    "(lgeseg_evaluate); harmonization or fine-tuning (docs/finetuning.md) may be needed."
)

#: What the card's validation numbers are (``lgeseg.training.validate_epoch.validate``): each held-out case is
#: predicted slice by slice on whole slices at the preprocessed resolution, then scored with one Dice over
#: its whole volume (3D), and the per-case values are averaged.
VALIDATION_WHAT = ("3D Dice per structure (one Dice over each case's whole volume, predicted on whole slices at "
                   "the preprocessed resolution, averaged over cases) on the held-out cases of the training "
                   "datasets (fold {fold}), not on unseen centers")


def _training_data(model_dir: Path, info: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"datasets": list(info.datasets), "train_cases": info.extras.get("train_cases"),
                            "validation_cases": info.extras.get("val_cases"), "fold": info.fold}
    fingerprint_path = model_dir / FINGERPRINT_FILE
    if fingerprint_path.is_file():
        fingerprint = load_json(fingerprint_path)
        data["sources"] = [{key: entry.get(key) for key in ("name", "center", "vendor", "field_strength", "num_cases")}
                           for entry in fingerprint.get("datasets", [])]
        spacing = fingerprint.get("summary", {}).get("spacing", {})
        if "median" in spacing:
            data["median_spacing_mm_zyx"] = spacing["median"]
    if info.parent:
        data["finetuned_from"] = info.parent
        data["target_cases"] = list(info.target_cases or ())
    return data


def build_model_card(model_dir: str | Path, intended_use: str | None = None) -> dict[str, Any]:
    """Build the card of a model folder from its ``model.json`` and ``fingerprint.json``.

    Args:
        model_dir: the model folder.
        intended_use: free text; None keeps the card's present text, else ``DEFAULT_INTENDED_USE``.

    Returns:
        A JSON-ready dict: ``model``, ``task``, ``training_data``, ``budget``, ``validation``,
        ``intended_use``. Raises ``FileNotFoundError``/``ValueError`` for an incomplete folder.

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = Path(tempfile.mkdtemp())
        >>> model_dir = write_untrained_model(tmp / "model")  # untrained; a trained model folder reads the same
        >>> card = build_model_card(model_dir)
        >>> card["task"]["labels"], card["task"]["patch_size"], card["intended_use"] == DEFAULT_INTENDED_USE
        ({'background': 0, 'blood_pool': 1, 'myocardium': 2}, [32, 32], True)
        >>> import shutil; shutil.rmtree(tmp)
    """
    model_dir = Path(model_dir)
    plan, info = read_model_metadata(model_dir)
    recipe, extras = info.recipe, info.extras
    seconds = extras.get("seconds_per_epoch")
    recorded = recipe.to_dict() if recipe is not None else {}  # no recipe: an untrained example folder
    return {
        "model": model_dir.resolve().name,
        "lgeseg_version": info.lgeseg_version,
        "task": {"labels": dict(info.labels), "channels": dict(info.channel_names),
                 "network": "2D U-Net", "target_spacing_mm_zyx": list(plan.target_spacing),
                 "patch_size": list(plan.patch_size), "postprocessing": info.postprocessing},
        "training_data": _training_data(model_dir, info),
        "budget": {"epochs_trained": info.epochs_trained, "epochs_planned": recorded.get("epochs"),
                   "iterations_per_epoch": recorded.get("iterations_per_epoch"),
                   "batch_size": recorded.get("batch_size"), "augmentation": info.augmentation,
                   "trainable": info.trainable, "device": extras.get("device"),
                   "training_hours": None if seconds is None else round(seconds * info.epochs_trained / 3600, 3)},
        "validation": {"cases": extras.get("val_cases"), "best_mean_dice": extras.get("best_val_mean_dice"),
                       "last_dice": extras.get("last_val_dice", {}),
                       "what": VALIDATION_WHAT.format(fold=info.fold)},
        "intended_use": intended_use or info.model_card.get("intended_use") or DEFAULT_INTENDED_USE,
    }


def write_model_card(model_dir: str | Path, intended_use: str | None = None) -> dict[str, Any]:
    """Build the card (``build_model_card``) and store it in ``model_dir/model.json``; returns it.

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = Path(tempfile.mkdtemp())
        >>> model_dir = write_untrained_model(tmp / "model")  # untrained; a trained model folder reads the same
        >>> card = write_model_card(model_dir, intended_use="Research on the phantom only.")
        >>> load_json(model_dir / "model.json")["model_card"]["intended_use"]
        'Research on the phantom only.'
        >>> import shutil; shutil.rmtree(tmp)
    """
    model_dir = Path(model_dir)
    _, info = read_model_metadata(model_dir)
    card = build_model_card(model_dir, intended_use)
    save_json(dataclasses.replace(info, model_card=card), model_dir / MODEL_INFO_FILE)
    return card


def model_card(model_dir: str | Path) -> dict[str, Any]:
    """The card stored in ``model.json``, or one built from the folder when none is stored (older models).

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = Path(tempfile.mkdtemp())
        >>> model_dir = write_untrained_model(tmp / "model")  # untrained; a trained model folder reads the same
        >>> model_card(model_dir)["budget"]["augmentation"]  # no card stored yet: built from the folder
        'none'
        >>> import shutil; shutil.rmtree(tmp)
    """
    _, info = read_model_metadata(model_dir)
    return dict(info.model_card) or build_model_card(model_dir)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(v)}" for k, v in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(v) for v in value) or "-"
    return "-" if value is None else str(value)


def format_model_card(card: dict[str, Any]) -> str:
    """The card as plain text, one ``section.key: value`` line per field, for a terminal.

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = Path(tempfile.mkdtemp())
        >>> model_dir = write_untrained_model(tmp / "model")  # untrained; a trained model folder reads the same
        >>> for line in format_model_card(build_model_card(model_dir)).splitlines()[:3]:
        ...     print(line)
        model: model (lgeseg ...)
        task:
          labels: background 0, blood_pool 1, myocardium 2
        >>> import shutil; shutil.rmtree(tmp)
    """
    lines = [f"model: {card.get('model')} (lgeseg {card.get('lgeseg_version')})"]
    lines += [f"{key}: {card[key]}" for key in ("description", "members", "size_mb") if key in card]
    for section in ("task", "training_data", "budget", "validation"):
        lines.append(f"{section.replace('_', ' ')}:")
        for key, value in card.get(section, {}).items():
            if key == "sources":
                value = ["/".join(str(v) for v in source.values() if v is not None) for source in value]
            lines.append(f"  {key.replace('_', ' ')}: {_value(value)}")
    lines.append(f"intended use: {card.get('intended_use')}")
    if "licence" in card:
        lines.append(f"licence: {card['licence']}")
    if card.get("provenance") == "stripped":
        lines.append("provenance: training data paths, case ids and splits were left out at export")
    return "\n".join(lines)
