# SPDX-License-Identifier: MIT
"""Copying and pickling (docs/python.md, "Copies and pickling").

Every object that owns a C object refuses copy.copy, copy.deepcopy and
pickle with a TypeError naming its class and the reason: a copy would
share the C handle (and, for a counter, its sysctl names), so closing
either would free or unregister what the other still uses.  The stateless
namespaces (a Backend, its sysctl and topology) copy as themselves and
pickle by backend name.
"""

import copy
import pickle

import pytest

import percpu


def _owners(pc):
    lc = pc.LocalCount()
    ref = pc.PercpuRef()
    return [
        ("Counter", pc.Counter()),
        ("CounterArray", pc.CounterArray(2)),
        ("RateCheck", pc.RateCheck(10)),
        ("LocalCount", lc),
        ("PercpuRef", ref),
        ("Reference", lc.acquire()),
        ("Reference", ref.acquire()),
        ("ReadSection", pc.read_section()),
    ]


HOW = [
    ("copied", copy.copy),
    ("deep-copied", copy.deepcopy),
    ("pickled", pickle.dumps),
    ("pickled", lambda o: pickle.dumps(o, protocol=0)),
]


@pytest.mark.parametrize("how,op", HOW, ids=["copy", "deepcopy", "pickle", "pickle0"])
def test_owners_refuse_copies(pc, how, op):
    objs = _owners(pc)
    for name, obj in objs:
        with pytest.raises(TypeError, match=rf"^percpu\.{name} cannot be {how}: "):
            op(obj)
    for name, obj in reversed(objs):
        if name == "Reference":
            obj.release()  # the refusal left it held, and usable
        elif name == "ReadSection":
            assert not obj.open  # never entered: nothing to close
        else:
            obj.close()


def test_copy_refused_inside_a_container(pc):
    c = pc.Counter()
    with pytest.raises(TypeError, match="percpu.Counter cannot be deep-copied"):
        copy.deepcopy({"hits": [c]})
    c.close()


def test_a_refused_copy_leaves_names_registered(pc):
    # The issue: copy.copy made an alias, and closing it unregistered the
    # original's names while the original stayed open.
    c = pc.Counter()
    c.register("copytest.hits")
    with pytest.raises(TypeError):
        copy.copy(c)
    c.add(2)
    assert pc.sysctl.read("copytest.hits") == 2
    assert c.names == ("copytest.hits",)
    c.close()
    assert "copytest.hits" not in pc.sysctl.names()


def test_closed_objects_refuse_too(pc):
    c = pc.Counter()
    c.close()
    with pytest.raises(TypeError, match="percpu.Counter cannot be pickled"):
        pickle.dumps(c)


def test_namespaces_copy_as_themselves(pc):
    for ns in (pc, pc.sysctl, pc.topology):
        assert copy.copy(ns) is ns
        assert copy.deepcopy(ns) is ns
    assert pickle.loads(pickle.dumps(pc)) is pc
    assert pickle.loads(pickle.dumps(pc.sysctl)) is pc.sysctl
    assert pickle.loads(pickle.dumps(pc.topology)) is pc.topology


def test_values_pickle(pc):
    # What the API returns as data is plain data.
    c = pc.Counter()
    c.register("copytest.value", descr="d")
    entry = pc.sysctl.describe("copytest.value")
    assert pickle.loads(pickle.dumps(entry)) == entry
    placement = pc.topology.unit_placement(0)
    assert pickle.loads(pickle.dumps(placement)) == placement
    stats = pc.topology.slab_stats()
    assert pickle.loads(pickle.dumps(stats)) == stats
    c.close()
