"""``python -m windalign.cli``: the ``wind`` command (``accelerate launch -m windalign.cli``)."""

import sys

from windalign.cli import main

sys.exit(main())
