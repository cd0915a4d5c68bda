"""Sliding-window prediction and ``lgeseg_predict`` on tiny untrained models."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from lgeseg.cli.predict import main as predict_main
from lgeseg.core.records import CaseGeometry, NetworkTopology
from lgeseg.files import io
from lgeseg.inference import predict_folder, predict_slices
from lgeseg.inference.sliding_window import (
    foreground_box,
    localization_slices,
    prepare_for_inference,
    refine_window,
    ventricle_foreground,
)
from lgeseg.network import build_unet


@pytest.mark.parametrize("shape", [(3, 20, 26), (2, 70, 45)])
def test_tiled_prediction_equals_whole_slice_prediction_for_a_pointwise_network(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    network = torch.nn.Conv2d(2, 3, kernel_size=1).eval()  # each pixel's logits depend on that pixel only
    image = torch.randn(2, *shape)
    probabilities = predict_slices(network, image, (32, 32), step=0.5, mirroring=True, batch_size=3)
    with torch.no_grad():
        expected = torch.softmax(network(image.permute(1, 0, 2, 3)), dim=1).permute(1, 0, 2, 3).numpy()
    assert probabilities.shape == (3, *shape)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def _flip_sensitive_network() -> torch.nn.Module:
    """3x3 conv whose class-1 logit is high on bright voxels and depends on the neighbours asymmetrically,
    so each flipped pass gives different logits and a crop's border changes the result only 1 voxel deep."""
    network = torch.nn.Conv2d(1, 3, kernel_size=3, padding=1)
    with torch.no_grad():
        network.weight.zero_()
        network.bias.zero_()
        network.weight[0, 0, 1, 1] = -1.0
        network.weight[1, 0] = torch.tensor([[0.9, -0.4, 0.2], [0.3, 1.0, -0.7], [0.1, 0.5, -0.2]])
        network.bias[1] = -1.0
        network.bias[2] = -2.0  # background (class 0) wins on the noise
    return network.eval()


def _bright_square_image(foreground_slices: slice = slice(1, 2)) -> torch.Tensor:
    image = torch.randn(1, 3, 64, 80, generator=torch.Generator().manual_seed(0)) * 0.1
    image[:, foreground_slices, 20:30, 40:50] += 4.0  # foreground in slice 1 only by default
    return image


def test_foreground_box_covers_the_foreground_with_a_margin_and_fits_the_network() -> None:
    foreground = np.zeros((3, 64, 80), bool)
    foreground[1, 20:30, 40:52] = True
    ys, xs = foreground_box(foreground, minimum=(16, 16), divisor=(8, 8))
    assert ys.start <= 20 - 2 and ys.stop >= 30 + 2 and xs.start <= 40 - 2 and xs.stop >= 52 + 2
    assert (ys.stop - ys.start) % 8 == 0 and (xs.stop - xs.start) % 8 == 0
    assert 0 <= ys.start and ys.stop <= 64 and 0 <= xs.start and xs.stop <= 80
    big_ys, big_xs = foreground_box(foreground, minimum=(48, 48), divisor=(8, 8))
    assert big_ys.stop - big_ys.start == 48 and big_xs.stop - big_xs.start == 48  # never below the minimum
    assert foreground_box(np.zeros_like(foreground), minimum=(16, 16), divisor=(8, 8)) is None


def test_localizing_pass_ignores_small_islands_in_air_and_skips_at_most_every_other_slice() -> None:
    labels = np.zeros((5, 64, 64), np.uint8)
    labels[1:4, 20:40, 20:40] = 1  # the ventricle over three slices
    labels[2, 60:62, 1:3] = 2  # a false positive in the air: would stretch the box across the slice
    kept = ventricle_foreground(labels)
    assert kept[1:4, 20:40, 20:40].all() and not kept[2, 60:62, 1:3].any()
    ys, xs = foreground_box(kept, minimum=(16, 16), divisor=(1, 1))
    assert ys.stop <= 44 and xs.start >= 16
    assert not ventricle_foreground(np.zeros((2, 4, 4), np.uint8)).any()
    assert len(localization_slices(12)) == 7  # about half the slices: the localizing pass costs half
    for count in (1, 2, 3, 12, 13):
        chosen = localization_slices(count)
        assert chosen[0] == 0 and chosen[-1] == count - 1 and max(np.diff(chosen), default=1) <= 2


def test_refining_window_is_the_box_unless_it_is_much_larger_than_the_training_patch() -> None:
    assert refine_window((144, 128), (128, 128)) == (144, 128)  # one window: cheaper than 2 tiles
    assert refine_window((240, 128), (128, 128)) == (128, 128)  # tiles of the training patch
    assert refine_window((240, 96), (128, 128)) == (128, 96)


def test_roi_refinement_equals_the_whole_slice_result_around_the_foreground() -> None:
    network, image = _flip_sensitive_network(), _bright_square_image(slice(1, 3))  # the localizer skips slice 1
    whole = predict_slices(network, image, (64, 80), mirroring=True)
    roi = predict_slices(network, image, (64, 80), mirroring=True, roi_patch=(16, 16))
    plain = predict_slices(network, image, (64, 80), mirroring=False)
    ys, xs = foreground_box(ventricle_foreground(plain.argmax(0)), (16, 16), (1, 1))
    assert (ys.stop - ys.start, xs.stop - xs.start) == (16, 16)  # one training-patch window covers the box
    inner = (slice(None), slice(None), slice(ys.start + 1, ys.stop - 1), slice(xs.start + 1, xs.stop - 1))
    np.testing.assert_allclose(roi[inner], whole[inner], atol=1e-5)  # the crop changes only its 1-voxel rim
    outside = np.ones(plain.shape[2:], bool)
    outside[ys, xs] = False
    assert (roi[0][:, outside] > 0.999).all()  # background outside the box
    assert not np.allclose(roi[inner], plain[inner], atol=1e-3)  # the flipped passes did contribute
    assert (roi.argmax(0) == whole.argmax(0)).all()


def test_roi_refinement_finding_nothing_tiles_whole_slices_like_nnunet() -> None:
    network, image = _flip_sensitive_network(), _bright_square_image() * 0.0
    sliding = predict_slices(network, image, (16, 16), mirroring=True)
    roi = predict_slices(network, image, (64, 80), mirroring=True, roi_patch=(16, 16))
    np.testing.assert_allclose(roi, sliding, atol=1e-6)
    near_patch = predict_slices(network, image, (64, 80), mirroring=True, roi_patch=(48, 64))  # slice < 1.5 patches
    np.testing.assert_allclose(near_patch, predict_slices(network, image, (48, 64), mirroring=True), atol=1e-6)


def test_inference_speed_ups_do_not_change_the_network_output() -> None:
    network = build_unet(NetworkTopology(1, 3, (4, 8), ((3, 3), (3, 3)), ((1, 1), (2, 2))), seed=3).eval()
    network.deep_supervision = False
    x = torch.randn(2, 1, 16, 24)
    with torch.no_grad():
        before = network(x)[0]
        after = prepare_for_inference(network, torch.device("cpu"))(x)[0]
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in network.modules())
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-4)


def test_prediction_header_equals_oblique_anisotropic_input(tmp_path: Path, tiny_model: Path,
                                                        write_input_image: Callable[..., CaseGeometry]) -> None:
    geometry = write_input_image(tmp_path / "in" / "p1_0000.nii.gz", (4, 41, 37))
    write_input_image(tmp_path / "in" / "p2.mha", geometry.shape, seed=1)
    written = predict_folder(tmp_path / "in", tmp_path / "out", [tiny_model], device="cpu", save_probabilities=True,
                             overlays=True)
    assert [p.name for p in written] == ["p1.nii.gz", "p2.mha"]  # the input's file ending is kept
    for path in written:
        label, out_geometry = io.read_label(path)
        assert out_geometry.shape == geometry.shape
        assert io.geometry_mismatch(out_geometry, geometry, tolerance=1e-6) == []
        assert set(np.unique(label)) <= {0, 1, 2}
    probabilities = np.load(tmp_path / "out" / "p1.npz")["probabilities"]
    assert probabilities.shape == (3, *geometry.shape)
    np.testing.assert_allclose(probabilities.sum(0), 1.0, atol=1e-4)
    assert (tmp_path / "out" / "p1_overlay.png").stat().st_size > 1000


def test_output_inside_input_is_refused_and_existing_outputs_are_skipped(
        tmp_path: Path, tiny_model: Path, write_input_image: Callable[..., CaseGeometry]) -> None:
    geometry = write_input_image(tmp_path / "in" / "c_0000.nii.gz", (2, 30, 30))
    for out in (tmp_path / "in", tmp_path / "in" / "sub"):
        with pytest.raises(ValueError, match="inputs are never overwritten"):
            predict_folder(tmp_path / "in", out, [tiny_model], device="cpu")
    args = ["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(tiny_model), "--no-mirroring"]
    assert predict_main(args) == 0
    target = tmp_path / "out" / "c.nii.gz"
    io.write_label(target, np.zeros(geometry.shape, np.uint8), geometry)  # marker: must survive a rerun
    assert predict_folder(tmp_path / "in", tmp_path / "out", [tiny_model], device="cpu", mirroring=False) == []
    assert io.read_label(target)[0].max() == 0 and not (tmp_path / "in" / "sub").exists()
    assert len(predict_folder(tmp_path / "in", tmp_path / "out", [tiny_model], device="cpu", overwrite=True)) == 1


def test_predict_command_exits_fast_with_its_outputs_written_and_its_exit_code(
        tmp_path: Path, tiny_model: Path, write_input_image: Callable[..., CaseGeometry]) -> None:
    geometry = write_input_image(tmp_path / "in" / "c_0000.nii.gz", (2, 30, 30))
    entry = "from lgeseg.cli.predict import console_main; console_main()"  # what the lgeseg_predict command runs
    args = ["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(tiny_model), "--device", "cpu"]
    done = subprocess.run([sys.executable, "-c", entry, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote 1 prediction(s)" in done.stdout  # stdout flushed before the fast exit
    assert io.read_label(tmp_path / "out" / "c.nii.gz")[0].shape == geometry.shape
    failed = subprocess.run([sys.executable, "-c", entry, *args[:4], "-m", str(tmp_path / "nowhere")],
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "nowhere" in failed.stderr


def test_bad_inputs_and_models_give_one_message_naming_the_file(tmp_path: Path, tiny_model: Path,
                                                               write_input_image: Callable[..., CaseGeometry],
                                                               make_model: Callable[..., Path]) -> None:
    write_input_image(tmp_path / "two" / "c_0000.nii.gz", (2, 30, 30))
    write_input_image(tmp_path / "two" / "c_0001.nii.gz", (2, 30, 30))
    with pytest.raises(ValueError, match=r"c_0000.nii.gz.*2 channel file\(s\) but the model expects 1"):
        predict_folder(tmp_path / "two", tmp_path / "out", [tiny_model], device="cpu")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken_0000.nii.gz").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken_0000.nii.gz"):
        predict_folder(tmp_path / "bad", tmp_path / "out", [tiny_model], device="cpu")
    with pytest.raises(FileNotFoundError, match="no_such_model"):
        predict_folder(tmp_path / "two", tmp_path / "out", [tmp_path / "no_such_model"], device="cpu")
    other = make_model(tmp_path / "other", target_spacing=(6.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="cannot be ensembled"):
        predict_folder(tmp_path / "bad", tmp_path / "out", [tiny_model, other], device="cpu")
    assert not (tmp_path / "out").exists()


def test_ensemble_of_two_models_writes_labels_on_input_grid(tmp_path: Path, tiny_model: Path,
                                                           write_input_image: Callable[..., CaseGeometry],
                                                           make_model: Callable[..., Path]) -> None:
    second = make_model(tmp_path / "m2", seed=5)  # the same plan, other weights
    geometry = write_input_image(tmp_path / "in" / "e_0000.nrrd", (3, 33, 40))
    assert predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(tiny_model),
                         "-m", str(second), "--postprocess", "none"]) == 0
    label, out_geometry = io.read_label(tmp_path / "out" / "e.nrrd")  # the input ending is kept
    assert io.geometry_mismatch(out_geometry, geometry, tolerance=1e-6) == []


def test_whole_slice_window_is_padded_to_the_divisor_and_falls_back_to_tiles(tiny_model: Path) -> None:
    from lgeseg.inference.ensemble import MAX_WHOLE_SLICE, inference_window
    from lgeseg.training import load_model

    model = load_model(tiny_model)
    dy, dx = model.network.divisor
    py, px = model.plan.patch_size
    slice_shape = (py + dy * 5 + 1, px + dx * 3)  # larger than the patch, y not a multiple of the divisor
    assert inference_window(model, slice_shape, "slice") == (py + dy * 6, px + dx * 3)
    assert inference_window(model, (py // 2, px // 2), "slice") == (py, px)  # never below the patch
    assert inference_window(model, slice_shape, "sliding") == (py, px)
    huge = int(MAX_WHOLE_SLICE**0.5) + 64
    assert inference_window(model, (huge, huge), "slice") == tuple(model.plan.patch_size)
    with pytest.raises(ValueError, match="window"):
        inference_window(model, (10, 10), "tiles")


def test_sliding_window_and_whole_slice_predictions_agree_on_grid(
        tmp_path: Path, tiny_model: Path, write_input_image: Callable[..., CaseGeometry]) -> None:
    geometry = write_input_image(tmp_path / "in" / "case_0000.nii.gz", (3, 40, 36))
    for window in ("roi", "slice", "sliding"):
        written = predict_folder(tmp_path / "in", tmp_path / window, [tiny_model], device="cpu", mirroring=False,
                                 window=window)
        label, out_geometry = io.read_label(written[0])
        assert out_geometry.shape == geometry.shape
        assert set(np.unique(label)) <= {0, 1, 2}
