"""nnU-Net v2 habits: flag spellings, dataset ids, labels from dataset.json, ensemble-readable probabilities."""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lgeseg.cli.evaluate import main as evaluate_main
from lgeseg.cli.predict import main as predict_main
from lgeseg.cli.train import main as train_main
from lgeseg.cli.validate import main as validate_main
from lgeseg.core.records import CaseGeometry, save_json
from lgeseg.datasets.layout import load_dataset_info, resolve_dataset
from lgeseg.evaluation.metrics import evaluate_folders
from lgeseg.files import io
from lgeseg.inference import predict_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPACING = (5.0, 1.5, 0.7)
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, make_model: Callable[..., Path]) -> Path:
    """A parent folder with fold_0 and fold_1 (nnU-Net's layout)."""
    root = tmp_path_factory.mktemp("models")
    make_model(root / "fold_0")
    shutil.copytree(root / "fold_0", root / "fold_1")
    return root


@pytest.fixture()
def write_inputs(write_input_image: Callable[..., CaseGeometry]) -> Callable[[Path, int], CaseGeometry]:
    """``write_inputs(folder, count) -> geometry``: images ``case<i>_0000.nii.gz`` of shape (3, 33, 29), i < count."""
    def write(folder: Path, count: int) -> CaseGeometry:
        geometries = [write_input_image(folder / f"case{i}_0000.nii.gz", (3, 33, 29), seed=i) for i in range(count)]
        return geometries[0]
    return write


def test_nnunet_flag_spellings_predict_the_folds_and_write_what_nnunet_ensemble_reads(
        tmp_path: Path, models: Path, write_inputs: Callable) -> None:
    geometry = write_inputs(tmp_path / "in", 2)
    args = ["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(models), "-f", "0", "1",
            "-chk", "checkpoint_final.pth", "--disable_tta", "--save_probabilities", "-npp", "2", "-nps", "2",
            "-device", "cpu", "-step_size", "0.5", "--postprocess", "none"]
    assert predict_main(args) == 0
    out = tmp_path / "out"
    # What nnUNetv2_ensemble does with a folder: dataset.json + plans.json, then per case npz + pkl.
    dataset_json = json.loads((out / "dataset.json").read_text())
    plans = json.loads((out / "plans.json").read_text())
    assert dataset_json["file_ending"] == ".nii.gz" and plans["image_reader_writer"] == "SimpleITKIO"
    assert dataset_json["labels"] == {"background": 0, "blood_pool": 1, "myocardium": 2}
    for case in ("case0", "case1"):
        probabilities = np.load(out / f"{case}.npz")["probabilities"]
        with open(out / f"{case}.pkl", "rb") as handle:
            properties = pickle.load(handle)
        merged = sitk.GetImageFromArray(probabilities.argmax(0).astype(np.uint8))  # nnU-Net's SimpleITKIO.write_seg
        merged.SetSpacing(properties["sitk_stuff"]["spacing"])
        merged.SetOrigin(properties["sitk_stuff"]["origin"])
        merged.SetDirection(properties["sitk_stuff"]["direction"])
        sitk.WriteImage(merged, str(tmp_path / f"{case}_merged.nii.gz"))
        ours, our_geometry = io.read_label(out / f"{case}.nii.gz")
        theirs, their_geometry = io.read_label(tmp_path / f"{case}_merged.nii.gz")
        np.testing.assert_array_equal(theirs, ours)
        assert io.geometry_mismatch(their_geometry, geometry, tolerance=1e-6) == []
        assert properties["spacing"] == pytest.approx(list(geometry.spacing))


def test_folds_that_do_not_exist_are_named(tmp_path: Path, models: Path, write_inputs: Callable) -> None:
    write_inputs(tmp_path / "in", 1)
    assert predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(models), "-f", "4"]) == 1
    with pytest.raises(SystemExit) as exit_info:  # -chk with a name nnU-Net does not have either
        predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(models), "-chk", "x.pth"])
    assert exit_info.value.code == 2


def test_parts_predict_each_case_exactly_once(tmp_path: Path, models: Path, write_inputs: Callable) -> None:
    write_inputs(tmp_path / "in", 5)
    model = [models / "fold_0"]
    names = []
    for part in range(2):
        written = predict_folder(tmp_path / "in", tmp_path / "out", model, device="cpu", mirroring=False,
                                 num_parts=2, part_id=part, num_readers=2, num_writers=2)
        names.append({p.name for p in written})
    assert names[0] == {"case0.nii.gz", "case2.nii.gz", "case4.nii.gz"}
    assert names[1] == {"case1.nii.gz", "case3.nii.gz"}
    with pytest.raises(ValueError, match="part-id"):
        predict_folder(tmp_path / "in", tmp_path / "out2", model, device="cpu", num_parts=2, part_id=2)


def _label_maps(root: Path, extra_label: int) -> None:
    geometry = CaseGeometry(shape=(3, 12, 12), spacing=SPACING, origin=(0.0, 0.0, 0.0), direction=IDENTITY)
    ref = np.zeros(geometry.shape, np.uint8)
    ref[:, 2:9, 2:9] = 2
    ref[:, 4:7, 4:7] = 1
    ref[:, 10:12, 0:4] = extra_label
    pred = ref.copy()
    pred[:, 10:12, 0:2] = 0  # half of the extra structure missed
    io.write_label(root / "pred" / "a.nii.gz", pred, geometry)
    io.write_label(root / "ds" / "labelsTr" / "a.nii.gz", ref, geometry)


def test_evaluation_scores_every_label_of_dataset_json_and_regions_as_unions(tmp_path: Path) -> None:
    _label_maps(tmp_path, extra_label=3)
    labels = {"background": 0, "blood_pool": 1, "myocardium": 2, "scar": 3}
    save_json({"channel_names": {"0": "LGE"}, "labels": labels, "numTraining": 1, "file_ending": ".nii.gz"},
              tmp_path / "ds" / "dataset.json")
    assert evaluate_main(["-p", str(tmp_path / "pred"), "-r", str(tmp_path / "ds"), "-o", str(tmp_path / "m")]) == 0
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["structures"]["scar"]["dice"]["mean"] == pytest.approx(2 * 4 * 3 / (8 * 3 + 4 * 3))
    assert summary["structures"]["lv"]["dice"]["mean"] == 1.0 and summary["undeclared_label_values"] == []
    # Without the label in dataset.json the value is reported, not silently dropped.
    regions = {"background": 0, "cavity": 1, "wall_and_scar": [2, 3]}
    summary = evaluate_folders(tmp_path / "pred", tmp_path / "ds", tmp_path / "m2", labels=regions)
    assert set(summary["structures"]) == {"cavity", "wall_and_scar"} and summary["clinical"] == {}
    assert summary["structures"]["wall_and_scar"]["dice"]["mean"] < 1.0
    summary = evaluate_folders(tmp_path / "pred", tmp_path / "ds", tmp_path / "m3")
    assert summary["undeclared_label_values"] == [3]


def test_region_based_labels_are_refused_for_training_with_a_message_saying_so(tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "ds" / "imagesTr").mkdir(parents=True)
    save_json({"channel_names": {"0": "LGE"}, "labels": {"background": 0, "lv": [1, 2], "myocardium": 2},
               "regions_class_order": [1, 2], "numTraining": 0, "file_ending": ".nii.gz"},
              tmp_path / "ds" / "dataset.json")
    with pytest.raises(ValueError, match="region-based"):
        load_dataset_info(tmp_path / "ds")
    assert validate_main([str(tmp_path / "ds"), "--headers-only"]) == 1
    assert "does not support region-based training" in capsys.readouterr().out


def test_a_dataset_id_resolves_under_nnunet_raw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "Dataset004_LGE").mkdir()
    (tmp_path / "Dataset012_Cine").mkdir()
    for spec in ("4", "004", "Dataset004", "Dataset004_LGE"):
        assert resolve_dataset(spec, tmp_path) == tmp_path / "Dataset004_LGE"
    with pytest.raises(FileNotFoundError, match="Dataset007_"):
        resolve_dataset("7", tmp_path)
    with pytest.raises(FileNotFoundError, match="nnUNet_raw"):
        resolve_dataset("12", None)
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    assert validate_main(["12", "--headers-only"]) == 1  # found, and reported as an empty dataset
    assert "Dataset012_Cine" in capsys.readouterr().out


# --- issue 25 item 1: nnU-Net's flags are read as nnU-Net means them, or refused with what to type -------------


def test_nnunet_flags_are_no_longer_read_as_prefixes_of_other_options(tmp_path: Path, tiny_model: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture) -> None:
    for name in ("nnUNet_results", "nnUNet_preprocessed", "nnUNet_raw"):
        monkeypatch.delenv(name, raising=False)
    io_args = ["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out")]
    assert predict_main([*io_args, "-d", "4"]) == 1  # was: -device 4, "Invalid device string: '4'"
    assert "set nnUNet_results" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # was: -part_id nnUNetPlans, "--part-id: invalid int"
        predict_main([*io_args, "-m", str(tiny_model), "-p", "nnUNetPlans"])
    assert usage.value.code == 2 and "give -d ID too" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # was: silently -chk best
        predict_main([*io_args, "-m", str(tiny_model), "-c", "best"])
    assert "the checkpoint is -chk/--checkpoint best" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        predict_main([*io_args, "-m", str(tiny_model), "--chec", "best"])  # no abbreviation of --checkpoint
    assert "unrecognized arguments: --chec best" in capsys.readouterr().err
    from lgeseg.cli.finetune import build_parser as finetune_parser

    args = finetune_parser().parse_args(["-m", "a", "-p", "b", "-o", "c", "-device", "cpu"])  # was: "cpu" unrecognized
    assert args.device == "cpu"
    with pytest.raises(SystemExit):
        train_main(["4", "2d", "0"])  # nnU-Net's positional form without nnU-Net's folders: what to type instead
    assert "or type: lgeseg_train -p PREPROCESSED -o MODEL_FOLDER --fold 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["4", "3d_fullres", "0"])
    assert "lgeseg has one configuration, 2d" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["-p", "nnUNetPlans", "-o", str(tmp_path / "m")])
    assert "-p is the preprocessed folder, not nnU-Net's plans identifier" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["-p", str(tmp_path), "-o", str(tmp_path / "m"), "-tr", "nnUNetTrainerDA5"])
    assert "lgeseg has no trainer classes; a variant is a recipe" in capsys.readouterr().err


def test_nnunet_positional_training_and_prediction_by_dataset_id(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_preprocessed: Callable[..., Path],
        write_inputs: Callable) -> None:
    make_preprocessed(tmp_path / "pre" / "Dataset004_LGE" / "lgesegPlans_2d", {"Dataset004_LGE": 3})
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    assert train_main(["4", "2d", "0", "-tr", "nnUNetTrainer_1epochs", "--iterations-per-epoch", "2", "-device",
                       "cpu", "-np", "0", "--augmentation", "none", "--time-budget", "30"]) == 0
    model = tmp_path / "results" / "Dataset004_LGE" / "lgesegTrainer__lgesegPlans__2d" / "fold_0"
    info = json.loads((model / "model.json").read_text())
    assert info["recipe"]["name"] == "nnunet" and info["recipe"]["epochs"] == 1 and info["fold"] == 0
    assert info["recipe"]["max_minutes"] == 30
    assert "ETA " in (model / "training_log.txt").read_text()
    write_inputs(tmp_path / "in", 1)
    assert predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-d", "Dataset004", "-c", "2d",
                         "-f", "0", "--disable_tta", "-device", "cpu"]) == 0
    assert (tmp_path / "out" / "case0.nii.gz").is_file()


# --- issue 25 item 2: nnU-Net's plans and trained model folders ------------------------------------------------


def nnunet_plans(network_class: str = "PlainConvUNet", norm: str = "InstanceNorm2d") -> dict:
    """An nnU-Net v2 (>= 2.4) nnUNetPlans.json with a 2d and a 3d_fullres configuration, as the planner writes it."""
    arch = {"network_class_name": f"dynamic_network_architectures.architectures.unet.{network_class}",
            "arch_kwargs": {"n_stages": 2, "features_per_stage": [4, 8], "conv_op": "torch.nn.modules.conv.Conv2d",
                            "kernel_sizes": [[3, 3], [3, 3]], "strides": [[1, 1], [2, 2]],
                            "n_conv_per_stage": [2, 2], "n_conv_per_stage_decoder": [2], "conv_bias": True,
                            "norm_op": f"torch.nn.modules.instancenorm.{norm}",
                            "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
                            "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                            "nonlin_kwargs": {"inplace": True}},
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}
    resampling = {"resampling_fn_data": "resample_data_or_seg_to_shape",
                  "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
                  "resampling_fn_seg": "resample_data_or_seg_to_shape",
                  "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None}}
    return {
        "dataset_name": "Dataset004_LGE", "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [5.0, 1.5, 0.7], "original_median_shape_after_transp": [3, 33, 29],
        "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "configurations": {
            "2d": {"data_identifier": "nnUNetPlans_2d", "preprocessor_name": "DefaultPreprocessor", "batch_size": 7,
                   "patch_size": [32, 28], "median_image_size_in_voxels": [33.0, 29.0], "spacing": [1.5, 0.7],
                   "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False], **resampling,
                   "architecture": arch, "batch_dice": True},
            "3d_fullres": {"data_identifier": "nnUNetPlans_3d_fullres", "batch_size": 2, "patch_size": [3, 32, 28],
                           "spacing": [5.0, 1.5, 0.7], "normalization_schemes": ["ZScoreNormalization"]}},
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {"max": 900.0, "mean": 300.0, "median": 290.0,
                                                              "min": 0.0, "percentile_00_5": 10.0,
                                                              "percentile_99_5": 800.0, "std": 120.0}}}


DATASET_JSON = {"channel_names": {"0": "LGE"}, "labels": {"background": 0, "blood_pool": 1, "myocardium": 2},
                "numTraining": 3, "file_ending": ".nii.gz", "name": "Dataset004_LGE"}


def plain_conv_unet_state_dict(ours: dict, stages: int, convs: int) -> dict:
    """lgeseg weights under dynamic_network_architectures' PlainConvUNet names (checked against its 0.4.4: equal
    outputs), with the copies nnU-Net's state dict holds: ``all_modules`` and the decoder's ``encoder``."""
    theirs = {}

    def stacked(source: str, target: str) -> None:
        for c in range(convs):
            for index, part in enumerate(("conv", "norm")):
                for kind in ("weight", "bias"):
                    tensor = ours[f"{source}.{c}.{index}.{kind}"].clone()
                    theirs[f"{target}.convs.{c}.{part}.{kind}"] = tensor
                    theirs[f"{target}.convs.{c}.all_modules.{index}.{kind}"] = tensor
    for s in range(stages):
        stacked(f"encoder_blocks.{s}", f"encoder.stages.{s}.0")
        stacked(f"encoder_blocks.{s}", f"decoder.encoder.stages.{s}.0")
    for j in range(stages - 1):
        stacked(f"decoder_blocks.{j}.convs", f"decoder.stages.{j}")
        for kind in ("weight", "bias"):
            theirs[f"decoder.transpconvs.{j}.{kind}"] = ours[f"decoder_blocks.{j}.upsample.{kind}"].clone()
            theirs[f"decoder.seg_layers.{j}.{kind}"] = ours[f"heads.{j}.{kind}"].clone()
    return theirs


def write_nnunet_results(root: Path, plans: dict, weights: dict) -> Path:
    """$nnUNet_results/Dataset004_LGE/nnUNetTrainer__nnUNetPlans__2d with fold_0/checkpoint_final.pth as nnU-Net
    saves it (network weights, optimizer, NumPy numbers in the log, a torch.device in init_args)."""
    import torch

    folder = root / "Dataset004_LGE" / "nnUNetTrainer__nnUNetPlans__2d"
    save_json(plans, folder / "plans.json")
    save_json(DATASET_JSON, folder / "dataset.json")
    (folder / "fold_0").mkdir(parents=True)
    torch.save({"network_weights": weights, "optimizer_state": {"state": {}, "param_groups": []},
                "grad_scaler_state": None, "_best_ema": np.float64(0.81), "current_epoch": 1000,
                "logging": {"mean_fg_dice": [np.float64(0.7), np.float64(0.8)], "ema_fg_dice": [np.float32(0.8)],
                            "dice_per_class_or_region": [[np.float64(0.8), np.float64(0.7)]],
                            "train_losses": [-0.5], "epoch_start_timestamps": [1.0e9]},
                "init_args": {"plans": plans, "configuration": "2d", "fold": 0, "dataset_json": DATASET_JSON,
                              "device": torch.device("cpu")},
                "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1)},
               folder / "fold_0" / "checkpoint_final.pth")
    return folder


def test_an_nnunet_2d_model_folder_predicts_as_the_same_weights_do_in_lgeseg(
        tmp_path: Path, write_inputs: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    from lgeseg.model.folder import ModelInfo, read_model_metadata, save_checkpoint, write_model_metadata
    from lgeseg.network import build_unet
    from lgeseg.planning.nnunet import plan_from_nnunet

    plans = nnunet_plans()
    plan = plan_from_nnunet(plans, DATASET_JSON)
    assert (plan.patch_size, plan.target_spacing, plan.batch_size) == ((32, 28), (5.0, 1.5, 0.7), 7)
    assert plan.normalization.scheme == "zscore" and plan.topology.features_per_stage == (4, 8)
    ours = build_unet(plan.topology, seed=3).state_dict()
    nnunet = write_nnunet_results(tmp_path / "results", plans, plain_conv_unet_state_dict(ours, 2, 2))
    lgeseg_model = tmp_path / "lgeseg_model"  # the same plan and weights as an lgeseg model folder
    write_model_metadata(lgeseg_model, plan, ModelInfo("0", dict(plan.labels), {"0": "LGE"}, recipe=None, datasets=(),
                                                       postprocessing="none"))
    save_checkpoint(lgeseg_model / "checkpoint_final.pt", {"network": ours})
    write_inputs(tmp_path / "in", 2)
    common = ["-i", str(tmp_path / "in"), "--disable_tta", "-device", "cpu", "--window", "sliding"]
    assert predict_main([*common, "-o", str(tmp_path / "theirs"), "-m", str(nnunet)]) == 0  # was: plans.json missing
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    assert predict_main([*common, "-o", str(tmp_path / "by_id"), "-d", "4", "-c", "2d", "-f", "0",
                         "-tr", "nnUNetTrainer", "-p", "nnUNetPlans", "-chk", "checkpoint_final.pth"]) == 0
    assert predict_main([*common, "-o", str(tmp_path / "ours"), "-m", str(lgeseg_model)]) == 0
    for case in ("case0", "case1"):
        expected, _ = io.read_label(tmp_path / "ours" / f"{case}.nii.gz")
        for folder in ("theirs", "by_id"):
            np.testing.assert_array_equal(io.read_label(tmp_path / folder / f"{case}.nii.gz")[0], expected)
    from lgeseg.inference.nnunet_model import load_nnunet_model
    info = load_nnunet_model(nnunet / "fold_0").info  # no lgeseg recipe; the trainer's name in extras
    assert info.recipe is None and info.augmentation == "none" and info.extras == {"nnunet_trainer": "nnUNetTrainer"}
    with pytest.raises(FileNotFoundError, match="a model folder of nnU-Net v2, not of lgeseg"):
        read_model_metadata(nnunet / "fold_0")  # fine-tuning or exporting it: the folder is named for what it is


def test_an_nnunet_network_lgeseg_does_not_have_is_refused_in_one_line_naming_what_differs(
        tmp_path: Path, write_inputs: Callable, capsys: pytest.CaptureFixture) -> None:
    from lgeseg.core.errors import InvalidInputError
    from lgeseg.planning.nnunet import plan_from_nnunet

    with pytest.raises(InvalidInputError, match="network_class_name: lgeseg needs PlainConvUNet, found "
                                                "ResidualEncoderUNet; norm_op: lgeseg needs InstanceNorm2d"):
        plan_from_nnunet(nnunet_plans("ResidualEncoderUNet", "BatchNorm2d"), DATASET_JSON)
    with pytest.raises(InvalidInputError, match="no '3d_lowres' configuration"):
        plan_from_nnunet(nnunet_plans(), DATASET_JSON, "3d_lowres")
    folder = write_nnunet_results(tmp_path / "results", nnunet_plans(norm="BatchNorm2d"), {})
    write_inputs(tmp_path / "in", 1)
    assert predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(folder)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "norm_op: lgeseg needs InstanceNorm2d, found " \
                                          "torch.nn.modules.instancenorm.BatchNorm2d" in err


def test_plans_from_nnunet_plans_json_preprocesses_with_its_2d_configuration(
        tmp_path: Path, make_raw_dataset: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from lgeseg.cli.plan_and_preprocess import main as plan_main
    from lgeseg.core.records import read_plan

    make_raw_dataset(tmp_path / "raw", "Dataset004_LGE", [(8.0, 1.5, 1.5)] * 2)
    nnunet_pre = tmp_path / "nnUNet_preprocessed" / "Dataset004_LGE"
    save_json(nnunet_plans(), nnunet_pre / "nnUNetPlans.json")  # nnU-Net's preprocessed folder: plans + dataset.json
    save_json(DATASET_JSON, nnunet_pre / "dataset.json")
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "nnUNet_preprocessed"))
    assert plan_main(["-d", "4", "-c", "2d", "--plans-from", str(nnunet_pre / "nnUNetPlans.json")]) == 0
    plan = read_plan(nnunet_pre / "lgesegPlans_2d" / "plans.json")  # beside nnU-Net's, where lgeseg_train 4 2d F looks
    assert (plan.patch_size, plan.target_spacing[1:], plan.batch_size) == ((32, 28), (1.5, 0.7), 7)
    assert plan.normalization.scheme == "zscore" and plan.topology.features_per_stage == (4, 8)
    assert plan.extras["nnunet"]["plans_name"] == "nnUNetPlans"
    assert len(list((nnunet_pre / "lgesegPlans_2d" / "Dataset004_LGE").glob("*.npz"))) == 2


# --- issue 25 item 7: one vocabulary --------------------------------------------------------------------------


def test_one_vocabulary_old_spellings_kept(tmp_path: Path, capsys: pytest.CaptureFixture,
                                           make_raw_dataset: Callable[..., Path]) -> None:
    _label_maps(tmp_path, extra_label=0)
    for flag, out in (("--pred", "m1"), ("-p", "m2")):  # -p kept for evaluate; --pred is the documented one
        assert evaluate_main([flag, str(tmp_path / "pred"), "-r", str(tmp_path / "ds"), "-o", str(tmp_path / out)]) == 0
    from lgeseg.cli import adapt, demo, experiments, finetune, harmonize, train

    parsers = [(train.build_parser(), []), (finetune.build_parser(), ["-m", "a", "-p", "b", "-o", "c"]),
               (adapt.build_parser(), ["-m", "a", "-i", "b", "-o", "c"]), (demo._parser(), []),
               (experiments._parser(), [])]
    for parser, required in parsers:
        assert parser.parse_args([*required, "-device", "cuda:1"]).device == "cuda:1"
        with pytest.raises(SystemExit):
            parser.parse_args([*required, "--device", "4"])
        assert "expected cpu, cuda, cuda:N" in capsys.readouterr().err
    apply_args = ["cyclegan-apply", "-i", "a", "-o", "b", "-g", "c", "-device", "mps"]
    assert harmonize._parser().parse_args(apply_args).device == "mps"
    for parser, required in parsers[:2]:
        args = parser.parse_args([*required, "-np", "2", "--time-budget", "90"])
        assert (args.num_workers, args.time_budget) == (2, 90.0)
    raw = make_raw_dataset(tmp_path / "raw", "center1", [(8.0, 1.5, 1.5)])
    for flag in ("-np", "--num-workers", "--workers"):
        assert validate_main([str(raw), "--headers-only", flag, "2"]) == 0


def test_predict_report_goes_from_images_to_the_report_in_one_command(tmp_path: Path, models: Path,
                                                                      write_inputs: Callable) -> None:
    write_inputs(tmp_path / "in", 1)
    args = ["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(models / "fold_0"), "--disable_tta",
            "--report"]
    assert predict_main(args) == 0
    assert (tmp_path / "out" / "report" / "index.html").is_file() and (tmp_path / "out" / "report" / "report.csv")
    assert predict_main(args) == 1  # a report already there: refused before predicting, unless --overwrite
    assert predict_main([*args, "--overwrite"]) == 0
