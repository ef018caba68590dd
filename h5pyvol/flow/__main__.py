"""``python -m h5pyvol.flow``: the flow command line."""

import sys

from .cli import main

sys.exit(main())
