import sys

from fakes.eci.cli import main

sys.exit(main())
