"""Kept importable for code written against it: the LGE-series picking now lives in ``lgeseg.dicom_study``.

It moved down the layers so that ``lgeseg_convert dicom`` (a converter, below inference) picks the
series of a study the way ``lgeseg_predict`` does, with one owner of the rules.
"""

from lgeseg.dicom_study import (
    CINE_WORDS,
    LGE_WORDS,
    LOCALIZER_WORDS,
    LONG_AXIS_WORDS,
    MAP_WORDS,
    SHORT_AXIS_WORDS,
    SeriesKind,
    classify_series,
    pick_series,
)

__all__ = ["CINE_WORDS", "LGE_WORDS", "LOCALIZER_WORDS", "LONG_AXIS_WORDS", "MAP_WORDS", "SHORT_AXIS_WORDS",
           "SeriesKind", "classify_series", "pick_series"]
