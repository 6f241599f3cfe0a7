"""The kinds of request a member or the operator signs, one module each,
and :data:`KINDS`, the one table of them that the notary, the filters, the
audit and the ``pit`` command read.

A kind's module says what it is (its docstring, and docs/kinds/NAME.md
with examples that run) and has:

``NAME``      its ``X-Pit-Kind`` (``deposit``)
``KEY``       its key in a signed request (``Deposit: 100 USD to alice``)
``SIGNER``    who may sign it: ``operator``, or ``owner`` (the member owning
              the request's account)
``NUMBERS``   whether the notary reads its numbers with the pit's
              instruments (``resolve``) before stamping it
``CLASSES``   its instruction records (an order's: Order, Cancel, Modify)
``EXAMPLES``  canonical texts, one of each class (tests/test_kinds.py reads them)
``parse(value, line)``   the instruction from the key's value, strictly
``text(ins)``            its canonical text (the ``X-Pit-Request`` stamp)
``resolve(ins, instruments, currencies, ticker, line)``   numbers read
``resolved(ins)``        whether they are

Adding a kind is its module, its line in :data:`KINDS`, its page in
docs/kinds/, and the filter that executes it; tests/test_kinds.py fails
while any part is missing.

>>> [k.NAME for k in KINDS][:4], order.SIGNER, deposit.SIGNER
(['order', 'transfer', 'deposit', 'withdrawal'], 'owner', 'operator')
>>> parse("deposit", "1000.00 USD to alice")
Deposit(amount='1000.00', asset='USD', to='alice', units=None)
"""

from __future__ import annotations

from pit.kinds import currency, deposit, fees, instrument, member, order, rules, transfer, withdrawal

__all__ = ["KINDS", "NAMES", "KEYS", "BY_NAME", "BY_KEY", "OF_CLASS", "OPERATOR", "NUMBERS",
           "of", "parse"]

# in the order a request's error message lists their keys
KINDS = (order, transfer, deposit, withdrawal, member, currency, instrument, fees, rules)

NAMES = tuple(k.NAME for k in KINDS)
KEYS = tuple(k.KEY for k in KINDS)
BY_NAME = {k.NAME: k for k in KINDS}
BY_KEY = {k.KEY: k for k in KINDS}
OF_CLASS = {cls: k for k in KINDS for cls in k.CLASSES}
OPERATOR = frozenset(k.NAME for k in KINDS if k.SIGNER == "operator")
NUMBERS = frozenset(k.NAME for k in KINDS if k.NUMBERS)


def of(instruction):
    """The kind (module) of an instruction record."""
    return OF_CLASS[type(instruction)]


def parse(name: str, text: str, line: int = 1):
    """The instruction of a record of kind *name* from its canonical
    ``X-Pit-Request`` text."""
    return BY_NAME[name].parse(text, line)
