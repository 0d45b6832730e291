import sys

from daemon.entry import main

sys.exit(main())
