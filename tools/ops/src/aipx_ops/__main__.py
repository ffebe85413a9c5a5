"""`python -m aipx_ops` = `aipx-ops`."""

import sys

from aipx_ops.cli import main

sys.exit(main())
