"""``python -m bench.linkcheck``: see run.py."""

from bench.linkcheck.run import main

raise SystemExit(main())
