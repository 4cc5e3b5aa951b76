import sys

from airflow_jobwait.server.cli import main

sys.exit(main())
