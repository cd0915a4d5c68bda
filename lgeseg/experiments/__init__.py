"""Experiment runners: the demo job and the paper's experiments on the synthetic centers."""
