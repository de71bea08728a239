"""``python -m sql run ...`` — see :mod:`sql.runner`.

A command-line edge: the environment's variables are the secrets a table's ``password_env`` /
``token_env`` / ``credential_env`` option may name.
"""

import os
import sys

from sql.runner import main

sys.exit(main(secrets=os.environ))
