"""Experiment runners: the demo job (``demo``) and the paper's experiments as a grid of resumable cells
(``grid`` settings and cells, ``cells`` running one, ``launcher`` local/submitit, ``summary`` Table 5,
``figures`` Figures 6-12, ``run`` all of it)."""
