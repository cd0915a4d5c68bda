"""Workflows: runs of several stages, above every stage they call.

``plan_and_preprocess`` (validate -> fingerprint -> plan -> preprocess, ``lgeseg_plan_and_preprocess``)
and ``self_training`` (unlabeled adaptation to a new center: predict -> quality filter -> pseudo-label
dataset -> fine-tune, ``lgeseg_adapt``). The demo and the paper's experiments are ``lgeseg.experiments``.
"""
