"""``python -m lgeseg``: same as the ``lgeseg`` command."""

from lgeseg.cli.main import main

raise SystemExit(main())
