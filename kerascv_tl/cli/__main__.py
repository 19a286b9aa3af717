"""`python -m kerascv_tl.cli ...`: the `kerascv-tl` command."""

import sys

from kerascv_tl.cli import main

sys.exit(main())
