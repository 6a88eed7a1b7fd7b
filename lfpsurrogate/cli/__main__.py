"""``python -m lfpsurrogate.cli``: the ``lfpsurrogate`` command."""
import sys

from . import main

sys.exit(main())
