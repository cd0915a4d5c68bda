"""``lgeseg_report``: clinical numbers, quality flags and pictures of predictions that have no reference."""

from lgeseg.report.build import make_report
from lgeseg.report.enhancement import EnhancementEstimate, estimate_enhancement
from lgeseg.report.measures import AHA_SEGMENTS, CaseMeasures, measure_case
from lgeseg.report.reference import DEFAULT_RANGES, ReferenceRange, body_surface_area, compare_case
from lgeseg.report.study import StudyInfo, prediction_models, read_dicom_study, study_from_file_name

__all__ = ["AHA_SEGMENTS", "DEFAULT_RANGES", "CaseMeasures", "EnhancementEstimate", "ReferenceRange", "StudyInfo",
           "body_surface_area", "compare_case", "estimate_enhancement", "make_report", "measure_case",
           "prediction_models", "read_dicom_study", "study_from_file_name"]
