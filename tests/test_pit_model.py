"""The whole pit against its model (tests/pit_model.py): random seeded
sessions of signed mail, driven through `pit notarize`, `pit run` and the
query commands, compared after every run (tests/model_session.py).  A few
short sessions here; `make model-long` runs 100,000 messages."""

from __future__ import annotations

import shutil

import pytest

import model_session as ms
from pit import testkeys

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")

SEEDS = (1, 2, 3)
MESSAGES = 200


@pytest.mark.parametrize("seed", SEEDS)
def test_a_random_session_agrees_with_the_model(keyhome, tmp_path, seed):
    s = ms.run_session(tmp_path, keyhome, seed, MESSAGES)
    assert s.messages >= MESSAGES and s.checks >= 3
    assert s.model.posted_trades(), "a session without a trade checks too little"
