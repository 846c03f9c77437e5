"""Entry point for `python -m vlm`."""

import sys

from vlm.cli import main

sys.exit(main())
