"""Preprocessing: crop to the body, normalize, resample in-plane; store and load cases.

``preprocess_arrays`` is the single path shared by training-data preparation and inference;
``revert_to_original`` is its inverse for class probabilities.
"""

from lgeseg.preprocessing.arrays import preprocess_arrays, revert_to_original
from lgeseg.preprocessing.run import load_case_arrays, load_preprocessed, preprocess_case, run_preprocessing

__all__ = [
    "load_case_arrays",
    "load_preprocessed",
    "preprocess_arrays",
    "preprocess_case",
    "revert_to_original",
    "run_preprocessing",
]
