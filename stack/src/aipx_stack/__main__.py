"""`python -m aipx_stack` = `aipx-stack`."""

import sys

from aipx_stack.cli import main

sys.exit(main())
