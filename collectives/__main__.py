"""``python -m collectives``: the command line (:mod:`collectives.cli`).

With no arguments it estimates a training step on a built-in example cluster:
Llama-3-8B on 32 H100 GPUs (a 4-server DGX SuperPOD slice), tp8 x dp4, at the flow level.
``python -m collectives --help`` lists the subcommands (estimate, collective, search, fabric).
"""

import sys

from collectives.cli import main

if __name__ == "__main__":
    sys.exit(main())
