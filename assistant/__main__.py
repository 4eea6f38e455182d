"""`python -m assistant`: the `hyperalign` command."""

import sys

from assistant.cli import main

sys.exit(main())
