"""The fault suite's stack: a sandbox of its own (Kafka, Geth, manager, services on ports of
their own), since every scenario breaks a part of it; and the fault table at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from devstack.sandbox import open_sandbox
from loadtests.steady import Chain, ResultsLedger
from service_kit.paths import REPO_ROOT
from tests.faults.scenario import REPORT, Faults, table, write_report

REPORT_PATH = REPO_ROOT / "results" / "faults.md"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def faults(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Faults]:
    """The sandbox stack, its results ledger and a JSON-RPC line to its sealer."""
    root: Path = tmp_path_factory.mktemp("faults")
    async with open_sandbox(root) as sandbox:
        ledger = ResultsLedger(sandbox.kafka_settings)
        await ledger.start()
        chain = Chain(sandbox.cluster.spec("sealer").rpc_url)
        try:
            yield Faults(sandbox, ledger, chain)
        finally:
            await chain.aclose()
            await ledger.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault table in the CI output, and in results/faults.md."""
    if not REPORT:
        return
    write_report(REPORT, REPORT_PATH)
    terminalreporter.section("fault table")
    terminalreporter.write_line(table(REPORT))
    for row in REPORT:
        for line in row.lost_detail:
            terminalreporter.write_line(f"{row.scenario}: {line}")
    terminalreporter.write_line(f"(also in {REPORT_PATH})")
