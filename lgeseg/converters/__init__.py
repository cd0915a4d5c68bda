"""Converters from public LGE/cine datasets into lgeseg's raw format (nnU-Net v2 layout).

Each ``convert_<name>(src, dst, overwrite=False) -> int`` writes ``dst`` (cases written) and
validates it; see ``docs/datasets.md`` for the label mappings.
"""

from lgeseg.converters.dicom import convert_dicom
from lgeseg.converters.emidec import convert_emidec
from lgeseg.converters.mnms import convert_mnms
from lgeseg.converters.mscmr import convert_mscmr

CONVERTERS = {"emidec": convert_emidec, "mscmr": convert_mscmr, "mnms": convert_mnms, "dicom": convert_dicom}

__all__ = ["CONVERTERS", "convert_dicom", "convert_emidec", "convert_mnms", "convert_mscmr"]
