"""Test-time adaptation by entropy minimization (``lgeseg_predict --adapt entropy``) on tiny synthetic cases."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from lgeseg.cli.predict import main as predict_main
from lgeseg.files import io
from lgeseg.inference import load_models, predict_folder, predict_volume
from lgeseg.inference.adaptation import (
    AdaptationSettings,
    adapt_to_case,
    adapted,
    fit_to_window,
    mean_entropy,
    norm_affine_parameters,
)
from lgeseg.inference.sliding_window import InstanceNormAsGroupNorm, prepare_for_inference
from lgeseg.model.folder import LoadedModel
from lgeseg.network import build_unet

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ENTROPY = AdaptationSettings("entropy", steps=5, lr=5e-2)  # large steps: an untrained network is far from confident


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, make_model: Callable[..., Path]) -> Path:
    """An untrained tiny model (entropy minimization needs no trained weights) at ~raw_centers' 10 mm spacing."""
    return make_model(tmp_path_factory.mktemp("model"), target_spacing=(10.0, 9.0, 9.0), postprocessing="none")


def _case(raw_centers: dict[str, Path], index: int = 0) -> tuple[np.ndarray, object]:
    """(image (1, z, y, x), geometry) of synthetic case ``index`` of center 1."""
    path = sorted((raw_centers["center1"] / "imagesTr").iterdir())[index]
    image, geometry = io.read_image(path)
    return image[None].astype(np.float32), geometry


def _model(model_dir: Path) -> LoadedModel:
    return load_models([model_dir], torch.device("cpu"))[0]


def _preprocessed_slices(raw_centers: dict[str, Path]) -> torch.Tensor:
    image, _ = _case(raw_centers)
    return torch.from_numpy(image[:, :, :32, :32].copy())  # (C, z, y, x), a whole multiple of the divisor


def test_only_the_normalization_scale_and_shift_change_and_weights_come_back(model_dir: Path,
                                                                             raw_centers: dict[str, Path]) -> None:
    network = _model(model_dir).network
    image = _preprocessed_slices(raw_centers)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    flags = [p.requires_grad for p in network.parameters()]
    affine = {id(p) for p in norm_affine_parameters(network)}
    norm_keys = {name for name, p in network.named_parameters() if id(p) in affine}
    assert norm_keys and all(n.endswith((".weight", ".bias")) for n in norm_keys)
    with adapted(network, image, (32, 32), ENTROPY) as result:
        assert result is not None
        changed = {k for k, v in network.state_dict().items() if not torch.equal(v, before[k])}
        assert changed and changed <= norm_keys  # convolutions and heads untouched
    assert all(torch.equal(v, before[k]) for k, v in network.state_dict().items())  # restored bit for bit
    assert [p.requires_grad for p in network.parameters()] == flags


def test_adaptation_lowers_the_mean_prediction_entropy_of_the_case(model_dir: Path,
                                                                   raw_centers: dict[str, Path]) -> None:
    network = _model(model_dir).network
    image = _preprocessed_slices(raw_centers)
    slices, valid = fit_to_window(image, (32, 32))
    start = mean_entropy(network, slices, valid)
    result = adapt_to_case(network, image, (32, 32), ENTROPY)
    assert result.entropy_before == pytest.approx(start, rel=1e-4)
    assert result.entropy_after < 0.95 * result.entropy_before
    assert mean_entropy(network, slices, valid) == pytest.approx(result.entropy_after, rel=1e-6)


def test_adaptation_works_inside_inference_mode(model_dir: Path, raw_centers: dict[str, Path]) -> None:
    """A caller predicting under ``torch.inference_mode`` (image and all) still gets an adapted network."""
    network = _model(model_dir).network
    with torch.inference_mode():
        image = _preprocessed_slices(raw_centers).clone()
        with adapted(network, image, (32, 32), ENTROPY) as result:
            assert result is not None and result.entropy_after < result.entropy_before


def test_fit_to_window_pads_centred_and_crops_to_the_centre() -> None:
    image = torch.arange(2 * 5 * 7, dtype=torch.float32).reshape(1, 2, 5, 7)
    slices, valid = fit_to_window(image, (8, 4))  # y padded 5 -> 8, x cropped 7 -> 4
    assert slices.shape == (2, 1, 8, 4) and valid == (slice(1, 6), slice(0, 4))
    assert torch.equal(slices[:, 0, 1:6], image[0, :, :, 1:5]) and not slices[:, :, 0].any()


def test_adaptation_off_changes_nothing_and_adapted_cases_do_not_leak(model_dir: Path,
                                                                      raw_centers: dict[str, Path]) -> None:
    models = [_model(model_dir)]
    image, geometry = _case(raw_centers)
    plain = predict_volume(image, geometry, models, mirroring=True)
    off = predict_volume(image, geometry, models, mirroring=True, adaptation=AdaptationSettings("none"))
    adapted_once = predict_volume(image, geometry, models, mirroring=True, adaptation=ENTROPY)
    again = predict_volume(image, geometry, models, mirroring=True)
    assert np.array_equal(plain, off) and np.array_equal(plain, again)  # bit-identical, nothing left behind
    assert np.abs(adapted_once - plain).max() > 1e-3  # adaptation does change this case's prediction


def test_each_case_is_adapted_from_the_trained_weights(tmp_path: Path, model_dir: Path,
                                                       raw_centers: dict[str, Path]) -> None:
    """Predicting case A then B gives B exactly what predicting B alone gives (and the same again: deterministic)."""
    images = sorted((raw_centers["center1"] / "imagesTr").iterdir())
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / images[1].name).symlink_to(images[1])
    options = {"device": "cpu", "adapt": "entropy", "adapt_steps": 5, "adapt_lr": 5e-2, "save_probabilities": True}
    predict_folder(raw_centers["center1"] / "imagesTr", tmp_path / "both", [model_dir], **options)
    predict_folder(alone, tmp_path / "alone_out", [model_dir], **options)
    predict_folder(alone, tmp_path / "plain", [model_dir], device="cpu", save_probabilities=True)
    case_b = images[1].name.replace("_0000.nii.gz", ".npz")
    after_a = np.load(tmp_path / "both" / case_b)["probabilities"]
    assert np.array_equal(after_a, np.load(tmp_path / "alone_out" / case_b)["probabilities"])
    assert not np.array_equal(after_a, np.load(tmp_path / "plain" / case_b)["probabilities"])
    record = json.loads((tmp_path / "both" / "lgeseg_predictions.json").read_text())
    assert record["settings"]["adaptation"] == {"method": "entropy", "steps": 5, "lr": 0.05, "optimizer": "adam",
                                                "parameters": "normalization affine (weight, bias)"}
    plain_record = json.loads((tmp_path / "plain" / "lgeseg_predictions.json").read_text())
    assert plain_record["settings"]["adaptation"] is None


def test_predict_command_adapts_and_names_bad_adaptation_settings(tmp_path: Path, model_dir: Path,
                                                                  raw_centers: dict[str, Path],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    images = raw_centers["center1"] / "imagesTr"
    assert predict_main(["-i", str(images), "-o", str(tmp_path / "out"), "-m", str(model_dir), "--device", "cpu",
                         "--adapt", "entropy", "--adapt-steps", "1", "--no-mirroring"]) == 0
    record = json.loads((tmp_path / "out" / "lgeseg_predictions.json").read_text())
    assert record["settings"]["adaptation"]["steps"] == 1
    # other adaptation settings are other settings: refused without --overwrite, naming the change
    assert predict_main(["-i", str(images), "-o", str(tmp_path / "out"), "-m", str(model_dir), "--device", "cpu",
                         "--no-mirroring"]) == 1
    assert "adaptation" in capsys.readouterr().err
    assert predict_main(["-i", str(images), "-o", str(tmp_path / "o2"), "-m", str(model_dir), "--device", "cpu",
                         "--adapt", "entropy", "--adapt-steps", "0"]) == 1
    assert "adapt_steps must be at least 1, found 0" in capsys.readouterr().err


def test_a_network_without_normalization_layers_is_refused() -> None:
    with pytest.raises(ValueError, match="no affine normalization layer"):
        norm_affine_parameters(torch.nn.Conv2d(1, 3, 3))


def test_inference_form_of_instance_norm_is_adapted(model_dir: Path) -> None:
    network = build_unet(_model(model_dir).plan.topology, seed=0)
    count = len(norm_affine_parameters(network))
    prepare_for_inference(network, torch.device("cpu"))
    assert any(isinstance(m, InstanceNormAsGroupNorm) for m in network.modules())
    assert len(norm_affine_parameters(network)) == count


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_adaptation_runs_on_the_gpu_and_restores_the_weights(model_dir: Path, raw_centers: dict[str, Path]) -> None:
    model = load_models([model_dir], torch.device("cuda"))[0]
    image, geometry = _case(raw_centers)
    plain = predict_volume(image, geometry, [model])
    before = {k: v.clone() for k, v in model.network.state_dict().items()}
    adapted_case = predict_volume(image, geometry, [model], adaptation=ENTROPY)
    assert all(torch.equal(v, before[k]) for k, v in model.network.state_dict().items())
    assert np.abs(adapted_case - plain).max() > 1e-3
    assert np.allclose(predict_volume(image, geometry, [model]), plain, atol=1e-5)
