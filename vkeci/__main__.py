import sys

from vkeci.cli import main

sys.exit(main())
