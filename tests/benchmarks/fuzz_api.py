"""The public-API fuzz of tests/test_fuzz.py with many more examples (the hardening issue).

Every drawn call must return finite, non-negative times, bandwidths and rates, or raise the
library's typed errors. Prints the examples run and the time per family; exits 1 on the first
defect (hypothesis prints the shrunk failing call).

Run: python tests/benchmarks/fuzz_api.py [examples per family, default 5000]
"""

import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for fuzz_cases
from fuzz_cases import (  # noqa: E402
    builder_calls, cluster_calls, collective_calls, edited_fabric_calls, run, spread_calls, step_calls)


def main():
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    print("| family | examples | seconds |\n|---|---|---|")
    for name, strategy in (("builders", builder_calls()), ("collectives and flows", collective_calls()),
                           ("edited fabrics", edited_fabric_calls()), ("training steps", step_calls()),
                           ("spreads over seeds", spread_calls()),
                           ("presets, placements, shared jobs", cluster_calls())):
        test = settings(max_examples=examples, deadline=None, database=None,
                        suppress_health_check=list(HealthCheck))(given(call=strategy)(run))
        start = time.perf_counter()
        test()
        print(f"| {name} | {examples} | {time.perf_counter() - start:.1f} |")


if __name__ == "__main__":
    main()
