"""Made-up summary rows, for the examples of ``figures`` (a figure drawn without running a grid).

Each example of a figure used to write out the same set-up (a made-up Dice, a comprehension of
``summary.case_row`` calls); ``scored_rows`` is that set-up, once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lgeseg.experiments.grid import Cell
from lgeseg.experiments.summary import Row, case_row

#: The made-up scores of every example row.
EXAMPLE_DICE: Mapping[str, float] = {"blood_pool": 0.85, "myocardium": 0.75}


def scored_rows(cells: Sequence[Cell], centers: Sequence[str], harmonizations: Sequence[str] = ("none",),
                cases: int = 1, dice: Mapping[str, float | None] = EXAMPLE_DICE) -> list[Row]:
    """Rows as if every cell's model had scored ``dice`` on ``cases`` test cases of every center.

    Args:
        cells: the grid cells whose models were "scored".
        centers: the test centers; harmonizations: one row set per harmonization (``summary.case_row``).
        cases: test cases per center, ids ``<center>_<i>``.
        dice: the Dice of every row.

    Returns:
        ``summary.case_row`` rows, ordered by cell, then harmonization, center and case.

    Example:
        >>> from lgeseg.experiments.grid import train_cell
        >>> rows = scored_rows([train_cell(("center1",), "none", 0)], ("center1", "center2"), cases=2)
        >>> [(row["center"], row["case"], row["dice"]) for row in rows]
        [('center1', 'center1_0', 0.8), ('center1', 'center1_1', 0.8),
         ('center2', 'center2_0', 0.8), ('center2', 'center2_1', 0.8)]
    """
    return [case_row(cell, center, harmonization, f"{center}_{i}", dict(dice))
            for cell in cells for harmonization in harmonizations for center in centers for i in range(cases)]
