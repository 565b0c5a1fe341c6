"""The provider's Prometheus metrics, defined once."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from ethgw_wire.provider_metrics import DISPATCHED_METRIC

TASKS = Counter("ethgw_provider_tasks_total", "Tasks finished", ["operation", "status"])
QUEUE_WAIT = Histogram(
    "ethgw_provider_queue_wait_seconds",
    "From enqueue to the start of execution",
    ["task_class"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EXECUTION = Histogram(
    "ethgw_provider_execution_seconds",
    "Execution on the node (receipt wait included), by the node that ran it",
    ["task_class", "node"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
INFLIGHT = Gauge("ethgw_provider_inflight", "Tasks dispatched and not finished", ["node"])
DISPATCHED = Counter(
    DISPATCHED_METRIC,
    "Tasks sent to a node, by the node's zone in the round's plan and the task's class",
    ["node", "zone", "task_class"],
)
NODE_ZONE = Gauge("ethgw_provider_node_zone", "Zone of the node: 1, 2, 3, 0 = down", ["node"])
NODE_DISTANCE = Gauge("ethgw_provider_node_distance", "d of the node", ["node"])
LBH = Gauge("ethgw_provider_lbh", "The cluster's health as this provider last planned")
HELD = Gauge("ethgw_provider_held_tasks", "Tasks waiting for a node")
PAUSED_SECONDS = Counter("ethgw_provider_paused_seconds_total", "Time dispatching was paused")
FORCED = Counter("ethgw_provider_forced_dispatches_total", "Reads sent by the safety valve")
RECYCLE_REQUESTS = Counter(
    "ethgw_provider_recycle_requests_total",
    "Nodes the strategy named to recycle (lbh_adaptive's way out of the memory-creep deadlock)",
    ["node"],
)
RETRIES = Counter("ethgw_provider_node_retries_total", "Tasks retried on another node", ["node"])
REPLIES_DROPPED = Counter(
    "ethgw_provider_replies_dropped_total",
    "Replies not delivered to their instance's reply topic (the result is on the shared"
    " results topic all the same), by reason: instance_gone (the topic does not exist),"
    " not_delivered (expired or refused in the producer), not_a_reply_topic",
    ["reason"],
)
MALFORMED = Counter("ethgw_provider_malformed_records_total", "Records that are no task")
_TURN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
ACCOUNT_TURN_WAIT = Histogram(
    "ethgw_provider_account_turn_wait_seconds",
    "A write's wait for its signing account's turn (one write of an account signs at a time)",
    ["signer"],
    buckets=_TURN_BUCKETS,
)
ACCOUNT_TURN_HOLD = Histogram(
    "ethgw_provider_account_turn_hold_seconds",
    "A turn on a signing account: the nonces, signatures, journal write and broadcasts of"
    " its writes",
    ["signer"],
    buckets=_TURN_BUCKETS,
)
ACCOUNT_TURN_WRITES = Histogram(
    "ethgw_provider_account_turn_writes",
    "Writes one turn on a signing account signed and journaled together: the turn's own and"
    " the ready writes right behind it",
    ["signer"],
    buckets=(1, 2, 4, 8, 16, 32),
)
ACCOUNT_TURN_STEP = Histogram(
    "ethgw_provider_account_turn_step_seconds",
    "One step of a write's turn on its signing account, by signer and step: estimate (a"
    " contract call's gas), nonce, sign, journal (the acknowledged write), broadcast",
    ["signer", "step"],
    buckets=(0.001, *_TURN_BUCKETS),
)
UNCONFIRMED = Gauge(
    "ethgw_provider_unconfirmed_transactions", "Sent transactions not yet seen mined"
)
REBROADCASTS = Counter(
    "ethgw_provider_rebroadcasts_total", "Signed transactions a node took anew (had been lost)"
)
SPREAD_SENDS = Counter(
    "ethgw_provider_spread_sends_total",
    "Sends of a transaction's bytes to a node it was not sent to, by outcome: sent, known"
    " (the node had it), failed, skipped (too many under way)",
    ["outcome"],
)
JOURNAL_RECORDS = Gauge(
    "ethgw_provider_journal_records", "Signed transactions kept in this provider's journal mirror"
)
JOURNAL_PRUNED = Counter(
    "ethgw_provider_journal_pruned_total", "Journal records dropped once their task was committed"
)
RESULTS_TOO_LARGE = Counter(
    "ethgw_provider_results_too_large_total",
    "Results over the bound (or refused by Kafka) answered as result_too_large instead",
)
# Spelled out, as ethgw_provider_inflight is, so the Grafana dashboard's check finds it; the
# gateway reads it by ethgw_wire.provider_metrics.CACHE_REQUESTS_METRIC.
CACHE_REQUESTS = Counter(
    "ethgw_provider_cache_requests_total",
    "Reads the read cache was asked (cache: chain_id, block, transaction, receipt, code; and"
    " inflight: identical reads in flight, hit = joined one), by result: hit or miss",
    ["cache", "result"],
)
CACHE_ENTRIES = Gauge("ethgw_provider_cache_entries", "Immutable answers in the read cache")
MIN_BLOCK_READS = Counter(
    "ethgw_provider_min_block_reads_total",
    "Reads that needed a node with a given block, by how they got one: on the node the"
    " scheduler chose (chosen), on another (rerouted), after waiting (waited), or not in time"
    " (timed_out: run where the scheduler put them)",
    ["outcome"],
)
