"""The table of request kinds (pit.kinds.KINDS): every kind is complete,
and what the notary, the filters, the audit and pit.message know of kinds
is read from it."""

from __future__ import annotations

import pytest

from pit import kinds, message

PARTS = ("NAME", "KEY", "SIGNER", "NUMBERS", "CLASSES", "parse", "text", "resolve", "resolved")

# one canonical X-Pit-Request text per instruction class
EXAMPLES = {
    "Order": "buy 100 ACME limit 12.50", "Cancel": "cancel 17", "Modify": "modify 17 qty 90",
    "Transfer": "100.00 USD to alice:ACME", "Deposit": "1000.00 USD to alice",
    "Withdrawal": "50.00 USD from alice",
    "Member": "add 9647B5B8FCC30BFBE8C790B08F9B3AE9A036F739 accounts alice, bob",
    "CurrencyDef": "USD 0.01", "InstrumentDef": "ACME USD tick 0.01 lot 1",
    "Fees": "maker 0.1% taker 0.2%",
}


@pytest.mark.parametrize("kind", kinds.KINDS, ids=lambda k: k.__name__)
def test_a_kind_is_complete(kind):
    missing = [p for p in PARTS if not hasattr(kind, p)]
    assert not missing, f"{kind.__name__} lacks {', '.join(missing)}"
    assert kind.__doc__ and kind.__doc__.strip(), f"{kind.__name__}: say what it is"
    assert kind.NAME == kind.KEY.lower() and kind.__name__ == f"pit.kinds.{kind.NAME}"
    assert kind.SIGNER in ("operator", "owner")
    assert kind.CLASSES and all(callable(getattr(kind, f)) for f in PARTS[5:])
    for cls in kind.CLASSES:
        assert cls.__name__ in EXAMPLES, f"give {cls.__name__} an example here"
        text = EXAMPLES[cls.__name__]
        ins = kind.parse(text, 1)
        assert type(ins) is cls and kind.text(ins) == text, (cls, text)
        assert kinds.of(ins) is kind


def test_the_table_is_one():
    assert len(set(kinds.NAMES)) == len(kinds.KINDS) == len(set(kinds.KEYS))
    assert len(kinds.OF_CLASS) == sum(len(k.CLASSES) for k in kinds.KINDS)
    assert set(message.KINDS) == set(kinds.NAMES) | {"report", "checkpoint", "seal"}


def test_a_request_of_each_kind_reads_through_the_table():
    for name, text in EXAMPLES.items():
        kind = kinds.OF_CLASS[next(c for c in kinds.OF_CLASS if c.__name__ == name)]
        account = "operator" if kind.SIGNER == "operator" else "alice"
        req = message.parse_request(f"Pit: demo\nAccount: {account}\nRef: 1\n{kind.KEY}: {text}\n")
        assert req.kind == kind.NAME and message.instruction_text(req) == text
        assert message.request_text(req).endswith(f"\n{kind.KEY}: {text}\n")
        assert message.kind_of_text(message.request_text(req)) == kind.NAME
