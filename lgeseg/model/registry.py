"""Models by name: the pretrained models shipped inside the package and the ones a user installed.

A name (``lge-lv``) is looked up in two places, the user's first:

* installed models: ``$LGESEG_HOME/models/<name>`` (``~/.lgeseg/models/<name>`` without ``LGESEG_HOME``),
  where ``lgeseg_install_model ZIP --name NAME`` puts them;
* shipped models: ``lgeseg/pretrained/<name>`` inside the package (built by
  ``benchmarks/build_pretrained.py``; docs/pretrained.md).

A model is either one model folder (``model.json``, ``plans.json``, ``checkpoint_final.pt``) or an
ensemble folder whose members are ``fold_<k>`` model folders (nnU-Net's layout); an ensemble may carry
a ``model_card.json`` of its own (what the ensemble was trained on and how well it measured). Anything
that is an existing folder is used as a path, never as a name, so a folder called ``lge-lv`` in the
working directory wins over the shipped model of that name.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from lgeseg.core.records import load_json
from lgeseg.model.folder import MODEL_INFO_FILE

#: Optional environment variable: lgeseg's home folder (installed models live in ``$LGESEG_HOME/models``).
HOME_ENV = "LGESEG_HOME"
#: The shipped pretrained models, one folder per name.
PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"  # lgeseg/pretrained
#: The card of an ensemble folder (a single model folder keeps its card in ``model.json``).
ENSEMBLE_CARD = "model_card.json"


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A model that can be called by name.

    Attributes:
        name: what ``-m`` takes.
        source: ``"installed"`` or ``"shipped"``.
        path: the model or ensemble folder.
        members: the model folders that are ensembled (one for a single model).
        description: one line from the card ('' when there is none).
    """

    name: str
    source: str
    path: Path
    members: tuple[Path, ...]
    description: str = ""


def models_home() -> Path:
    """Folder of installed models: ``$LGESEG_HOME/models``, or ``~/.lgeseg/models`` without ``LGESEG_HOME``.

    Example:
        >>> import os
        >>> os.environ["LGESEG_HOME"] = "/srv/lgeseg"
        >>> str(models_home())
        '/srv/lgeseg/models'
        >>> del os.environ["LGESEG_HOME"]
    """
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".lgeseg") / "models"


def model_members(folder: str | Path) -> tuple[Path, ...]:
    """The model folders of ``folder``: itself when it holds ``model.json``, else its ``fold_<k>`` members.

    Raises ``FileNotFoundError`` naming the folder when it is neither a model folder nor an ensemble
    of model folders.

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = Path(tempfile.mkdtemp())
        >>> for k in (0, 1):
        ...     _ = write_untrained_model(tmp / "ensemble" / f"fold_{k}", seed=k)
        >>> [p.name for p in model_members(tmp / "ensemble")], model_members(tmp / "ensemble" / "fold_1")[0].name
        (['fold_0', 'fold_1'], 'fold_1')
        >>> import shutil; shutil.rmtree(tmp)
    """
    folder = Path(folder)
    if (folder / MODEL_INFO_FILE).is_file():
        return (folder,)
    members = sorted((p for p in folder.glob("fold_*") if (p / MODEL_INFO_FILE).is_file()),
                     key=lambda p: (len(p.name), p.name))
    if not members:
        raise FileNotFoundError(f"{folder}: not a model folder (no model.json) and no fold_<k> model folders in it")
    return tuple(members)


def _entries(root: Path, source: str) -> list[ModelEntry]:
    entries = []
    if not root.is_dir():
        return entries
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        try:
            members = model_members(folder)
        except FileNotFoundError:
            continue
        entries.append(ModelEntry(folder.name, source, folder, members, _description(folder)))
    return entries


def _description(folder: Path) -> str:
    card = ensemble_card(folder)
    return str(card.get("description", "")) if card else ""


def ensemble_card(folder: str | Path) -> dict[str, Any] | None:
    """The ``model_card.json`` of an ensemble folder, or None when it has none.

    Example:
        >>> ensemble_card("/nonexistent") is None
        True
    """
    path = Path(folder) / ENSEMBLE_CARD
    if not path.is_file():
        return None
    card = load_json(path)
    if not isinstance(card, dict):
        raise ValueError(f"{path}: invalid model card: expected a JSON object, found {type(card).__name__}")
    return card


def list_models() -> list[ModelEntry]:
    """Every model callable by name: the installed ones, then the shipped ones not shadowed by them.

    Example:
        >>> names = [entry.name for entry in list_models() if entry.source == "shipped"]
        >>> all(isinstance(name, str) for name in names)
        True
    """
    installed = _entries(models_home(), "installed")
    taken = {entry.name for entry in installed}
    return installed + [entry for entry in _entries(PRETRAINED_DIR, "shipped") if entry.name not in taken]


def resolve_model(spec: str | Path) -> ModelEntry:
    """Find what ``-m SPEC`` names: an existing folder (model or ensemble) or an installed or shipped name.

    Raises ``FileNotFoundError`` naming the spec and the names that exist when it is neither.

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = Path(tempfile.mkdtemp())
        >>> entry = resolve_model(write_untrained_model(tmp / "my_model"))  # a folder is used as it is
        >>> entry.source, [p.name for p in entry.members]
        ('folder', ['my_model'])
        >>> resolve_model("no-such-model")
        Traceback (most recent call last):
        FileNotFoundError: no-such-model: no such model folder, and no installed or shipped model of that name ...
        >>> import shutil; shutil.rmtree(tmp)
    """
    path = Path(spec)
    if path.is_dir():
        return ModelEntry(path.name, "folder", path, model_members(path), _description(path))
    if path.exists():
        raise NotADirectoryError(f"{spec}: a model is a folder (model.json, plans.json, checkpoint_final.pt), "
                                 "not a file; a .zip is installed with lgeseg_install_model first")
    if len(path.parts) == 1:
        for entry in list_models():
            if entry.name == str(spec):
                return entry
    known = ", ".join(entry.name for entry in list_models()) or "none"
    raise FileNotFoundError(f"{spec}: no such model folder, and no installed or shipped model of that name "
                            f"(names: {known}; lgeseg_predict --list-models)")


def resolve_model_folders(specs: list[str | Path] | tuple[str | Path, ...]) -> list[Path]:
    """The member model folders of every ``-m`` spec, in order (names and ensembles expanded).

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = Path(tempfile.mkdtemp())
        >>> a, b = write_untrained_model(tmp / "a"), write_untrained_model(tmp / "e" / "fold_0")
        >>> [p.relative_to(tmp).as_posix() for p in resolve_model_folders([a, tmp / "e"])]
        ['a', 'e/fold_0']
        >>> import shutil; shutil.rmtree(tmp)
    """
    return [member for spec in specs for member in resolve_model(spec).members]


def format_model_list(entries: list[ModelEntry]) -> str:
    """A table of ``entries`` for ``lgeseg_predict --list-models``: name, source, members, description.

    Example:
        >>> print(format_model_list([ModelEntry("lge-lv", "shipped", Path("/x/lge-lv"),
        ...                                     (Path("/x/lge-lv/fold_0"),), "LV from LGE")]))
        name                  source     members  description
        lge-lv                shipped          1  LV from LGE
    """
    lines = [f"{'name':<21} {'source':<10} {'members':>7}  description"]
    for entry in entries:
        lines.append(f"{entry.name:<21} {entry.source:<10} {len(entry.members):>7}  {entry.description}")
    if not entries:
        lines.append(f"(none: install one with lgeseg_install_model ZIP --name NAME into {models_home()})")
    return "\n".join(lines)
