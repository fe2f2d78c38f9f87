# SPDX-License-Identifier: MIT
"""Topology: possible CPUs, nodes, slab unit placement, paths."""

import os

import pytest

import percpu
from percpu import PercpuError


def test_cpus(pc):
    t = pc.topology
    n = t.possible_cpus()
    assert n >= 1
    if t.possible_cpus_exact():
        assert n >= max(os.sched_getaffinity(0)) + 1
    else:
        assert n == 4096
    assert 0 <= t.current_cpu() < n


def test_nodes(pc):
    t = pc.topology
    assert isinstance(t.numa_available(), bool)
    assert 1 <= t.nr_nodes() <= t.node_limit()
    nodes = t.cpu_nodes()
    assert len(nodes) == t.possible_cpus()
    for cpu in sorted(os.sched_getaffinity(0)):
        node = t.node_of_cpu(cpu)
        assert nodes[cpu] == node
        assert 0 <= node < t.node_limit()
        assert 0 <= t.memory_node_of_cpu(cpu) < t.node_limit()
    with pytest.raises(PercpuError):
        t.node_of_cpu(100000)
    with pytest.raises(PercpuError):
        t.memory_node_of_cpu(100000)


def test_unit_placements(pc):
    t = pc.topology
    placements = t.unit_placements()
    assert [p.cpu for p in placements] == list(range(t.possible_cpus()))
    for p in placements:
        assert p.wanted_node == t.memory_node_of_cpu(p.cpu)
        assert p.bind_error <= 0
        assert p.pages_on_wanted + p.pages_unknown <= p.pages
    one = t.unit_placement(0)
    assert one.cpu == 0 and one.wanted_node == placements[0].wanted_node
    with pytest.raises(TypeError):
        t.unit_placement(0, pc.LocalCount())


def test_slab_stats(pc):
    s = pc.topology.slab_stats()
    assert s.chunks >= 1 and s.bytes_capacity >= s.bytes_in_use
    c = pc.Counter()
    assert pc.topology.slab_stats().objects == s.objects + 1
    c.close()


def test_paths(pc):
    t = pc.topology
    assert t.path() in ("rseq", "fallback")
    assert t.path() == ("rseq" if t.rseq_registered() else "fallback")
    assert t.fast_mode_available() == (t.rseq_available() and t.fence_available())


def test_module_functions():
    assert percpu.topology.possible_cpus() == percpu.get_backend().topology.possible_cpus()
    assert percpu.topology.path() in ("rseq", "fallback")
    assert len(percpu.topology.cpu_nodes()) == percpu.topology.possible_cpus()
