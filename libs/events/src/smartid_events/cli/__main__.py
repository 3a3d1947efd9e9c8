"""`python -m smartid_events.cli`: the same as the `smartid` command."""

import sys

from smartid_events.cli import main

sys.exit(main())
