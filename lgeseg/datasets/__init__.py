"""Raw datasets in nnU-Net v2's layout, built on ``lgeseg.files``.

``layout``: the one parser of ``dataset.json`` and of the case folders (``parse_dataset``,
``list_cases``, ``load_dataset_info``, ``resolve_dataset``, the channel-suffix rule);
``validate``: ``validate_dataset``, the checks that read the files (``lgeseg_validate``).
The makers of raw datasets (``lgeseg.synth``, ``lgeseg.converters``) sit one layer above.
"""
