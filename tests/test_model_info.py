"""model.json: the typed recipe, the augmentation preset kept once, and the files earlier versions wrote."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lgeseg.core.errors import InvalidInputError
from lgeseg.core.records import LABELS
from lgeseg.core.train_config import TrainConfig
from lgeseg.model.folder import (
    MODEL_INFO_FILE,
    PLANS_FILE,
    ModelInfo,
    load_model,
    read_model_info,
    read_model_metadata,
    write_untrained_model,
)
from lgeseg.model.registry import PRETRAINED_DIR

SHIPPED = sorted(PRETRAINED_DIR.glob("*/fold_*/model.json"))


def test_shipped_models_load_and_keep_the_preset_once() -> None:
    assert len(SHIPPED) >= 6
    for path in SHIPPED:
        written = json.loads(path.read_text())
        assert "augmentation" not in written  # the preset lives in the recipe only
        info = read_model_info(path)
        assert isinstance(info.recipe, TrainConfig) and info.augmentation == written["recipe"]["augmentation"]
        assert info.to_dict() == written  # reads back as it was written
        read_model_metadata(path.parent)


def test_a_model_json_of_lgeseg_0_1_with_the_preset_twice_still_loads(tmp_path: Path) -> None:
    for path in SHIPPED:
        old = json.loads(path.read_text())
        old["augmentation"] = old["recipe"]["augmentation"]  # 0.1 kept the preset twice
        (tmp_path / MODEL_INFO_FILE).write_text(json.dumps(old))
        info = read_model_info(tmp_path / MODEL_INFO_FILE)
        assert info.augmentation == old["augmentation"]
        assert info.recipe is not None and info.recipe.to_dict() == old["recipe"]
        assert info.to_dict() == {key: value for key, value in old.items() if key != "augmentation"}


def test_a_model_written_by_an_earlier_version_loads_and_predicts(tmp_path: Path) -> None:
    model = write_untrained_model(tmp_path / "model")
    data = json.loads((model / MODEL_INFO_FILE).read_text())
    data.update(recipe={}, augmentation="none")  # lgeseg 0.1's untrained folder
    (model / MODEL_INFO_FILE).write_text(json.dumps(data))
    loaded = load_model(model)
    assert loaded.info.recipe is None and loaded.info.augmentation == "none"


def test_an_old_recipe_without_the_newer_fields_takes_their_defaults(tmp_path: Path) -> None:
    old = json.loads(SHIPPED[0].read_text())
    for newer in ("ema_fraction", "cuda_graph", "compile_mode", "max_minutes", "subjects_per_center"):
        old["recipe"].pop(newer)
    path = tmp_path / MODEL_INFO_FILE
    path.write_text(json.dumps(old))
    recipe = read_model_info(path).recipe
    assert recipe is not None and (recipe.ema_fraction, recipe.cuda_graph, recipe.compile_mode) == (None, False,
                                                                                                    "default")


def test_a_contradicting_or_bad_recipe_is_refused_naming_the_file(tmp_path: Path) -> None:
    old = json.loads(SHIPPED[0].read_text())
    path = tmp_path / MODEL_INFO_FILE
    path.write_text(json.dumps(dict(old, augmentation="nnunet")))  # the 0.1 top-level copy disagrees
    with pytest.raises(InvalidInputError, match=r"model.json: invalid model.json: .*'nnunet' differs from the "
                                                "recipe's 'lge_dg'"):
        read_model_info(path)
    path.write_text(json.dumps(dict(old, recipe={**old["recipe"], "epochs": 0})))
    with pytest.raises(InvalidInputError, match="model.json: invalid model.json: .*epochs must be an integer >= 1"):
        read_model_info(path)
    path.write_text(json.dumps(dict(old, recipe={**old["recipe"], "warmup": 5})))
    with pytest.raises(InvalidInputError, match=r"unknown field\(s\) \['warmup'\]"):
        read_model_info(path)


def test_a_recorded_preset_that_no_longer_exists_still_loads(tmp_path: Path) -> None:
    old = json.loads(SHIPPED[0].read_text())
    path = tmp_path / MODEL_INFO_FILE
    path.write_text(json.dumps(dict(old, augmentation="retired", recipe={**old["recipe"], "augmentation": "retired"})))
    assert read_model_info(path).augmentation == "retired"  # prediction never needs the preset


def test_model_json_keeps_the_augmentation_once(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED[0].parent, tmp_path / "model")
    _, info = read_model_metadata(tmp_path / "model")
    written = info.to_dict()
    assert "augmentation" not in written and written["recipe"]["augmentation"] == info.augmentation == "lge_dg"
    assert ModelInfo.from_dict(written) == info


def test_the_old_constructor_form_still_builds_a_record() -> None:
    """``recipe`` as a dict and ``augmentation=``: lgeseg 0.1's form (and what inference/nnunet_model.py passed)."""
    nnunet = ModelInfo("0.2.0", dict(LABELS), {"0": "LGE"}, recipe={"nnunet_trainer": "nnUNetTrainer"},
                       augmentation="nnunet", datasets=("d",))
    assert nnunet.recipe is None and "augmentation" not in nnunet.to_dict()
    trained = ModelInfo("0.2.0", dict(LABELS), {"0": "LGE"}, recipe=TrainConfig(augmentation="none").to_dict(),
                        augmentation="none", datasets=("d",))
    assert trained.recipe == TrainConfig(augmentation="none")
    with pytest.raises(ValueError, match="differs from the recipe's"):
        ModelInfo("0.2.0", dict(LABELS), {"0": "LGE"}, recipe=TrainConfig(), augmentation="none", datasets=())
    with pytest.raises(TypeError):  # positional after channel_names: 0.1's order put augmentation fifth
        ModelInfo("0.2.0", dict(LABELS), {"0": "LGE"}, None, ("d",))  # type: ignore[misc]


def test_the_plan_and_model_file_names_are_the_folders_constants(tmp_path: Path) -> None:
    model = write_untrained_model(tmp_path / "model")
    assert (model / PLANS_FILE).is_file() and (model / MODEL_INFO_FILE).is_file()
    assert (PLANS_FILE, MODEL_INFO_FILE) == ("plans.json", "model.json")
