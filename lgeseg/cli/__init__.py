"""Thin command-line front ends: argparse, then one call into a pipeline stage."""
