"""``python -m h5flow`` inside a run: the flow command line."""

import sys

from . import main

sys.exit(main())
