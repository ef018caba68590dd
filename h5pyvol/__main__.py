"""``python -m h5pyvol``: the same as the ``h5pyvol`` command."""

import sys

from .cli import main

sys.exit(main())
