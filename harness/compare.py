"""Any runs side by side, with 95% bootstrap intervals on their differences to a baseline (harness/report/compare.py).

    python -m harness.compare RUN_ID RUN_ID ... [--baseline RUN_ID] [--plot]
    python -m harness.compare --where dataset=prm800k [--source mlflow]
"""

import sys

from harness.report.compare import main

if __name__ == "__main__":
    sys.exit(main())
