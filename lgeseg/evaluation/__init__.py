"""Scoring label maps and cleaning them: the last steps of the pipeline.

``metrics``: Dice, HD95, volumes and clinical indices per case, ``evaluate_folders`` (``lgeseg_evaluate``);
``postprocessing``: largest connected component and the choice between variants (``lgeseg_postprocess``).
The package re-exports ``metrics``' public names, so ``lgeseg.evaluation.dice`` (the path of lgeseg 0.1,
when this was one module) still works.
"""

from lgeseg.evaluation.metrics import (
    EMPTY_CONVENTION,
    EVALUATION_FILES,
    MYOCARDIUM_DENSITY_G_PER_ML,
    STRUCTURES,
    check_evaluation_output,
    dice,
    evaluate_case,
    evaluate_folders,
    find_labels,
    format_table,
    hd95,
    pair_cases,
    structures_from_labels,
    summarize,
)

__all__ = [
    "EMPTY_CONVENTION",
    "EVALUATION_FILES",
    "MYOCARDIUM_DENSITY_G_PER_ML",
    "STRUCTURES",
    "check_evaluation_output",
    "dice",
    "evaluate_case",
    "evaluate_folders",
    "find_labels",
    "format_table",
    "hd95",
    "pair_cases",
    "structures_from_labels",
    "summarize",
]
