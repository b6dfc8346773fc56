import sys

from osipc._cli import main

sys.exit(main())
