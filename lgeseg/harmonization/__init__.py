"""Harmonization at test time (paper section 2.3): histogram matching and CycleGAN translation.

- ``histogram``: ``fit_reference``/``match_histogram`` (fit/apply), reference stored in
  ``MODEL_DIR/harmonization_reference.json`` (``write_reference``/``load_reference``).
- ``cyclegan``/``cyclegan_train``/``translate``: unpaired translation between two centers.
- ``apply``: both by name (``"histogram"``, ``"cyclegan:GAN_DIR"``), in memory or over files.
"""

from lgeseg.harmonization.apply import (
    apply_harmonization,
    fit_reference_from_files,
    fit_reference_from_preprocessed,
    harmonize_files,
    make_harmonizer,
)
from lgeseg.harmonization.histogram import (
    DEFAULT_LANDMARKS,
    HistogramReference,
    body_mask,
    fit_reference,
    load_reference,
    match_histogram,
    write_reference,
)

__all__ = [
    "DEFAULT_LANDMARKS",
    "HistogramReference",
    "apply_harmonization",
    "body_mask",
    "fit_reference",
    "fit_reference_from_files",
    "fit_reference_from_preprocessed",
    "harmonize_files",
    "load_reference",
    "make_harmonizer",
    "match_histogram",
    "write_reference",
]
