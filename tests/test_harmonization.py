"""Harmonization: histogram matching (fit/apply, CLI) and a tiny CycleGAN (train, resume, apply)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from lgeseg.cli.harmonize import main as harmonize_main
from lgeseg.core.records import CaseGeometry
from lgeseg.files import io
from lgeseg.harmonization import (
    apply_harmonization,
    body_mask,
    fit_reference,
    fit_reference_from_preprocessed,
    load_reference,
    match_histogram,
    write_reference,
)
from lgeseg.harmonization.cyclegan import CycleGANConfig, read_info
from lgeseg.harmonization.cyclegan_train import train_cyclegan
from lgeseg.harmonization.histogram import HistogramReference, normalized_body_values
from lgeseg.preprocessing import load_case_arrays, load_preprocessed
from lgeseg.synth import generate_case
from lgeseg.training import load_checkpoint
from lgeseg.workflows.plan_and_preprocess import plan_and_preprocess

TINY_GAN = CycleGANConfig(generator_features=4, generator_blocks=1, discriminator_features=4, discriminator_layers=2,
                          patch_size=(32, 32), epochs=2, iterations_per_epoch=6, pool_size=4, seed=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _case(center: int, index: int) -> tuple[np.ndarray, np.ndarray, CaseGeometry]:
    return generate_case(center, index, seed=0, in_plane_size=48, num_slices=3)


@pytest.fixture(scope="module")
def reference_images() -> list[np.ndarray]:
    return [_case(1, i)[0] for i in range(3)]


@pytest.fixture(scope="module")
def preprocessed(preprocessed_centers: dict[str, Path]) -> tuple[Path, Path]:
    """The GAN's two domains: the preprocessed center1 (source) and center2 (target) of conftest; read-only."""
    return preprocessed_centers["center1"], preprocessed_centers["center2"]


def _raw_images(raw: Path) -> list[np.ndarray]:
    """The images of the raw dataset ``raw``, in case order (read from its folder, not from any record)."""
    return [io.read_image(path)[0] for path in sorted((raw / "imagesTr").glob("*_0000.nii.gz"))]


@pytest.fixture(scope="module")
def trained_gan(preprocessed: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    gan_dir = tmp_path_factory.mktemp("gan") / "gan"
    train_cyclegan(*preprocessed, gan_dir, TINY_GAN, device="cpu")
    return gan_dir


def test_histogram_matching_moves_foreground_histogram_towards_reference(reference_images):
    reference = fit_reference(reference_images)
    image = _case(3, 7)[0] * 3.0 + 40.0  # another center, on another intensity scale
    matched = match_histogram(image, reference)
    mask = body_mask(image)
    pooled_raw = np.concatenate([im[body_mask(im)] for im in reference_images])
    pooled_normalized = np.concatenate([normalized_body_values(im) for im in reference_images])
    assert wasserstein_distance(matched[mask], pooled_raw) < 0.5 * wasserstein_distance(image[mask], pooled_raw)
    before = wasserstein_distance(normalized_body_values(image, mask), pooled_normalized)
    after = wasserstein_distance(normalized_body_values(matched, mask), pooled_normalized)
    assert after < before
    assert matched.shape == image.shape and matched.dtype == np.float32


def test_match_histogram_is_monotone_and_extrapolates_beyond_the_landmarks(reference_images):
    reference = fit_reference(reference_images, landmarks=(5, 25, 50, 75, 95))
    image = np.random.default_rng(0).gamma(2.0, 30.0, size=(3, 32, 32)).astype(np.float32)
    matched = match_histogram(image, reference, mask=np.ones(image.shape, bool))
    order = np.argsort(image, axis=None)
    assert np.all(np.diff(matched.ravel()[order]) >= -1e-4)
    top = np.percentile(image, 95)
    assert matched.max() > reference.raw_low + reference.quantiles[-1] * (reference.raw_high - reference.raw_low)
    assert image.max() > top  # the brightest voxels lie beyond the last landmark and were not clipped


def test_reference_round_trips_through_the_model_folder(reference_images, tmp_path):
    reference = fit_reference(reference_images)
    write_reference(tmp_path, reference)
    assert load_reference(tmp_path) == [reference]
    with pytest.raises(FileNotFoundError, match="fit-reference"):
        load_reference(tmp_path / "empty")
    with pytest.raises(ValueError, match="landmarks"):
        HistogramReference(landmarks=(50, 10), quantiles=(0.1, 0.2), raw_low=0, raw_high=1, num_images=1)


def test_histogram_cli_writes_images_on_the_input_grid(reference_images, tmp_path):
    train_dir, test_dir = tmp_path / "imagesTr", tmp_path / "imagesTs"
    for index, image in enumerate(reference_images):
        io.write_image(train_dir / f"c1_{index:03d}_0000.nii.gz", image, _case(1, index)[2])
    image, _, geometry = _case(4, 2)
    io.write_image(test_dir / "c4_002_0000.nii.gz", image, geometry)
    model = tmp_path / "model"
    assert harmonize_main(["fit-reference", "-i", str(train_dir), "-m", str(model)]) == 0
    assert harmonize_main(["histogram", "-i", str(test_dir), "-o", str(tmp_path / "out"), "-m", str(model)]) == 0
    out, out_geometry = io.read_image(tmp_path / "out" / "c4_002_0000.nii.gz")
    assert io.geometry_mismatch(out_geometry, geometry) == []
    assert not np.allclose(out, image)
    in_memory = apply_harmonization(image[None], geometry, "histogram", model)
    np.testing.assert_allclose(in_memory[0], out, rtol=1e-5, atol=1e-3)


def test_reference_from_preprocessed_cases_uses_their_raw_images(preprocessed, raw_centers, tmp_path):
    _, pre = preprocessed
    assert harmonize_main(["fit-reference", "--preprocessed", str(pre), "-m", str(tmp_path / "m")]) == 0
    expected = fit_reference(_raw_images(raw_centers["center2"]))
    assert load_reference(tmp_path / "m") == [expected]
    assert expected != fit_reference([load_case_arrays(npz)[0][0] for _, npz in load_preprocessed(pre)])


def test_reference_of_a_model_trained_on_two_folders_uses_the_cases_of_both(preprocessed, raw_centers, tmp_path):
    references = fit_reference_from_preprocessed(list(preprocessed), tmp_path / "m", datasets=["center1", "center2"])
    assert references == [fit_reference(_raw_images(raw_centers["center1"]) + _raw_images(raw_centers["center2"]))]


def test_reference_skips_the_label_when_case_ids_end_in_four_digits(raw_centers, tmp_path):
    raw = tmp_path / "raw" / "myops"  # MyoPS-style ids: labelsTr/myops_3016.nii.gz looks like channel 3016 of 'myops'
    for sub in ("imagesTr", "labelsTr"):
        (raw / sub).mkdir(parents=True)
    (raw / "dataset.json").write_bytes((raw_centers["center2"] / "dataset.json").read_bytes())
    for index, image in enumerate(sorted((raw_centers["center2"] / "imagesTr").glob("*_0000.nii.gz"))):
        label = raw_centers["center2"] / "labelsTr" / image.name.replace("_0000", "")
        (raw / "imagesTr" / f"myops_{3001 + index}_0000.nii.gz").write_bytes(image.read_bytes())
        (raw / "labelsTr" / f"myops_{3001 + index}.nii.gz").write_bytes(label.read_bytes())
    plan_and_preprocess([raw], tmp_path / "pre", preset="cpu")
    references = fit_reference_from_preprocessed(tmp_path / "pre", tmp_path / "m")
    assert references == [fit_reference(_raw_images(raw_centers["center2"]))]  # one channel, images only


def test_histogram_cli_reports_a_missing_reference(tmp_path, capsys):
    image, _, geometry = _case(2, 0)
    io.write_image(tmp_path / "x.nii.gz", image, geometry)
    assert harmonize_main(["histogram", "-i", str(tmp_path / "x.nii.gz"), "-o", str(tmp_path / "o"),
                           "-m", str(tmp_path / "nomodel")]) == 1
    assert "harmonization_reference.json" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_tiny_cyclegan_trains_and_its_cycle_loss_falls(trained_gan):
    info = read_info(trained_gan)
    assert info.epochs_trained == TINY_GAN.epochs
    history = load_checkpoint(trained_gan / "checkpoint_latest.pt")["history"]
    assert history["cycle"][-1] < history["cycle"][0]
    final = load_checkpoint(trained_gan / "checkpoint_final.pt")
    assert set(final["network"]) == {"source_to_target", "target_to_source"}
    assert (trained_gan / "progress.png").is_file()
    assert (trained_gan / "examples" / f"epoch_{TINY_GAN.epochs:03d}.png").is_file()


def test_cyclegan_apply_writes_the_input_grid(trained_gan, tmp_path):
    image, _, geometry = _case(3, 9)
    io.write_image(tmp_path / "in" / "c3_009_0000.nii.gz", image, geometry)
    argv = ["cyclegan-apply", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-g", str(trained_gan)]
    assert harmonize_main(argv) == 0
    out, out_geometry = io.read_image(tmp_path / "out" / "c3_009_0000.nii.gz")
    assert io.geometry_mismatch(out_geometry, geometry) == []
    assert np.all(np.isfinite(out)) and out.min() >= image.min() - 1e-3 and out.max() <= image.max() + 1e-3


def test_cyclegan_resume_continues_exactly_where_it_stopped(preprocessed, trained_gan, tmp_path):
    train_cyclegan(*preprocessed, tmp_path / "gan", TINY_GAN, device="cpu", epochs=1)
    assert read_info(tmp_path / "gan").epochs_trained == 1
    assert harmonize_main(["cyclegan-train", "--source", "x", "--target", "y", "-o", str(tmp_path / "gan"),
                           "--continue", "--device", "cpu", "--epochs", str(TINY_GAN.epochs)]) == 0
    resumed = load_checkpoint(tmp_path / "gan" / "checkpoint_latest.pt")
    straight = load_checkpoint(trained_gan / "checkpoint_latest.pt")
    assert len(resumed["history"]["cycle"]) == TINY_GAN.epochs
    for key, tensor in straight["network"]["target_to_source"].items():
        torch.testing.assert_close(resumed["network"]["target_to_source"][key], tensor, rtol=1e-4, atol=1e-5)


def test_cyclegan_train_refuses_to_overwrite_without_continue(preprocessed, trained_gan):
    with pytest.raises(ValueError, match="--continue"):
        train_cyclegan(*preprocessed, trained_gan, TINY_GAN, device="cpu")
