"""The model-folder contract, shared by training, inference and harmonization.

``folder`` (``model.json``, ``plans.json``, checkpoints, ``load_model``), ``card`` (the model card),
``archive`` (export and install as a checked zip) and ``registry`` (models by name: shipped in
``lgeseg/pretrained/``, installed under ``$LGESEG_HOME/models``, ensemble folders). This package
re-exports nothing: ``registry`` and ``card`` load without torch, ``folder`` with it.
"""
