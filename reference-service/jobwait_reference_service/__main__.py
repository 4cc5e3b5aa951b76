import sys

from jobwait_reference_service.cli import main

sys.exit(main())
