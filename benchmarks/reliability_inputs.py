"""Issue 24's planted cases: inputs and options that must get a clear error, and garbage that must not pass."""

from __future__ import annotations

from reliability_matrix import Context, Row


def rows(ctx: Context) -> list[Row]:
    """Every planted case of this module, run through the command a user would type."""
    found: list[Row] = []
    return found
