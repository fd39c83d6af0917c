"""``python -m accelat_train`` is ``accelat``."""

import sys

from accelat_train.cli import main

sys.exit(main())
