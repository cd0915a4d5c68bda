"""Models by name: ``-m NAME`` finds installed and shipped models, ensembles expand to their members."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lgeseg.cli.install_model import main as install_main
from lgeseg.cli.predict import main as predict_main
from lgeseg.model.archive import export_model
from lgeseg.model.registry import list_models, resolve_model, resolve_model_folders


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``LGESEG_HOME`` for the test."""
    monkeypatch.setenv("LGESEG_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_install_with_a_name_makes_the_model_callable_by_that_name(home: Path, tmp_path: Path, tiny_model: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    archive = export_model(tiny_model, tmp_path / "exported.zip")
    assert install_main([str(archive), "--name", "my-lv"]) == 0
    assert "-m my-lv" in capsys.readouterr().out  # the printed command uses the name
    entry = resolve_model("my-lv")
    assert (entry.source, entry.path) == ("installed", home / "models" / "my-lv")
    assert predict_main(["--list-models"]) == 0
    listed = capsys.readouterr().out
    assert "my-lv" in listed and "installed" in listed


def test_bad_names_and_unknown_models_get_a_clear_answer(home: Path, tmp_path: Path, tiny_model: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    archive = export_model(tiny_model, tmp_path / "exported.zip")
    with pytest.raises(SystemExit):
        install_main([str(archive), "--name", "../escape"])
    assert "a model name is" in capsys.readouterr().err
    assert not (tmp_path / "escape").exists()
    code = predict_main(["-i", str(tmp_path), "-o", str(tmp_path / "out"), "-m", "no-such-model"])
    assert code == 1
    assert "no installed or shipped model of that name" in capsys.readouterr().err


def test_an_ensemble_folder_stands_for_all_its_members(tmp_path: Path, make_model: Callable[..., Path],
                                                       write_input_image: Callable[..., object]) -> None:
    for k in range(3):
        make_model(tmp_path / "ensemble" / f"fold_{k}", seed=k)
    assert [p.name for p in resolve_model_folders([tmp_path / "ensemble"])] == ["fold_0", "fold_1", "fold_2"]
    (tmp_path / "images").mkdir()
    write_input_image(tmp_path / "images" / "p1_0000.nii.gz", (2, 24, 24))
    assert predict_main(["-i", str(tmp_path / "images"), "-o", str(tmp_path / "out"), "-m",
                         str(tmp_path / "ensemble"), "--device", "cpu", "--no-mirroring"]) == 0
    assert (tmp_path / "out" / "p1.nii.gz").is_file()


def test_a_folder_wins_over_a_name_and_a_file_is_refused(tmp_path: Path, make_model: Callable[..., Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    make_model(tmp_path / "lge-lv")
    assert resolve_model("lge-lv").source == "folder"
    (tmp_path / "model.zip").write_bytes(b"PK")
    with pytest.raises(NotADirectoryError, match="installed with lgeseg_install_model"):
        resolve_model("model.zip")


def test_installed_models_come_before_shipped_ones_of_the_same_name(home: Path, make_model: Callable[..., Path]) \
        -> None:
    shipped = {e.name for e in list_models() if e.source == "shipped"}
    name = next(iter(shipped), "lge-lv")
    make_model(home / "models" / name)
    assert resolve_model(name).source == "installed"
    assert [e.name for e in list_models()].count(name) == 1
