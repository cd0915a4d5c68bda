"""Synthetic multi-center LGE short-axis phantom (demo and test data).

Four centers imitate the paper's Table 1 (EMIDEC, MSCMR, VH, STPAU); ``centers.CENTERS`` holds
how they differ. ``generate_case`` makes one case in memory, ``generate_multicenter`` writes one
raw dataset per center, ``write_montage`` draws their mid slices; ``tiny_dataset`` is the small raw
dataset docstring examples start from.
"""

from lgeseg.synth.centers import CENTERS, CenterProfile, get_profile
from lgeseg.synth.montage import write_montage
from lgeseg.synth.multicenter import generate_multicenter, tiny_dataset
from lgeseg.synth.phantom import SyntheticCase, generate_case, synthesize_case

__all__ = [
    "CENTERS",
    "CenterProfile",
    "SyntheticCase",
    "generate_case",
    "generate_multicenter",
    "get_profile",
    "synthesize_case",
    "tiny_dataset",
    "write_montage",
]
