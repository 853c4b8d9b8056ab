"""Values computed from the read-only rank arrays that plans share (one array per group
shape, :mod:`collectives.training.plan`), remembered by the array's identity: a search asks
for the same 16k-rank arrays thousands of times, and reading and hashing them each time costs
more than the rest of a plan's pricing.

Examples
--------
>>> import numpy as np
>>> groups = np.arange(8).reshape(2, 4).copy()   # owns its data
>>> groups.flags.writeable = False
>>> memo = ArrayMemo()
>>> memo.get(groups, "bytes", groups.tobytes) is memo.get(groups, "bytes", groups.tobytes)
True
"""


class ArrayMemo:
    """``get(array, name, compute)``: ``compute()`` once per read-only array that owns its
    data (nothing can change it through another array) and ``name``; other arrays are
    computed each time. An array is kept with its values, so its id is not reused."""

    def __init__(self):
        self._memo = {}

    def get(self, array, name, compute):
        if array.flags.writeable or not array.flags.owndata:
            return compute()
        entry = self._memo.get(id(array))
        if entry is None or entry[0] is not array:
            entry = self._memo[id(array)] = (array, {})
        values = entry[1]
        if name not in values:
            values[name] = compute()
        return values[name]
