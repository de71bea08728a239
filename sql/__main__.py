"""``python -m sql run ...`` — see :mod:`sql.runner`."""

import sys

from sql.runner import main

sys.exit(main())
