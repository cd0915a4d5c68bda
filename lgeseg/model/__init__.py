"""The model-folder contract, shared by training, inference and harmonization.

``folder`` (the file names of a model folder, ``model.json``, ``plans.json``, checkpoints, ``load_model``),
``card`` (the model card), ``archive`` (export and install as a checked zip) and ``registry`` (models by
name: shipped in ``lgeseg/pretrained/``, installed under ``$LGESEG_HOME/models``, ensemble folders). This
package re-exports nothing. Every module loads without torch: ``folder`` loads it when a checkpoint is
read or written, so the file names and ``model.json`` are read without it.
"""
