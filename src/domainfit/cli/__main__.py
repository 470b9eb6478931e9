"""``python -m domainfit.cli``: the same as the ``domainfit`` command."""

import sys

from . import main

sys.exit(main())
