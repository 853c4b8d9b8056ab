"""What a power budget holds: ``fabric.cluster_for_power`` for each rack type, with its
facility power by part, the time the builds take and the process's peak memory.

Run: python tests/benchmarks/bench_facility.py [watts, default 1e9] [pue, default 1.2] [rack ...]
"""

import resource
import sys
import time

import fabric
from fabric.systems import PUBLISHED_RACK_WATTS

RACKS = ("dgx-h100", "dgx-b200", "gb200-nvl72", "gb300-nvl72")


def main():
    watts = float(sys.argv[1]) if len(sys.argv) > 1 else 1e9
    pue = float(sys.argv[2]) if len(sys.argv) > 2 else 1.2
    racks = sys.argv[3:] or RACKS
    print("| rack | systems | GPUs | IT MW | facility MW | W per GPU | network kW per system | seconds |\n"
          "|---|---|---|---|---|---|---|---|")
    for rack in racks:
        start = time.perf_counter()
        G = fabric.cluster_for_power(watts, rack=rack, pue=pue, progress=False)
        seconds = time.perf_counter() - start
        p = G.graph["facility_power"]
        network = (p["it"]["scale-out switches"] + p["it"]["optics"]) / p["systems"]
        print(f"| {rack} | {p['systems']:,} | {p['gpus']:,} | {p['it_watts'] / 1e6:,.1f} | "
              f"{p['facility_watts'] / 1e6:,.1f} | {p['facility_watts'] / p['gpus']:,.0f} | {network / 1e3:,.1f} | "
              f"{seconds:.0f} |", flush=True)
        del G
    for rack, (low, high) in PUBLISHED_RACK_WATTS.items():
        print(f"\n{rack}: the published {low / 1e3:.0f}-{high / 1e3:.0f} kW per rack at PUE {pue:g} imply "
              f"{watts / (pue * high):,.0f}-{watts / (pue * low):,.0f} racks in {watts / 1e6:,.0f} MW (racks alone)")
    print(f"\npeak memory of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")


if __name__ == "__main__":
    main()
