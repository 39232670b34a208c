"""`python -m tke_kms_plugin.emulator` = the `tke-kms-emulator` console script."""

import sys

from .cli import main

sys.exit(main())
