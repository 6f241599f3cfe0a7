"""pit.record: a record class behaves as the dataclass declared the same way."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from pit.record import FrozenInstanceError, Record, field, replace


@dataclasses.dataclass(frozen=True, slots=True)
class DOrder:
    side: str
    qty: str
    price: str | None = None
    line: int = dataclasses.field(default=0, compare=False)
    secret: str = dataclasses.field(default="", repr=False)


class ROrder(Record, frozen=True):
    side: str
    qty: str
    price: str | None = None
    line: int = field(default=0, compare=False)
    secret: str = field(default="", repr=False)


@dataclasses.dataclass
class DKey:
    fingerprint: str
    material: object = dataclasses.field(repr=False)
    revoked: bool = False


class RKey(Record):
    fingerprint: str
    material: object = field(repr=False)
    revoked: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class DEnvelope:
    sender: str
    time: str

    def __post_init__(self):
        if "@" not in self.sender:
            raise ValueError("bad sender")
        object.__setattr__(self, "time", self.time[:19] + "Z")


class REnvelope(Record, frozen=True):
    sender: str
    time: str

    def __post_init__(self):
        if "@" not in self.sender:
            raise ValueError("bad sender")
        object.__setattr__(self, "time", self.time[:19] + "Z")


def _values(obj) -> tuple:
    return tuple(getattr(obj, n) for n in obj.__match_args__)


ARGS = [(("buy", "1"), {}), (("buy", "1", "2.5"), {}), (("sell",), {"qty": "3", "line": 7}),
        ((), {"side": "buy", "qty": "1", "price": None, "line": 2, "secret": "x"}),
        (("buy", "1", "2.5", 4, "s"), {})]


@pytest.mark.parametrize("args,kwargs", ARGS)
def test_frozen_record_is_the_dataclass(args, kwargs):
    d, r = DOrder(*args, **kwargs), ROrder(*args, **kwargs)
    assert _values(r) == _values(d)
    assert repr(r) == repr(d).replace("DOrder", "ROrder")
    assert r.__match_args__ == d.__match_args__ and r.__slots__ == d.__slots__
    assert not hasattr(r, "__dict__")
    for a2, k2 in ARGS:
        d2, r2 = DOrder(*a2, **k2), ROrder(*a2, **k2)
        assert (r == r2) == (d == d2) and (r != r2) == (d != d2)
        assert (hash(r) == hash(r2)) == (hash(d) == hash(d2))
    assert hash(r) == hash(d)
    assert r != d and (r == ("buy", "1")) is False
    with pytest.raises(FrozenInstanceError):
        r.side = "sell"
    with pytest.raises(AttributeError):
        r.other = 1
    with pytest.raises(FrozenInstanceError):
        del r.qty
    r2, d2 = replace(r, qty="9", line=3), dataclasses.replace(d, qty="9", line=3)
    assert _values(r2) == _values(d2) and _values(r) == _values(d)
    assert copy.copy(r) == r and pickle.loads(pickle.dumps(r)) == r
    assert _values(pickle.loads(pickle.dumps(r))) == _values(r)


@pytest.mark.parametrize("args,kwargs", [((), {}), (("buy",), {}), (("buy", "1"), {"side": "x"}),
                                         (("buy", "1"), {"colour": "red"}),
                                         (("a", "b", "c", 1, "d", "e"), {})])
def test_bad_arguments_are_refused_as_by_the_dataclass(args, kwargs):
    with pytest.raises(TypeError):
        DOrder(*args, **kwargs)
    with pytest.raises(TypeError):
        ROrder(*args, **kwargs)
    with pytest.raises(TypeError):
        replace(ROrder("buy", "1"), colour="red")


def test_mutable_record_is_the_dataclass():
    d, r = DKey("F" * 40, object()), RKey("F" * 40, object())
    assert repr(r) == repr(d).replace("DKey", "RKey")
    assert r != RKey("F" * 40, None) and d != DKey("F" * 40, None)   # material compared too
    assert r == RKey("F" * 40, r.material) and d == DKey("F" * 40, d.material)
    r.revoked = d.revoked = True
    assert r.revoked and r != RKey("F" * 40, r.material)
    with pytest.raises(TypeError):
        hash(r)
    with pytest.raises(TypeError):
        hash(d)


def test_post_init_runs_on_init_and_replace():
    r = REnvelope("a@b", "2026-11-22T00:52:38.123Z")
    d = DEnvelope("a@b", "2026-11-22T00:52:38.123Z")
    assert r.time == d.time == "2026-11-22T00:52:38Z"
    assert replace(r, time="2027-01-01T00:00:00.5Z").time == "2027-01-01T00:00:00Z"
    with pytest.raises(ValueError):
        REnvelope("nobody", "x")
    with pytest.raises(ValueError):
        replace(r, sender="nobody")


def test_declaration_errors():
    with pytest.raises(TypeError):
        class Bad(Record):
            a: int = 0
            b: int
    with pytest.raises(TypeError):
        class Sub(ROrder):
            more: int = 0
