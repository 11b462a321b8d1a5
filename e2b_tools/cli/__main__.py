"""``python -m e2b_tools.cli``: the same as the ``e2b-tools`` command."""

from e2b_tools.cli import main

raise SystemExit(main())
