"""nnU-Net v2 plans (``nnUNetPlans.json``, a trained model's ``plans.json``) read as an lgeseg ``Plan``.

nnU-Net writes one plans file per dataset with several ``configurations``; lgeseg has one, a 2D
U-Net on short-axis slices, so the ``2d`` configuration is the one imported: its patch size,
in-plane spacing, batch size, normalization, resampling orders and network (features, kernels and
strides per stage, convolutions per stage). The labels and channels come from the ``dataset.json``
beside the plans (nnU-Net keeps them there), else lgeseg's defaults.

lgeseg's ``UNet2D`` is nnU-Net's ``PlainConvUNet`` in 2D (Conv-InstanceNorm-LeakyReLU stages,
strided convolutions down, transposed convolutions up, one segmentation head per decoder stage), so
such a plan maps field by field. Anything else (a residual encoder, batch norm, dropout, another
non-linearity, different convolution counts per stage, CT normalization, slices along another axis
than z) is refused with one line naming the field, what lgeseg needs and what the file holds.

Both plans layouts are read: nnU-Net >= 2.4's ``architecture`` block (``network_class_name``,
``arch_kwargs``) and the older flat fields (``UNet_class_name``, ``UNet_base_num_features``,
``conv_kernel_sizes``, ``pool_op_kernel_sizes``, ``n_conv_per_stage_encoder``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lgeseg.core.checks import plan_problems
from lgeseg.core.errors import InvalidInputError
from lgeseg.core.records import LABELS, PLANS_FILE, NetworkTopology, NormalizationConfig, Plan, load_json, read_plan
from lgeseg.datasets.layout import region_labels_problem

#: The configuration lgeseg imports (its one network is 2D).
CONFIGURATION = "2d"
#: nnU-Net's normalization classes lgeseg has an equal of: name -> lgeseg's ``NormalizationConfig``.
NORMALIZATIONS = {"ZScoreNormalization": NormalizationConfig("zscore"),
                  "RescaleTo01Normalization": NormalizationConfig("minmax", (0.0, 100.0))}
#: What an nnU-Net ``arch_kwargs`` must hold for lgeseg's UNet2D (field -> accepted class-name endings).
_LAYERS = {"conv_op": ("Conv2d",), "norm_op": ("InstanceNorm2d",), "nonlin": ("LeakyReLU",)}


def is_nnunet_plans(data: Any) -> bool:
    """True for the content of an nnU-Net v2 plans file (it has ``configurations``).

    Example:
        >>> is_nnunet_plans({"plans_name": "nnUNetPlans", "configurations": {"2d": {}}}), is_nnunet_plans({"name": "x"})
        (True, False)
    """
    return isinstance(data, dict) and isinstance(data.get("configurations"), dict)


def nnunet_configuration(plans: dict[str, Any], name: str = CONFIGURATION, source: str = "plans") -> dict[str, Any]:
    """The configuration ``name`` of an nnU-Net plans dict, with ``inherits_from`` resolved.

    Raises ``InvalidInputError`` naming ``source`` and the configurations there when it has none of that name.

    Example:
        >>> plans = {"configurations": {"2d": {"batch_size": 12, "patch_size": [256, 224]},
        ...                             "2d_big": {"inherits_from": "2d", "batch_size": 4}}}
        >>> nnunet_configuration(plans, "2d_big")
        {'batch_size': 4, 'patch_size': [256, 224]}
    """
    configurations = plans.get("configurations", {})
    if name not in configurations:
        raise InvalidInputError(f"{source}: no {name!r} configuration (found {', '.join(configurations) or 'none'}); "
                                "lgeseg uses nnU-Net's 2d configuration: plan it with nnUNetv2_plan_experiment")
    config, seen = dict(configurations[name]), {name}
    while "inherits_from" in config:
        parent = config.pop("inherits_from")
        if parent in seen or parent not in configurations:
            raise InvalidInputError(f"{source}: configurations.{name}.inherits_from: {parent!r} is missing or loops")
        seen.add(parent)
        config = {**configurations[parent], **config}
    return config


def _architecture(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(network class name, arch_kwargs) from either plans layout."""
    if "architecture" in config:
        arch = config["architecture"]
        return str(arch.get("network_class_name", "")), dict(arch.get("arch_kwargs", {}))
    strides = config.get("pool_op_kernel_sizes", [])
    base, top = int(config.get("UNet_base_num_features", 32)), int(config.get("unet_max_num_features", 512))
    return str(config.get("UNet_class_name", "")), {
        "n_stages": len(strides), "features_per_stage": [min(base * 2 ** i, top) for i in range(len(strides))],
        "conv_op": "torch.nn.modules.conv.Conv2d" if len(config.get("patch_size", [])) == 2 else "Conv3d",
        "kernel_sizes": config.get("conv_kernel_sizes", []), "strides": strides,
        "n_conv_per_stage": config.get("n_conv_per_stage_encoder", []),
        "n_conv_per_stage_decoder": config.get("n_conv_per_stage_decoder", []), "conv_bias": True,
        "norm_op": "InstanceNorm2d", "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None,
        "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}


def architecture_problems(class_name: str, kwargs: dict[str, Any]) -> list[str]:
    """What differs between an nnU-Net network and lgeseg's UNet2D, one ``field: lgeseg needs ..., found ...`` each.

    Example:
        >>> kwargs = {"conv_op": "torch.nn.modules.conv.Conv2d", "norm_op": "torch.nn.BatchNorm2d",
        ...           "nonlin": "torch.nn.LeakyReLU", "n_conv_per_stage": [2, 2], "n_conv_per_stage_decoder": [2]}
        >>> architecture_problems("dynamic_network_architectures.architectures.unet.ResidualEncoderUNet", kwargs)
        ['network_class_name: lgeseg needs PlainConvUNet, found ResidualEncoderUNet', 'norm_op: lgeseg needs \
InstanceNorm2d, found torch.nn.BatchNorm2d']
    """
    problems = []
    short = class_name.rsplit(".", 1)[-1]
    if short != "PlainConvUNet":
        problems.append(f"network_class_name: lgeseg needs PlainConvUNet, found {short or 'nothing'}")
    for field, endings in _LAYERS.items():
        value = str(kwargs.get(field))
        if not value.endswith(endings):
            problems.append(f"{field}: lgeseg needs {' or '.join(endings)}, found {value}")
    if kwargs.get("dropout_op") is not None:
        problems.append(f"dropout_op: lgeseg needs none, found {kwargs['dropout_op']}")
    if not (kwargs.get("norm_op_kwargs") or {"affine": True}).get("affine", False):
        problems.append("norm_op_kwargs.affine: lgeseg needs true, found false")
    slope = (kwargs.get("nonlin_kwargs") or {}).get("negative_slope", 0.01)
    if abs(float(slope) - 0.01) > 1e-9:
        problems.append(f"nonlin_kwargs.negative_slope: lgeseg needs 0.01, found {slope}")
    if kwargs.get("nonlin_first"):
        problems.append("nonlin_first: lgeseg needs false (norm before the non-linearity), found true")
    counts = {int(v) for v in list(kwargs.get("n_conv_per_stage", [])) + list(kwargs.get("n_conv_per_stage_decoder",
                                                                                          []))}
    if len(counts) > 1:
        problems.append(f"n_conv_per_stage / n_conv_per_stage_decoder: lgeseg needs one count for every stage, found "
                        f"{kwargs.get('n_conv_per_stage')} / {kwargs.get('n_conv_per_stage_decoder')}")
    return problems


def _labels_and_channels(dataset_json: dict[str, Any] | None, source: str) -> tuple[dict[str, int], int | None]:
    if not dataset_json:
        return dict(LABELS), None
    labels = dataset_json.get("labels", LABELS)
    problem = region_labels_problem(labels)
    if problem:
        raise InvalidInputError(f"{source}: dataset.json {problem}")
    channels = dataset_json.get("channel_names") or dataset_json.get("modality")
    return {str(k): int(v) for k, v in labels.items()}, (len(channels) if channels else None)


def _normalization(config: dict[str, Any], source: str) -> NormalizationConfig:
    schemes = list(config.get("normalization_schemes", ["ZScoreNormalization"]))
    unknown = sorted({s for s in schemes if s not in NORMALIZATIONS})
    if unknown or len(set(schemes)) > 1:
        raise InvalidInputError(f"{source}: configurations.2d.normalization_schemes: lgeseg needs one of "
                                f"{', '.join(NORMALIZATIONS)} for every channel, found {schemes}")
    return NORMALIZATIONS[schemes[0]]


def plan_from_nnunet(plans: dict[str, Any], dataset_json: dict[str, Any] | None = None,
                     configuration: str = CONFIGURATION, source: str = "nnUNetPlans.json") -> Plan:
    """The lgeseg ``Plan`` equal to an nnU-Net v2 plans dict's 2D configuration.

    Args:
        plans: the content of ``nnUNetPlans.json`` (or of a trained model's ``plans.json``).
        dataset_json: nnU-Net's ``dataset.json`` (labels, channel names); None: lgeseg's labels, and
            one channel per normalization scheme.
        configuration: the configuration to read (a 2D one).
        source: named in every error.

    Returns:
        The plan (preset ``"nnunet"``; ``extras.nnunet`` records the plans name, dataset and
        configuration). Raises ``InvalidInputError`` (a ``ValueError``) with one line naming ``source``
        and every field lgeseg cannot follow.

    Example:
        >>> arch = {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        ...         "arch_kwargs": {"n_stages": 3, "features_per_stage": [32, 64, 128],
        ...                         "conv_op": "torch.nn.modules.conv.Conv2d", "kernel_sizes": [[3, 3]] * 3,
        ...                         "strides": [[1, 1], [2, 2], [2, 2]], "n_conv_per_stage": [2, 2, 2],
        ...                         "n_conv_per_stage_decoder": [2, 2], "conv_bias": True,
        ...                         "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
        ...                         "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
        ...                         "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}}
        >>> plans = {"plans_name": "nnUNetPlans", "transpose_forward": [0, 1, 2],
        ...          "original_median_spacing_after_transp": [10.0, 1.4, 1.4],
        ...          "configurations": {"2d": {"batch_size": 24, "patch_size": [224, 192], "spacing": [1.4, 1.4],
        ...                                    "normalization_schemes": ["ZScoreNormalization"],
        ...                                    "architecture": arch}}}
        >>> plan = plan_from_nnunet(plans)
        >>> plan.patch_size, plan.target_spacing, plan.batch_size, plan.normalization.scheme
        ((224, 192), (10.0, 1.4, 1.4), 24, 'zscore')
        >>> plan.topology.features_per_stage, plan.topology.strides[1], plan.topology.conv_per_stage
        ((32, 64, 128), (2, 2), 2)
    """
    config = nnunet_configuration(plans, configuration, source)
    class_name, kwargs = _architecture(config)
    problems = architecture_problems(class_name, kwargs)
    transpose = list(plans.get("transpose_forward", [0, 1, 2]))
    if transpose[:1] != [0]:
        problems.append(f"transpose_forward: lgeseg needs the slices along z (first axis 0), found {transpose}")
    patch, spacing = list(config.get("patch_size", [])), list(config.get("spacing", []))
    if len(patch) != 2 or len(spacing) != 2:
        problems.append(f"configurations.{configuration}.patch_size/spacing: lgeseg needs 2 values (y, x), found "
                        f"{patch} / {spacing}")
    if problems:
        raise InvalidInputError(f"{source}: the {configuration} network is not one lgeseg's UNet2D can be: "
                                + "; ".join(problems))
    labels, channels = _labels_and_channels(dataset_json, source)
    counts = list(kwargs.get("n_conv_per_stage", [2]))
    topology = NetworkTopology(
        in_channels=channels or len(config.get("normalization_schemes", [0])), num_classes=len(labels),
        features_per_stage=tuple(int(f) for f in kwargs["features_per_stage"]),
        kernel_sizes=tuple((int(k[0]), int(k[1])) for k in kwargs["kernel_sizes"]),
        strides=tuple((int(s[0]), int(s[1])) for s in kwargs["strides"]), conv_per_stage=int(counts[0]))
    z = list(plans.get("original_median_spacing_after_transp", [1.0]))[0]
    seg_order = int(config.get("resampling_fn_seg_kwargs", {}).get("order", 1))
    plan = Plan(name="2d", preset="nnunet", target_spacing=(float(z), float(spacing[0]), float(spacing[1])),
                patch_size=(int(patch[0]), int(patch[1])), batch_size=int(config.get("batch_size", 2)),
                normalization=_normalization(config, source), topology=topology, labels=labels,
                image_interpolation_order=int(config.get("resampling_fn_data_kwargs", {}).get("order", 3)),
                label_interpolation="nearest" if seg_order == 0 else "linear_onehot",
                extras={"nnunet": {"plans_name": plans.get("plans_name"), "dataset_name": plans.get("dataset_name"),
                                   "configuration": configuration, "conv_bias": bool(kwargs.get("conv_bias", True)),
                                   "use_mask_for_norm": config.get("use_mask_for_norm")}})
    problems = plan_problems(plan)
    if problems:
        raise InvalidInputError(f"{source}: configurations.{configuration} gives an unusable plan: "
                                + "; ".join(problems))
    return plan


def read_nnunet_plans(path: str | Path, dataset_json: str | Path | None = None,
                      configuration: str = CONFIGURATION) -> Plan:
    """``plan_from_nnunet`` of a plans file; the labels from ``dataset_json`` or the ``dataset.json`` beside it.

    Usage (an nnU-Net preprocessed folder)::

        plan = read_nnunet_plans("nnUNet_preprocessed/Dataset004_LGE/nnUNetPlans.json")
    """
    path = Path(path)
    data = load_json(path)
    if not is_nnunet_plans(data):
        raise InvalidInputError(f"{path}: not an nnU-Net plans file (no 'configurations')")
    dataset_path = Path(dataset_json) if dataset_json is not None else path.parent / "dataset.json"
    dataset = load_json(dataset_path) if dataset_path.is_file() else None
    return plan_from_nnunet(data, dataset, configuration, str(path))


def load_any_plan(source: str | Path) -> Plan:
    """A plan from lgeseg's ``plans.json`` or nnU-Net's plans file, or a folder holding one of them.

    A folder is searched for ``plans.json``, then ``nnUNetPlans.json``; a file (or the file found)
    holding nnU-Net's ``configurations`` is imported with ``read_nnunet_plans``, any other is read
    with ``records.read_plan``. Raises ``FileNotFoundError`` when there is none.

    Example:
        >>> import tempfile
        >>> from lgeseg.planning.planner import small_plan
        >>> from lgeseg.core.records import save_json
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     save_json(small_plan(), Path(folder) / "plans.json")
        ...     load_any_plan(folder).preset
        'manual'
    """
    source = Path(source)
    candidates = [source / PLANS_FILE, source / "nnUNetPlans.json"] if source.is_dir() else [source]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"{candidates[0]}: no plans.json found (give a model folder, a preprocessed folder, "
                                "a plans.json or nnU-Net's nnUNetPlans.json)")
    data = load_json(path)
    return read_nnunet_plans(path) if is_nnunet_plans(data) else read_plan(path)
