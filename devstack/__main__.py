import sys

from devstack.launcher import main

sys.exit(main())
