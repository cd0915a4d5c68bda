"""Issue 24's planted cases: commands that write must not destroy what the user has."""

from __future__ import annotations

from reliability_matrix import Context, Row


def rows(ctx: Context) -> list[Row]:
    """Every planted case of this module, run through the command a user would type."""
    found: list[Row] = []
    return found
