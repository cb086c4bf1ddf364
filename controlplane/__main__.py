from __future__ import annotations

import sys

from controlplane.cli import main

sys.exit(main())
