"""The hostile-input suite (tests/hostile.py) in ``make test``: a few
hundred generated and mutated messages through the real notary, by both
its paths (a batch in process, the incoming maildir).  ``make fuzz-notary``
runs the same with 100,000 inputs."""

from __future__ import annotations

import pytest

import hostile
from conftest import _HOMES


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    _HOMES.append(base)
    return hostile.make_world(base)


@pytest.mark.parametrize("seed", [1, 2])
def test_hostile_inputs_keep_every_property(world, seed):
    counts = hostile.run(world, 300, seed=seed, batch=60, maildir_every=3)
    assert counts.tried == 300
    assert counts.ok(), counts.line() + "\n" + "\n".join(counts.failures[:10])
    assert counts.accepted > 0                        # the real orders still get in
    assert "unsigned" in counts.refused and "bad signature" in counts.refused
