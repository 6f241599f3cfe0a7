"""The table of request kinds (pit.kinds.KINDS): every kind is complete,
and what the notary, the filters, the audit and pit.message know of kinds
is read from it."""

from __future__ import annotations

import pytest

from pit import kinds, message

PARTS = ("NAME", "KEY", "SIGNER", "NUMBERS", "CLASSES", "EXAMPLES", "parse", "text", "resolve",
         "resolved")

@pytest.mark.parametrize("kind", kinds.KINDS, ids=lambda k: k.__name__)
def test_a_kind_is_complete(kind):
    missing = [p for p in PARTS if not hasattr(kind, p)]
    assert not missing, f"{kind.__name__} lacks {', '.join(missing)}"
    assert kind.__doc__ and kind.__doc__.strip(), f"{kind.__name__}: say what it is"
    assert kind.NAME == kind.KEY.lower() and kind.__name__ == f"pit.kinds.{kind.NAME}"
    assert kind.SIGNER in ("operator", "owner")
    assert kind.CLASSES and all(callable(getattr(kind, f)) for f in PARTS[6:])
    parsed = [kind.parse(text, 1) for text in kind.EXAMPLES]
    assert [kind.text(ins) for ins in parsed] == list(kind.EXAMPLES)
    assert {type(ins) for ins in parsed} == set(kind.CLASSES), "an example of each class"
    assert all(kinds.of(ins) is kind for ins in parsed)


def test_the_table_is_one():
    assert len(set(kinds.NAMES)) == len(kinds.KINDS) == len(set(kinds.KEYS))
    assert len(kinds.OF_CLASS) == sum(len(k.CLASSES) for k in kinds.KINDS)
    assert set(message.KINDS) == set(kinds.NAMES) | {"report", "checkpoint", "seal"}


def test_a_request_of_each_kind_reads_through_the_table():
    for kind, text in ((k, t) for k in kinds.KINDS for t in k.EXAMPLES):
        account = "operator" if kind.SIGNER == "operator" else "alice"
        req = message.parse_request(f"Pit: demo\nAccount: {account}\nRef: 1\n{kind.KEY}: {text}\n")
        assert req.kind == kind.NAME and message.instruction_text(req) == text
        assert message.request_text(req).endswith(f"\n{kind.KEY}: {text}\n")
        assert message.kind_of_text(message.request_text(req)) == kind.NAME
