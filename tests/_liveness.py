"""The one bound on how long a test waits for what a live system does (a poller's next round, a
job's end, a trigger's event): a liveness check that fails a test instead of hanging it, never a
claim about speed.

The default, 60 s, is generous for a loaded 2-core CI machine, where each of these waits ends in a
few seconds. ``make mutation`` shortens it (``JOBWAIT_TEST_LIVENESS_S``, ``.ci/mutation.py``): a
mutant that stalls a wait is caught when this bound runs out, so the bound is most of such a
mutant's time.
"""

from __future__ import annotations

import os

#: Seconds a test waits for the system under test before it fails.
LIVENESS_S = float(os.environ.get("JOBWAIT_TEST_LIVENESS_S", "60"))
