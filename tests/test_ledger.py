"""pit.ledger: the operations by name and the same on the cells a caller keeps."""

import random

import pytest

from pit.ledger import Cell, Insufficient, Ledger


def test_a_cell_is_kept_for_good_and_empty_ones_are_not_listed():
    led = Ledger()
    c = led.cell("alice:ACME", "USD")
    assert isinstance(c, Cell) and led.cell("alice:ACME", "USD") is c
    assert led.accounts() == [] and led.available("alice:ACME", "USD") == 0
    led.credit("alice:ACME", "USD", 100)
    led.hold_cell(c, 100)
    led.settle_cells(c, led.cell("alice:ACME", "ACME"), led.cell("bob:ACME", "ACME"),
                     led.cell("bob:ACME", "USD"), led.cell("fees:ACME", "USD"),
                     0, 100, 100, 0, 0)
    assert c.balance == 0 and c.held == 0 and led.cell("alice:ACME", "USD") is c
    assert led.accounts() == []           # every cell is back to zero: none listed


def test_a_refused_hold_or_debit_changes_nothing():
    led = Ledger()
    led.credit("alice", "USD", 5)
    before = led.accounts()
    with pytest.raises(Insufficient) as e:
        led.hold_cell(led.cell("alice", "USD"), 6)
    assert (e.value.account, e.value.asset, e.value.need, e.value.available) == ("alice", "USD", 6, 5)
    with pytest.raises(Insufficient):
        led.hold("carol", "USD", 1)       # an account never credited
    with pytest.raises(Insufficient):
        led.debit("alice", "USD", 6)
    with pytest.raises(ValueError):
        led.release_cell(led.cell("alice", "USD"), 1)
    assert led.accounts() == before and led.available("carol", "USD") == 0


def test_cells_and_names_give_the_same_ledger():
    """Random holds, releases and trades, once by name and once on kept
    cells: the same accounts, balances and holds, and the same refusals."""
    rng = random.Random(7)
    names = [f"t{i}:ACME" for i in range(5)]
    by_name, by_cell = Ledger(), Ledger()
    for a in names:
        for led in (by_name, by_cell):
            led.credit(a, "USD", 10_000)
            led.credit(a, "ACME", 100)
    for _ in range(2_000):
        buyer, seller = rng.choice(names), rng.choice(names)
        qty, price = rng.randint(1, 20), rng.randint(1, 30)
        fill = rng.randint(0, qty)
        outcomes = []
        for led, cells in ((by_name, False), (by_cell, True)):
            try:
                if cells:
                    led.hold_cell(led.cell(buyer, "USD"), qty * price)
                    led.hold_cell(led.cell(seller, "ACME"), qty)
                else:
                    led.hold(buyer, "USD", qty * price)
                    led.hold(seller, "ACME", qty)
            except Insufficient as e:
                outcomes.append(str(e))
                if e.asset == "ACME":         # the buyer's hold stood: give it back
                    led.release(buyer, "USD", qty * price)
                continue
            cost, fee = fill * price, fill * price // 10
            if cells:
                c = led.cell
                led.settle_cells(c(buyer, "USD"), c(buyer, "ACME"), c(seller, "ACME"),
                                 c(seller, "USD"), c("fees:ACME", "USD"),
                                 fill, fill * price, cost, cost - fee, fee)
                led.release_cell(c(buyer, "USD"), (qty - fill) * price)
                led.release_cell(c(seller, "ACME"), qty - fill)
            else:
                led.settle(buyer, seller, "fees:ACME", "USD", "ACME",
                           fill, fill * price, cost, cost - fee, fee)
                led.release(buyer, "USD", (qty - fill) * price)
                led.release(seller, "ACME", qty - fill)
            outcomes.append("settled")
        assert outcomes[0] == outcomes[1]
        assert by_name.accounts() == by_cell.accounts()
    assert by_cell.total("USD") == 5 * 10_000 and by_cell.total("ACME") == 5 * 100
    assert all(h == 0 for *_, h in by_cell.accounts())
