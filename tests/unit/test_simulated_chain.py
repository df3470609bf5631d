"""The simulated chain every mock provider of a fleet serves: deterministic, linked, reorgable."""

from __future__ import annotations

import pytest

from lasso_rpc.battle.providers.blocks import (
    APPROVAL_TOPIC,
    TRANSFER_TOPIC,
    AlreadyKnown,
    ChainEvent,
    LogFilter,
)
from lasso_rpc.battle.providers.chain import SimulatedChain
from lasso_rpc.clock import FakeClock


def make_chain(**kw: object) -> SimulatedChain:
    kw.setdefault("clock", FakeClock())
    return SimulatedChain(**kw)  # type: ignore[arg-type]


def test_two_chains_with_the_same_inputs_have_the_same_blocks() -> None:
    a, b = make_chain(chain_id=1), make_chain(chain_id=1)
    a.mine(5)
    b.mine(5)
    assert a.head_number == b.head_number == 128 + 5
    assert [a.block(n).hash for n in range(a.head_number + 1)] == [  # type: ignore[union-attr]
        b.block(n).hash  # type: ignore[union-attr]
        for n in range(b.head_number + 1)
    ]
    assert a.head.to_rpc() == b.head.to_rpc()


def test_other_chain_id_gives_other_hashes() -> None:
    assert make_chain(chain_id=1).head.hash != make_chain(chain_id=10).head.hash


def test_blocks_link_to_their_parents_and_time_moves_forward() -> None:
    chain = make_chain(initial_blocks=20)
    chain.mine(3)
    for n in range(1, chain.head_number + 1):
        block, parent = chain.block(n), chain.block(n - 1)
        assert block is not None and parent is not None
        assert block.parent_hash == parent.hash
        assert block.timestamp > parent.timestamp
        assert chain.block_by_hash(block.hash) is block
        assert block.to_rpc()["parentHash"] == parent.hash


def test_mine_notifies_listeners_until_removed() -> None:
    chain = make_chain()
    seen: list[ChainEvent] = []
    remove = chain.add_listener(seen.append)
    head = chain.mine()
    assert seen == [ChainEvent(head)]
    remove()
    chain.mine()
    assert len(seen) == 1


def test_a_failing_listener_does_not_stop_mining() -> None:
    chain = make_chain()

    def broken(event: ChainEvent) -> None:
        raise RuntimeError("boom")

    seen: list[ChainEvent] = []
    chain.add_listener(broken)
    chain.add_listener(seen.append)
    chain.mine(2)
    assert len(seen) == 2


def test_every_block_has_linked_synthetic_logs() -> None:
    chain = make_chain(logs_per_block=3)
    block = chain.head
    assert len(block.logs) == 3
    assert [lg.log_index for lg in block.logs] == [0, 1, 2]
    for lg in block.logs:
        assert lg.block_hash == block.hash and lg.block_number == block.number
        assert lg.transaction_hash == block.txs[lg.transaction_index].hash
        assert lg.address in chain.contracts
        rpc = lg.to_rpc()
        assert rpc["logIndex"] == hex(lg.log_index) and rpc["removed"] is False


def test_log_filters_by_address_and_topic_position() -> None:
    chain = make_chain(initial_blocks=30)
    every = chain.logs(1, chain.head_number)
    assert len(every) == 30 * 3
    contract = chain.contracts[0]
    by_address = chain.logs(1, chain.head_number, LogFilter.parse({"address": contract}))
    assert by_address and all(lg.address == contract for lg in by_address)
    approvals = chain.logs(1, chain.head_number, LogFilter.parse({"topics": [APPROVAL_TOPIC]}))
    transfers = chain.logs(1, chain.head_number, LogFilter.parse({"topics": [[TRANSFER_TOPIC]]}))
    assert len(approvals) + len(transfers) == len(every)
    sender_topic = every[0].topics[1]
    by_sender = chain.logs(1, chain.head_number, LogFilter.parse({"topics": [None, sender_topic]}))
    assert by_sender == [every[0]]
    several = LogFilter.parse({"address": [c.upper().replace("0X", "0x") for c in chain.contracts]})
    assert chain.logs(1, chain.head_number, several) == every


@pytest.mark.parametrize(
    "spec",
    [{"address": "0x1234"}, {"topics": ["nothex"]}, {"topics": "0x00"}, {"topics": [None] * 5}],
)
def test_malformed_filters_are_rejected(spec: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LogFilter.parse(spec)


def test_reorg_replaces_blocks_at_the_same_numbers() -> None:
    chain = make_chain(initial_blocks=10)
    old = [chain.block(n) for n in (9, 10)]
    keep = chain.block(8)
    events: list[ChainEvent] = []
    chain.add_listener(events.append)
    new = chain.reorg(2)
    assert [b.number for b in new] == [9, 10]
    assert new[0].parent_hash == keep.hash  # type: ignore[union-attr]
    assert new[1].parent_hash == new[0].hash
    assert all(o.hash != n.hash for o, n in zip(old, new, strict=True))  # type: ignore[union-attr]
    assert chain.head is new[1] and chain.head_number == 10
    assert chain.block_by_hash(old[1].hash) is None  # type: ignore[union-attr]
    assert [(e.block, e.replaced) for e in events] == list(zip(new, old, strict=True))
    assert all(lg.block_hash == new[1].hash for lg in new[1].logs)
    nxt = chain.mine()
    assert nxt.parent_hash == new[1].hash


def test_reorg_depth_is_checked() -> None:
    chain = make_chain(initial_blocks=3)
    with pytest.raises(ValueError):
        chain.reorg(0)
    with pytest.raises(ValueError):
        chain.reorg(5)


def test_history_is_bounded() -> None:
    chain = make_chain(initial_blocks=3, max_history=5)
    first = chain.block(1)
    chain.mine(10)
    assert chain.head_number == 13
    assert chain.oldest_number == 9
    assert chain.block(8) is None
    assert chain.block_by_hash(first.hash) is None  # type: ignore[union-attr]
    assert {lg.block_number for lg in chain.logs(0, 13)} == {9, 10, 11, 12, 13}


def test_raw_transactions_are_accepted_once_and_included_by_the_next_block() -> None:
    chain = make_chain()
    tx_hash = chain.send_raw_transaction("0xf86c0a85")
    assert tx_hash.startswith("0x") and len(tx_hash) == 66
    with pytest.raises(AlreadyKnown):
        chain.send_raw_transaction("0xF86C0A85")
    assert chain.find_tx(tx_hash) is None  # pending
    block = chain.mine()
    found = chain.find_tx(tx_hash)
    assert found is not None and found[0] is block
    receipt = block.receipt_rpc(found[1])
    assert receipt["transactionHash"] == tx_hash and receipt["status"] == "0x1"
    assert tx_hash in block.to_rpc()["transactions"]
    with pytest.raises(AlreadyKnown):
        chain.send_raw_transaction("0xf86c0a85")
    other = chain.send_raw_transaction("0xf86c0a86")
    assert other != tx_hash


def test_an_included_transaction_survives_a_reorg_and_is_forgotten_when_pruned() -> None:
    chain = make_chain(initial_blocks=2, max_history=4)
    tx_hash = chain.send_raw_transaction("0x01")
    chain.mine()
    new_head = chain.reorg(1)[0]
    found = chain.find_tx(tx_hash)
    assert found is not None and found[0] is new_head
    chain.mine(4)
    assert chain.find_tx(tx_hash) is None


def test_balances_and_nonces_are_deterministic_per_address() -> None:
    chain = make_chain()
    a, b = "0x" + "11" * 20, "0x" + "22" * 20
    assert chain.balance(a) == make_chain().balance(a) == chain.balance(a.upper())
    assert chain.balance(a) != chain.balance(b)
    assert chain.balance(a) > 0
    assert chain.nonce(a) == chain.nonce(a)


async def test_produce_without_block_time_returns_at_once() -> None:
    chain = make_chain(block_time_ms=0)
    await chain.produce()
    assert chain.head_number == 128


def test_repr_shows_the_state() -> None:
    chain = make_chain(chain_id=5, initial_blocks=4)
    assert "chain_id=5" in repr(chain) and "head=4" in repr(chain)
