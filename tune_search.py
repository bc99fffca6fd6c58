"""Tune search over auction types and society sizes: not built yet (its own issue).

Until then, compare settings with several `run.py` runs, e.g.
``python run.py --config configs/chain.yaml --auction bb --clones 1``.
"""

import sys

if __name__ == "__main__":
    sys.exit("tune_search.py is not implemented yet; use run.py with --auction/--clones/--set per setting.")
