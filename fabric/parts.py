"""The specs a fabric's nodes name: a switch or NIC ``model`` is a catalog entry
(:mod:`fabric.catalog`) or one of the graph's own parts (``G.graph["specs"]``), which a
builder records when it is given a spec that is not in the catalog (a user's own
:class:`~fabric.catalog.SwitchSpec`, a NIC at a line rate of its own).
"""

from fabric.catalog import NICS, SWITCHES, NICSpec, SwitchSpec
from fabric.checks import require_choice
from fabric.errors import InvalidSpec

_MODEL_TABLES = {"switch": SWITCHES, "nic": NICS}
_MODEL_KINDS = {SwitchSpec: "switch", NICSpec: "nic"}


def own_specs(*specs):
    """What a builder records in ``G.graph["specs"]``: ``{kind: {name: spec}}`` of the
    switch and NIC specs it used that are not catalog entries (a user's own
    :class:`SwitchSpec`, a NIC at a line rate of its own), so that the graph's ``model``
    names resolve (:func:`model_spec`) and the specs travel with a saved fabric.

    Examples
    --------
    >>> import dataclasses
    >>> from fabric.catalog import NICS, SWITCHES
    >>> mine = dataclasses.replace(SWITCHES["tomahawk5"], name="my-tomahawk5", power=900)
    >>> own_specs(mine, SWITCHES["qm9700"], NICS["cx7"])
    {'switch': {'my-tomahawk5': SwitchSpec(name='my-tomahawk5', ports=64, ...)}}
    >>> own_specs(dataclasses.replace(SWITCHES["qm9700"], power=1))
    Traceback (most recent call last):
    ...
    fabric.errors.InvalidSpec: switch spec 'qm9700' differs from the catalog's 'qm9700': give it a name of its own
    """
    found = {}
    for spec in specs:
        kind = _MODEL_KINDS[type(spec)]
        known = _MODEL_TABLES[kind].get(spec.name)
        if known == spec:
            continue
        if known is not None:
            raise InvalidSpec(f"{kind} spec {spec.name!r} differs from the catalog's {spec.name!r}: "
                              "give it a name of its own")
        found.setdefault(kind, {})[spec.name] = spec
    return found


def check_own_specs(specs):
    """``InvalidSpec`` unless ``specs`` has the form :func:`own_specs` gives: ``{kind: {name:
    spec}}`` with kinds ``"switch"`` and ``"nic"``, each spec of its kind and under its own name.

    Examples
    --------
    >>> check_own_specs({"switch": {"qm9700": SWITCHES["qm9700"]}}) is None
    True
    >>> check_own_specs({"router": {}})
    Traceback (most recent call last):
    ...
    fabric.errors.InvalidSpec: specs kind='router' must be one of 'switch', 'nic'
    """
    types = {kind: spec_type for spec_type, kind in _MODEL_KINDS.items()}
    if not isinstance(specs, dict):
        raise InvalidSpec(f"specs={specs!r:.80} must be a dict of kind -> {{name: spec}}")
    for kind, named in specs.items():
        require_choice("specs kind", kind, tuple(types))
        if not isinstance(named, dict):
            raise InvalidSpec(f"specs[{kind!r}]={named!r:.80} must be a dict of name -> {types[kind].__name__}")
        for name, spec in named.items():
            if not isinstance(spec, types[kind]) or spec.name != name:
                raise InvalidSpec(f"specs[{kind!r}][{name!r}]={spec!r:.80} must be a {types[kind].__name__} named {name!r}")


def model_spec(G, kind, name):
    """The spec of the ``kind`` (``"switch"`` or ``"nic"``) model ``name`` that nodes of
    ``G`` carry: the graph's own (:func:`own_specs`) first, then the catalog.

    Examples
    --------
    >>> import fabric
    >>> model_spec(fabric.dgx_superpod(2), "switch", "qm9700").ports
    64
    """
    specs = G.graph.get("specs") or {}
    check_own_specs(specs)
    own = specs.get(kind, {})
    if name in own:
        return own[name]
    table = _MODEL_TABLES[kind]
    if name not in table:
        known = ", ".join(sorted([*table, *own]))
        raise InvalidSpec(f"{kind} model={name!r} is neither in the catalog nor in G.graph['specs']; known: {known}")
    return table[name]
