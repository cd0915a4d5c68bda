"""``lgeseg_report``: clinical numbers, quality flags and pictures of predictions that have no reference."""

from lgeseg.report.build import make_report
from lgeseg.report.measures import AHA_SEGMENTS, CaseMeasures, measure_case

__all__ = ["AHA_SEGMENTS", "CaseMeasures", "make_report", "measure_case"]
