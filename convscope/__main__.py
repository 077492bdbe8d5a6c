import sys

from convscope.cli.main import main

sys.exit(main())
