"""SI unit multipliers, so that quantities read as written: ``400 * Gbps``.

Every quantity in this library is in SI base units: bytes, seconds, bytes per second,
FLOP per second and watts. Multiply by a constant here to convert *into* those units,
divide to convert out of them.

Examples
--------
>>> from fabric.units import Gbps, GBps, us
>>> 400 * Gbps == 50 * GBps
True
>>> round(2 * us / 1e-6, 9)
2.0
"""

# Bandwidth, in bytes per second. Network links are quoted in bits per second.
bps = 1 / 8
Kbps = 1e3 / 8
Mbps = 1e6 / 8
Gbps = 1e9 / 8
Tbps = 1e12 / 8
Bps = 1.0
KBps = 1e3
MBps = 1e6
GBps = 1e9
TBps = 1e12

# Sizes, in bytes.
B = 1
KB = 1e3
MB = 1e6
GB = 1e9
TB = 1e12
KiB = 2**10
MiB = 2**20
GiB = 2**30
TiB = 2**40

# Time, in seconds.
s = 1.0
ms = 1e-3
us = 1e-6
ns = 1e-9

# Compute, in FLOP per second.
GFLOPS = 1e9
TFLOPS = 1e12
PFLOPS = 1e15

# Power, in watts.
W = 1.0
kW = 1e3
MW = 1e6
