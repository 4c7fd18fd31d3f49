"""`python -m routeviz.cli`: the same as the `routeviz` command."""

import sys

from routeviz.cli import main

sys.exit(main())
