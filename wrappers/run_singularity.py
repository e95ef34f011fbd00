#!/usr/bin/env python3
"""cluster_utils job script: run ``singularity.script`` inside ``singularity.image``.

Runs on the host (the system's python3 is enough: it imports only the standard library
and this checkout's ``src/``) and passes its arguments on unchanged to the script inside
the container, which registers with the cluster_utils server itself.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from rl_relay.container.run_singularity import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
