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

from collections import OrderedDict

import numpy as np


# Arrays remembered at once: the plan module caches 16 arrays of each kind, so a few kinds'
# worth is enough; more would keep evicted 16k-rank arrays alive (128 kB each at 16k GPUs).
MAX_ARRAYS = 64


class ArrayMemo:
    """``get(array, name, compute)``: ``compute()`` once per read-only array that owns its
    data (nothing can change it through another array) and ``name``, for the last
    :data:`MAX_ARRAYS` arrays; other arrays are computed each time. An array is kept with its
    values, so its id is not reused while it is remembered."""

    def __init__(self, max_arrays=MAX_ARRAYS):
        self._memo, self._max = OrderedDict(), max_arrays

    def get(self, array, name, compute):
        if array.flags.writeable or not array.flags.owndata:
            return compute()
        key = id(array)
        entry = self._memo.get(key)
        if entry is None or entry[0] is not array:
            entry = self._memo[key] = (array, {})
            if len(self._memo) > self._max:
                self._memo.popitem(last=False)
        self._memo.move_to_end(key)
        values = entry[1]
        if name not in values:
            values[name] = compute()
        return values[name]


def read_only(array):
    """A read-only copy of ``array`` owning its data (nothing can change it through another
    array), which :class:`ArrayMemo` remembers by identity.

    Examples
    --------
    >>> a = read_only([[0, 1], [2, 3]])
    >>> a.flags.writeable, a.flags.owndata
    (False, True)
    """
    array = np.array(array)
    array.flags.writeable = False
    return array
