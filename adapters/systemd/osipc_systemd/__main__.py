import sys

from osipc_systemd._cli import main

sys.exit(main())
