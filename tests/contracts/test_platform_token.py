"""PlatformToken on the real Clique chain: owner-only mint, burn and set; transfers;
projects published (with and without a price) and bought; events; reverts."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from eth_account import Account
from hexbytes import HexBytes
from web3.contract import AsyncContract
from web3.logs import DISCARD
from web3.types import TxReceipt

from ethgw_wire.artifacts import ContractArtifact
from tests.chain_helpers import Signer, deploy, revert_error, wait_for_all, wait_for_receipt
from tests.contracts.conftest import DEFAULT_PRICE, HOLDING, PUBLISH_REWARD, AccountPool

pytestmark = pytest.mark.slow

ZERO_ADDRESS = "0x" + "00" * 20
T0 = 1_700_000_000  # the application's timestamps (uint64 seconds)
PRICE = 40
MINTED = 7
BURNED = 300
SET_UP = HOLDING + 500
SET_DOWN = 250
TRANSFERRED = 123
ALLOWED = 50
SPENT = 20
NEW_REWARD = 150
NEW_DEFAULT_PRICE = 35


def events(token: AsyncContract, name: str, receipt: TxReceipt) -> list[dict[str, Any]]:
    """The decoded `name` events of one receipt, as plain dicts of their arguments."""
    found = getattr(token.events, name)().process_receipt(receipt, errors=DISCARD)
    return [dict(event["args"]) for event in found]


def the_event(token: AsyncContract, name: str, receipt: TxReceipt) -> dict[str, Any]:
    """The one `name` event of a receipt."""
    found = events(token, name, receipt)
    assert len(found) == 1, found
    return found[0]


async def balance_at(token: AsyncContract, account: str, receipt: TxReceipt) -> int:
    """`account`'s balance right after the block holding `receipt`."""
    return int(
        await token.functions.balanceOf(account).call(block_identifier=receipt["blockNumber"])
    )


async def supply_change(token: AsyncContract, receipt: TxReceipt) -> int:
    """How much totalSupply moved in the block holding `receipt`."""
    block = receipt["blockNumber"]
    after = await token.functions.totalSupply().call(block_identifier=block)
    before = await token.functions.totalSupply().call(block_identifier=block - 1)
    return int(after) - int(before)


def fresh_address() -> str:
    return str(Account.create().address)


def project_hash() -> bytes:
    return os.urandom(32)


@dataclass
class Scenario:
    """Every kind of action, sent concurrently in two rounds, and their receipts."""

    minted_to: str
    mint: TxReceipt
    burned: Signer
    burn: TxReceipt
    raised: Signer
    set_up: TxReceipt
    lowered: Signer
    set_down: TxReceipt
    sender: Signer
    recipient: str
    transfer: TxReceipt
    holder: Signer
    spender: Signer
    spent_to: str
    approve: TxReceipt
    transfer_from: TxReceipt
    stranger: Signer
    failed_mint: TxReceipt
    priced_publisher: Signer
    priced_hash: bytes
    priced_id: int
    publish_priced: TxReceipt
    default_publisher: Signer
    default_hash: bytes
    publish_default: TxReceipt
    buyers: list[Signer]
    buys: list[TxReceipt]
    reward_change: TxReceipt
    price_change: TxReceipt


async def _shared_rounds(owner: Signer, token: AsyncContract, pool: AccountPool) -> Scenario:
    """On the module's token. Round 1: mint, burn, set up and down, transfer,
    approve, a non-owner mint mined as failed, a publish with a price and one
    without. Round 2 (needs round 1): transferFrom, two purchases of the priced
    project, both parameter changes."""
    f = token.functions
    burned, raised, lowered, sender, holder, spender, stranger, priced, default = pool.take(9)
    buyers = pool.take(2)
    minted_to, recipient, spent_to = fresh_address(), fresh_address(), fresh_address()
    priced_hash, default_hash = project_hash(), project_hash()
    round1 = await asyncio.gather(
        owner.submit(f.mint(minted_to, MINTED)),
        owner.submit(f.burn(burned.address, BURNED)),
        owner.submit(f.setBalance(raised.address, SET_UP)),
        owner.submit(f.setBalance(lowered.address, SET_DOWN)),
        sender.submit(f.transfer(recipient, TRANSFERRED)),
        holder.submit(f.approve(spender.address, ALLOWED)),
        stranger.submit(f.mint(stranger.address, MINTED), gas=100_000),
        priced.submit(f.publishProject("Priced", priced_hash, T0, PRICE)),
        default.submit(f.publishProject("Default", default_hash, T0 + 1)),
    )
    receipts = await asyncio.gather(*(wait_for_receipt(owner.w3, h) for h in round1))
    mint, burn, set_up, set_down, transfer, approve, failed_mint, pub_priced, pub_default = receipts
    assert all(r["status"] == 1 for r in receipts if r is not failed_mint)
    priced_id = int(the_event(token, "ProjectPublished", pub_priced)["id"])
    round2 = await asyncio.gather(
        spender.submit(f.transferFrom(holder.address, spent_to, SPENT)),
        buyers[0].submit(f.buyProject(priced_id, T0 + 10)),
        buyers[1].submit(f.buyProject(priced_id, T0 + 11)),
        owner.submit(f.setPublishReward(NEW_REWARD)),
        owner.submit(f.setDefaultPrice(NEW_DEFAULT_PRICE)),
    )
    transfer_from, buy0, buy1, reward_change, price_change = await wait_for_all(owner.w3, round2)
    return Scenario(
        minted_to=minted_to,
        mint=mint,
        burned=burned,
        burn=burn,
        raised=raised,
        set_up=set_up,
        lowered=lowered,
        set_down=set_down,
        sender=sender,
        recipient=recipient,
        transfer=transfer,
        holder=holder,
        spender=spender,
        spent_to=spent_to,
        approve=approve,
        transfer_from=transfer_from,
        stranger=stranger,
        failed_mint=failed_mint,
        priced_publisher=priced,
        priced_hash=priced_hash,
        priced_id=priced_id,
        publish_priced=pub_priced,
        default_publisher=default,
        default_hash=default_hash,
        publish_default=pub_default,
        buyers=buyers,
        buys=[buy0, buy1],
        reward_change=reward_change,
        price_change=price_change,
    )


@dataclass
class Isolated:
    """Actions each alone on a token deployed for it, so the block-to-block change
    of that token's totalSupply is the effect of that one transaction."""

    supply: dict[str, tuple[AsyncContract, TxReceipt]]
    ids_token: AsyncContract
    ownership_token: AsyncContract
    successor: Signer
    ledger_token: AsyncContract
    ledger_holders: list[str]


async def _isolated_rounds(
    owner: Signer, pool: AccountPool, artifact: ContractArtifact
) -> Isolated:
    """Round 1 deploys a token per purpose; round 2 runs the lone actions that need
    nothing and the preconditions of the others; round 3 the rest; round 4 the
    ledger token's purchase."""
    purposes = ["mint", "burn", "set_up", "set_down", "publish", "buy", "ids", "owner", "ledger"]
    deployments = await asyncio.gather(
        *(deploy(owner, artifact, PUBLISH_REWARD, DEFAULT_PRICE) for _ in purposes)
    )
    t = {
        purpose: token.functions for purpose, (token, _) in zip(purposes, deployments, strict=True)
    }
    burnt, lowered, publisher, seller, buyer, ids_publisher, successor, a, b, c = pool.take(10)
    outsider = fresh_address()
    r2 = await _run(
        owner,
        owner.submit(t["mint"].mint(fresh_address(), 11)),
        owner.submit(t["set_up"].setBalance(fresh_address(), 17)),
        publisher.submit(t["publish"].publishProject("R", project_hash(), T0)),
        owner.submit(t["burn"].mint(burnt.address, 100)),
        owner.submit(t["set_down"].mint(lowered.address, 100)),
        seller.submit(t["buy"].publishProject("S", project_hash(), T0, PRICE)),
        owner.submit(t["buy"].mint(buyer.address, 100)),
        ids_publisher.submit(t["ids"].publishProject("A", project_hash(), T0)),
        ids_publisher.submit(t["ids"].publishProject("B", project_hash(), T0)),
        owner.submit(t["owner"].transferOwnership(successor.address)),
        owner.submit(t["ledger"].mint(a.address, 500)),
        owner.submit(t["ledger"].mint(b.address, 300)),
        owner.submit(t["ledger"].setBalance(c.address, 90)),
    )
    r3 = await _run(
        owner,
        owner.submit(t["burn"].burn(burnt.address, 13)),
        owner.submit(t["set_down"].setBalance(lowered.address, 100 - 19)),
        buyer.submit(t["buy"].buyProject(1, T0)),
        owner.submit(t["ledger"].burn(b.address, 120)),
        owner.submit(t["ledger"].setBalance(c.address, 40)),
        a.submit(t["ledger"].transfer(outsider, 75)),
        b.submit(t["ledger"].publishProject("P", project_hash(), T0, 60)),
    )
    await _run(owner, a.submit(t["ledger"].buyProject(1, T0)))
    tokens = {purpose: token for purpose, (token, _) in zip(purposes, deployments, strict=True)}
    lone = {"mint": r2[0], "set_up": r2[1], "publish": r2[2], "burn": r3[0], "set_down": r3[1]}
    lone["buy"] = r3[2]
    return Isolated(
        supply={purpose: (tokens[purpose], receipt) for purpose, receipt in lone.items()},
        ids_token=tokens["ids"],
        ownership_token=tokens["owner"],
        successor=successor,
        ledger_token=tokens["ledger"],
        ledger_holders=[a.address, b.address, c.address, outsider],
    )


async def _run(signer: Signer, *sends: Awaitable[HexBytes]) -> list[TxReceipt]:
    """Send a round of transactions at once; their receipts, all successful."""
    return await wait_for_all(signer.w3, await asyncio.gather(*sends))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def rounds(
    owner: Signer, token: AsyncContract, pool: AccountPool, token_artifact: ContractArtifact
) -> tuple[Scenario, Isolated]:
    """Both sets of rounds, run side by side (about four blocks in all)."""
    shared, isolated = await asyncio.gather(
        _shared_rounds(owner, token, pool), _isolated_rounds(owner, pool, token_artifact)
    )
    return shared, isolated


@pytest.fixture(scope="module")
def scenario(rounds: tuple[Scenario, Isolated]) -> Scenario:
    """The module token's actions and receipts."""
    return rounds[0]


@pytest.fixture(scope="module")
def isolated(rounds: tuple[Scenario, Isolated]) -> Isolated:
    """The actions done alone on tokens of their own."""
    return rounds[1]


# -- deployment -----------------------------------------------------------------------


async def test_deployer_is_the_owner(token: AsyncContract, owner: Signer) -> None:
    """The account that deployed the token owns it."""
    assert await token.functions.owner().call() == owner.address


async def test_deploy_emits_ownership_and_parameter_events(
    deployed: tuple[AsyncContract, TxReceipt],
) -> None:
    """Deployment emits OwnershipTransferred from zero and both parameters from 0."""
    token, receipt = deployed
    assert the_event(token, "OwnershipTransferred", receipt)["previousOwner"] == ZERO_ADDRESS
    assert the_event(token, "PublishRewardChanged", receipt) == {
        "previousReward": 0,
        "newReward": PUBLISH_REWARD,
    }
    assert the_event(token, "DefaultPriceChanged", receipt) == {
        "previousPrice": 0,
        "newPrice": DEFAULT_PRICE,
    }


async def test_token_is_erc20_with_whole_units(token: AsyncContract) -> None:
    """name, symbol and decimals = 0: amounts are whole tokens."""
    f = token.functions
    assert (await f.name().call(), await f.symbol().call()) == ("Platform Token", "PLT")
    assert await f.decimals().call() == 0


# -- mint (the API's "add") -----------------------------------------------------------


async def test_owner_mint_credits_the_balance(token: AsyncContract, scenario: Scenario) -> None:
    """The owner mints to a fresh address: its balance is the minted value."""
    assert await balance_at(token, scenario.minted_to, scenario.mint) == MINTED


async def test_mint_emits_mint_and_transfer_from_zero(
    token: AsyncContract, scenario: Scenario
) -> None:
    """A mint emits Mint(to, value) and Transfer(0, to, value)."""
    assert the_event(token, "Mint", scenario.mint) == {"to": scenario.minted_to, "value": MINTED}
    assert the_event(token, "Transfer", scenario.mint) == {
        "from": ZERO_ADDRESS,
        "to": scenario.minted_to,
        "value": MINTED,
    }


async def test_mint_raises_total_supply_by_the_value(isolated: Isolated) -> None:
    """totalSupply grows by exactly the minted value."""
    token, receipt = isolated.supply["mint"]
    assert await supply_change(token, receipt) == 11


async def test_non_owner_mint_reverts_with_not_owner(
    token: AsyncContract, token_artifact: ContractArtifact
) -> None:
    """A mint from any account but the owner reverts with NotOwner(caller)."""
    caller = fresh_address()
    error = await revert_error(token.functions.mint(caller, 1), caller, token_artifact.abi)
    assert (error.name, error.args) == ("NotOwner", {"caller": caller})


async def test_non_owner_mint_is_mined_as_failed(token: AsyncContract, scenario: Scenario) -> None:
    """A non-owner's mint sent anyway is mined with status 0 and credits nothing."""
    assert scenario.failed_mint["status"] == 0
    assert await balance_at(token, scenario.stranger.address, scenario.failed_mint) == HOLDING


async def test_mint_to_the_zero_address_reverts(
    token: AsyncContract, owner: Signer, token_artifact: ContractArtifact
) -> None:
    """Minting to the zero address reverts with ZeroAddress."""
    fn = token.functions.mint(ZERO_ADDRESS, 1)
    assert (await revert_error(fn, owner.address, token_artifact.abi)).name == "ZeroAddress"


# -- burn (the API's "delete") --------------------------------------------------------


async def test_burn_debits_the_balance(token: AsyncContract, scenario: Scenario) -> None:
    """The owner burns from a holder: the holder's balance drops by the value."""
    balance = await balance_at(token, scenario.burned.address, scenario.burn)
    assert balance == HOLDING - BURNED


async def test_burn_emits_burn_and_transfer_to_zero(
    token: AsyncContract, scenario: Scenario
) -> None:
    """A burn emits Burn(from, value) and Transfer(from, 0, value)."""
    holder = scenario.burned.address
    assert the_event(token, "Burn", scenario.burn) == {"from": holder, "value": BURNED}
    assert the_event(token, "Transfer", scenario.burn) == {
        "from": holder,
        "to": ZERO_ADDRESS,
        "value": BURNED,
    }


async def test_burn_lowers_total_supply_by_the_value(isolated: Isolated) -> None:
    """totalSupply shrinks by exactly the burned value."""
    token, receipt = isolated.supply["burn"]
    assert await supply_change(token, receipt) == -13


async def test_burn_beyond_the_balance_reverts(
    token: AsyncContract, owner: Signer, pool: AccountPool, token_artifact: ContractArtifact
) -> None:
    """Burning more than the balance reverts with InsufficientBalance(account, has, needed)."""
    (holder,) = pool.take(1)
    fn = token.functions.burn(holder.address, HOLDING + 1)
    error = await revert_error(fn, owner.address, token_artifact.abi)
    assert (error.name, error.args) == (
        "InsufficientBalance",
        {"account": holder.address, "balance": HOLDING, "needed": HOLDING + 1},
    )


async def test_non_owner_burn_reverts(
    token: AsyncContract, pool: AccountPool, token_artifact: ContractArtifact
) -> None:
    """A holder cannot burn tokens, not even their own."""
    (holder,) = pool.take(1)
    fn = token.functions.burn(holder.address, 1)
    assert (await revert_error(fn, holder.address, token_artifact.abi)).name == "NotOwner"


# -- setBalance (the API's "set") -----------------------------------------------------


async def test_set_balance_up_sets_the_balance(token: AsyncContract, scenario: Scenario) -> None:
    """Setting a balance above the current one leaves exactly the set value."""
    assert await balance_at(token, scenario.raised.address, scenario.set_up) == SET_UP


async def test_set_balance_down_sets_the_balance(token: AsyncContract, scenario: Scenario) -> None:
    """Setting a balance below the current one leaves exactly the set value."""
    assert await balance_at(token, scenario.lowered.address, scenario.set_down) == SET_DOWN


async def test_set_balance_emits_previous_and_new_balance(
    token: AsyncContract, scenario: Scenario
) -> None:
    """BalanceSet carries the account, its previous and its new balance."""
    assert the_event(token, "BalanceSet", scenario.set_down) == {
        "account": scenario.lowered.address,
        "previousBalance": HOLDING,
        "newBalance": SET_DOWN,
    }


async def test_set_balance_up_raises_total_supply_by_the_difference(isolated: Isolated) -> None:
    """Raising a balance by d raises totalSupply by d."""
    token, receipt = isolated.supply["set_up"]
    assert await supply_change(token, receipt) == 17


async def test_set_balance_down_lowers_total_supply_by_the_difference(isolated: Isolated) -> None:
    """Lowering a balance by d lowers totalSupply by d."""
    token, receipt = isolated.supply["set_down"]
    assert await supply_change(token, receipt) == -19


async def test_non_owner_set_balance_reverts(
    token: AsyncContract, pool: AccountPool, token_artifact: ContractArtifact
) -> None:
    """A holder cannot set a balance, not even their own."""
    (holder,) = pool.take(1)
    fn = token.functions.setBalance(holder.address, 10**6)
    assert (await revert_error(fn, holder.address, token_artifact.abi)).name == "NotOwner"


# -- transfer, approve, transferFrom ----------------------------------------------------


async def test_transfer_debits_the_sender(token: AsyncContract, scenario: Scenario) -> None:
    """The sender's balance drops by the transferred value."""
    balance = await balance_at(token, scenario.sender.address, scenario.transfer)
    assert balance == HOLDING - TRANSFERRED


async def test_transfer_credits_the_recipient(token: AsyncContract, scenario: Scenario) -> None:
    """The recipient's balance rises by the transferred value."""
    assert await balance_at(token, scenario.recipient, scenario.transfer) == TRANSFERRED


async def test_transfer_emits_transfer(token: AsyncContract, scenario: Scenario) -> None:
    """A transfer emits Transfer(from, to, value)."""
    assert the_event(token, "Transfer", scenario.transfer) == {
        "from": scenario.sender.address,
        "to": scenario.recipient,
        "value": TRANSFERRED,
    }


async def test_transfer_beyond_the_balance_reverts(
    token: AsyncContract, pool: AccountPool, token_artifact: ContractArtifact
) -> None:
    """Sending more than one holds reverts with InsufficientBalance."""
    (holder,) = pool.take(1)
    fn = token.functions.transfer(fresh_address(), HOLDING + 1)
    assert (await revert_error(fn, holder.address, token_artifact.abi)).args == {
        "account": holder.address,
        "balance": HOLDING,
        "needed": HOLDING + 1,
    }


async def test_transfer_from_spends_the_allowance(token: AsyncContract, scenario: Scenario) -> None:
    """transferFrom moves the holder's tokens and lowers the spender's allowance."""
    block = scenario.transfer_from["blockNumber"]
    allowance = token.functions.allowance(scenario.holder.address, scenario.spender.address)
    assert await balance_at(token, scenario.spent_to, scenario.transfer_from) == SPENT
    assert await allowance.call(block_identifier=block) == ALLOWED - SPENT


async def test_transfer_from_beyond_the_allowance_reverts(
    token: AsyncContract, scenario: Scenario, token_artifact: ContractArtifact
) -> None:
    """Spending past the allowance reverts with InsufficientAllowance."""
    holder, spender = scenario.holder.address, scenario.spender.address
    fn = token.functions.transferFrom(holder, fresh_address(), ALLOWED)
    error = await revert_error(fn, spender, token_artifact.abi)
    assert (error.name, error.args["allowance"]) == ("InsufficientAllowance", ALLOWED - SPENT)


# -- publishProject -----------------------------------------------------------------------


async def test_publish_with_a_price_records_the_project(
    token: AsyncContract, scenario: Scenario
) -> None:
    """projects(id) gives back publisher, name, hash, time and the given price."""
    project = await token.functions.projects(scenario.priced_id).call()
    assert project == [
        scenario.priced_publisher.address,
        "Priced",
        scenario.priced_hash,
        T0,
        PRICE,
    ]


async def test_publish_without_a_price_uses_the_default_price(
    token: AsyncContract, scenario: Scenario
) -> None:
    """The three-argument publishProject prices the project at defaultPrice."""
    event = the_event(token, "ProjectPublished", scenario.publish_default)
    project = await token.functions.projects(event["id"]).call()
    assert project[4] == DEFAULT_PRICE


async def test_publish_emits_project_published_with_all_fields(
    token: AsyncContract, scenario: Scenario
) -> None:
    """ProjectPublished carries id, publisher, name, hash, time, price and reward."""
    assert the_event(token, "ProjectPublished", scenario.publish_priced) == {
        "id": scenario.priced_id,
        "publisher": scenario.priced_publisher.address,
        "name": "Priced",
        "projectHash": scenario.priced_hash,
        "time": T0,
        "price": PRICE,
        "reward": PUBLISH_REWARD,
    }


async def test_publish_rewards_the_publisher(token: AsyncContract, scenario: Scenario) -> None:
    """The publisher's balance grows by publishReward."""
    publisher = scenario.default_publisher.address
    assert await balance_at(token, publisher, scenario.publish_default) == HOLDING + PUBLISH_REWARD


async def test_publish_reward_raises_total_supply(isolated: Isolated) -> None:
    """The reward is new tokens: totalSupply grows by publishReward."""
    token, receipt = isolated.supply["publish"]
    assert await supply_change(token, receipt) == PUBLISH_REWARD


async def test_publish_gives_incrementing_ids(isolated: Isolated) -> None:
    """Two projects on a fresh token get ids 1 and 2; projectCount is 2."""
    f = isolated.ids_token.functions
    publishers = {(await f.projects(i).call())[0] for i in (1, 2)}
    assert len(publishers) == 1
    assert await f.projectCount().call() == 2


async def test_project_hash_maps_to_its_id(token: AsyncContract, scenario: Scenario) -> None:
    """projectIdOf(hash) finds a published project; an unknown hash gives 0."""
    assert await token.functions.projectIdOf(scenario.priced_hash).call() == scenario.priced_id
    assert await token.functions.projectIdOf(project_hash()).call() == 0


async def test_publish_with_a_used_hash_reverts(
    token: AsyncContract, scenario: Scenario, pool: AccountPool, token_artifact: ContractArtifact
) -> None:
    """A second project with the same hash reverts with DuplicateProjectHash."""
    (publisher,) = pool.take(1)
    fn = token.functions.publishProject("Again", scenario.priced_hash, T0)
    error = await revert_error(fn, publisher.address, token_artifact.abi)
    assert (error.name, error.args["existingId"]) == ("DuplicateProjectHash", scenario.priced_id)


async def test_publish_with_an_empty_name_reverts(
    token: AsyncContract, token_artifact: ContractArtifact
) -> None:
    """A project needs a name: EmptyProjectName."""
    fn = token.functions.publishProject("", project_hash(), T0)
    assert (await revert_error(fn, fresh_address(), token_artifact.abi)).name == "EmptyProjectName"


async def test_publish_with_a_zero_hash_reverts(
    token: AsyncContract, token_artifact: ContractArtifact
) -> None:
    """A project needs a non-zero hash: ZeroProjectHash."""
    fn = token.functions.publishProject("Zero", bytes(32), T0)
    assert (await revert_error(fn, fresh_address(), token_artifact.abi)).name == "ZeroProjectHash"


async def test_unknown_project_cannot_be_read(
    token: AsyncContract, token_artifact: ContractArtifact
) -> None:
    """projects(0) reverts with UnknownProject: ids start at 1."""
    fn = token.functions.projects(0)
    assert (await revert_error(fn, fresh_address(), token_artifact.abi)).name == "UnknownProject"


# -- buyProject --------------------------------------------------------------------------


async def test_buy_debits_the_buyer_by_the_price(token: AsyncContract, scenario: Scenario) -> None:
    """The buyer pays the project's price."""
    buyer = scenario.buyers[0].address
    assert await balance_at(token, buyer, scenario.buys[0]) == HOLDING - PRICE


async def test_buy_credits_the_publisher_with_the_price(
    token: AsyncContract, scenario: Scenario
) -> None:
    """The publisher receives the price of each of the two purchases."""
    publisher = scenario.priced_publisher.address
    last = max(scenario.buys, key=lambda r: r["blockNumber"])
    assert await balance_at(token, publisher, last) == HOLDING + PUBLISH_REWARD + 2 * PRICE


async def test_buy_leaves_total_supply_unchanged(isolated: Isolated) -> None:
    """A purchase moves tokens; it neither mints nor burns."""
    token, receipt = isolated.supply["buy"]
    assert await supply_change(token, receipt) == 0


async def test_buy_emits_project_purchased_with_all_fields(
    token: AsyncContract, scenario: Scenario
) -> None:
    """ProjectPurchased carries purchase id, project id, buyer, publisher, price, time."""
    event = the_event(token, "ProjectPurchased", scenario.buys[0])
    assert event == {
        "purchaseId": event["purchaseId"],
        "projectId": scenario.priced_id,
        "buyer": scenario.buyers[0].address,
        "publisher": scenario.priced_publisher.address,
        "price": PRICE,
        "time": T0 + 10,
    }
    assert event["purchaseId"] >= 1


async def test_buy_records_the_purchase(token: AsyncContract, scenario: Scenario) -> None:
    """purchases(purchaseId) gives back project, buyer, price and time."""
    event = the_event(token, "ProjectPurchased", scenario.buys[1])
    purchase = await token.functions.purchases(event["purchaseId"]).call()
    assert purchase == [scenario.priced_id, scenario.buyers[1].address, PRICE, T0 + 11]


async def test_purchases_of_a_project_are_listed_in_order(
    token: AsyncContract, scenario: Scenario
) -> None:
    """purchaseCount and purchaseOf list a project's purchases by ascending purchase id."""
    f = token.functions
    block = max(r["blockNumber"] for r in scenario.buys)
    ids = sorted(the_event(token, "ProjectPurchased", r)["purchaseId"] for r in scenario.buys)
    count = await f.purchaseCount(scenario.priced_id).call(block_identifier=block)
    listed = [
        (await f.purchaseOf(scenario.priced_id, i).call(block_identifier=block))[0]
        for i in range(count)
    ]
    assert listed == ids


async def test_buy_with_too_few_tokens_reverts(
    token: AsyncContract, scenario: Scenario, token_artifact: ContractArtifact
) -> None:
    """A buyer without enough tokens gets InsufficientBalance(buyer, balance, price)."""
    buyer = fresh_address()
    fn = token.functions.buyProject(scenario.priced_id, T0)
    error = await revert_error(fn, buyer, token_artifact.abi)
    assert (error.name, error.args) == (
        "InsufficientBalance",
        {"account": buyer, "balance": 0, "needed": PRICE},
    )


async def test_buy_unknown_project_reverts(
    token: AsyncContract, pool: AccountPool, token_artifact: ContractArtifact
) -> None:
    """Buying a project id that was never published reverts with UnknownProject(id)."""
    (buyer,) = pool.take(1)
    unknown = await token.functions.projectCount().call() + 1000
    error = await revert_error(
        token.functions.buyProject(unknown, T0), buyer.address, token_artifact.abi
    )
    assert (error.name, error.args) == ("UnknownProject", {"projectId": unknown})


async def test_buy_own_project_reverts(
    token: AsyncContract, scenario: Scenario, token_artifact: ContractArtifact
) -> None:
    """A publisher cannot buy their own project: CannotBuyOwnProject."""
    publisher = scenario.priced_publisher.address
    fn = token.functions.buyProject(scenario.priced_id, T0)
    error = await revert_error(fn, publisher, token_artifact.abi)
    assert (error.name, error.args) == (
        "CannotBuyOwnProject",
        {"projectId": scenario.priced_id, "buyer": publisher},
    )


async def test_purchase_index_past_the_end_reverts(
    token: AsyncContract, scenario: Scenario, token_artifact: ContractArtifact
) -> None:
    """purchaseOf with an index past the last purchase reverts with PurchaseIndexOutOfRange."""
    fn = token.functions.purchaseOf(scenario.priced_id, 10**6)
    error = await revert_error(fn, fresh_address(), token_artifact.abi)
    assert error.name == "PurchaseIndexOutOfRange"


# -- parameters and ownership -------------------------------------------------------------


async def test_owner_changes_the_publish_reward(token: AsyncContract, scenario: Scenario) -> None:
    """setPublishReward emits PublishRewardChanged(previous, new) and takes effect."""
    assert the_event(token, "PublishRewardChanged", scenario.reward_change) == {
        "previousReward": PUBLISH_REWARD,
        "newReward": NEW_REWARD,
    }
    block = scenario.reward_change["blockNumber"]
    assert await token.functions.publishReward().call(block_identifier=block) == NEW_REWARD


async def test_owner_changes_the_default_price(token: AsyncContract, scenario: Scenario) -> None:
    """setDefaultPrice emits DefaultPriceChanged(previous, new) and takes effect."""
    assert the_event(token, "DefaultPriceChanged", scenario.price_change) == {
        "previousPrice": DEFAULT_PRICE,
        "newPrice": NEW_DEFAULT_PRICE,
    }
    block = scenario.price_change["blockNumber"]
    assert await token.functions.defaultPrice().call(block_identifier=block) == NEW_DEFAULT_PRICE


@pytest.mark.parametrize(
    ("function", "args"),
    [("setPublishReward", (1,)), ("setDefaultPrice", (1,)), ("transferOwnership", (None,))],
)
async def test_non_owner_cannot_change_parameters(
    token: AsyncContract, token_artifact: ContractArtifact, function: str, args: tuple[Any, ...]
) -> None:
    """Parameter and ownership changes from a non-owner revert with NotOwner."""
    caller = fresh_address()
    fn = getattr(token.functions, function)(*(caller if a is None else a for a in args))
    assert (await revert_error(fn, caller, token_artifact.abi)).name == "NotOwner"


async def test_ownership_transfer_moves_the_minting_right(
    isolated: Isolated, owner: Signer, token_artifact: ContractArtifact
) -> None:
    """After transferOwnership the new owner can mint and the old one cannot."""
    successor = isolated.successor.address
    mint = isolated.ownership_token.functions.mint(successor, 1)
    assert await mint.call({"from": successor}) is True
    assert (await revert_error(mint, owner.address, token_artifact.abi)).name == "NotOwner"


# -- consistency and cost ------------------------------------------------------------------


async def test_total_supply_is_the_sum_of_balances(isolated: Isolated) -> None:
    """After mints, a burn, sets, a transfer, a publish and a buy, totalSupply is the
    sum of all balances and the arithmetic of those changes."""
    f = isolated.ledger_token.functions
    balances = [await f.balanceOf(holder).call() for holder in isolated.ledger_holders]
    expected = 500 + 300 - 120 + 40 + PUBLISH_REWARD
    assert await f.totalSupply().call() == sum(balances) == expected


async def test_gas_stays_within_budget(
    deployed: tuple[AsyncContract, TxReceipt], scenario: Scenario
) -> None:
    """Deploy, mint, publish and buy cost no more than the budgets in docs/contracts.md."""
    used = {
        "deploy": deployed[1]["gasUsed"],
        "mint": scenario.mint["gasUsed"],
        "publish": scenario.publish_priced["gasUsed"],
        "buy": max(r["gasUsed"] for r in scenario.buys),
    }
    budget = {"deploy": 1_600_000, "mint": 60_000, "publish": 180_000, "buy": 190_000}
    assert all(used[k] <= budget[k] for k in budget), used
