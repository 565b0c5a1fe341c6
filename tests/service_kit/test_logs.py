"""The log format: one logfmt or JSON line per event, on the stderr of the moment, with the
bound request id, values quoted and escaped, secrets redacted, tracebacks folded."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from service_kit.logs import LogFormat, configure_logging, get_logger, logfmt_value

Stderr = pytest.CaptureFixture[str]


@pytest.fixture
def restored_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def stderr(restored_root: None, capsys: pytest.CaptureFixture[str]) -> Stderr:
    """What the test writes to stderr (pytest swaps sys.stderr in for each test phase)."""
    return capsys


def lines_in(stderr: Stderr) -> list[str]:
    """The lines written to stderr since the last call."""
    return stderr.readouterr().err.splitlines()


def configured(log_format: LogFormat = "logfmt") -> None:
    configure_logging("INFO", log_format)


def test_records_go_to_the_stderr_of_the_moment(
    restored_root: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stderr swapped after configuring gets the next line; the old one gets nothing."""
    before, after = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", before)
    configured()
    monkeypatch.setattr("sys.stderr", after)
    logging.getLogger("ethgw.test").info("node started node=%s", "node-1")
    assert before.getvalue() == ""
    assert after.getvalue().endswith(
        ' level=info logger=ethgw.test event="node started node=node-1"\n'
    )


def test_a_closed_earlier_stderr_is_no_logging_error(
    restored_root: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing the stream that was stderr at configure time breaks no later record."""
    earlier, now = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", earlier)
    configured()
    earlier.close()
    monkeypatch.setattr("sys.stderr", now)
    logging.getLogger("ethgw.test").warning("still here")
    assert "Logging error" not in now.getvalue()
    assert now.getvalue().endswith('event="still here"\n')


def test_an_event_with_fields_is_one_logfmt_line(stderr: Stderr) -> None:
    """A structlog event: time, level, logger, event, then its fields, in that order."""
    configured()
    get_logger("ethgw.test").info("task_done", task="t-1", node="node-2", seconds=0.25)
    [line] = lines_in(stderr)
    assert line.startswith("ts=")
    assert line.split(" ", 1)[1] == (
        "level=info logger=ethgw.test event=task_done task=t-1 node=node-2 seconds=0.25"
    )


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("plain", "plain"),
        ("two words", '"two words"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a=b", '"a=b"'),
        ("line1\nline2\r\tend", '"line1\\nline2\\r\\tend"'),
        ("back\\slash", '"back\\\\slash"'),
        ("", '""'),
        ("sep\u2028x", '"sep\\u2028x"'),
        (None, "null"),
        (True, "true"),
        (3, "3"),
    ],
)
def test_logfmt_values_are_quoted_and_escaped(value: object, rendered: str) -> None:
    """Spaces, quotes, `=`, backslashes and line breaks make a value quoted and escaped."""
    assert logfmt_value(value) == rendered


def test_a_hostile_value_stays_on_one_line_and_in_its_field(stderr: Stderr) -> None:
    """A value that looks like more fields and more lines is still one field of one line."""
    configured()
    get_logger("ethgw.test").warning("odd", field='x" level=error\nevent=forged')
    [line] = lines_in(stderr)
    assert line.endswith('event=odd field="x\\" level=error\\nevent=forged"')


def test_a_stdlib_percent_call_renders_as_the_event(stderr: Stderr) -> None:
    """`log.info("... %s", x)` of stdlib loggers (ours, libraries') gives the formatted event."""
    configured()
    # A library's logger that no earlier test in the session has configured (uvicorn's own
    # are reconfigured by every in-process server).
    logging.getLogger("some_library.server").info("Started server process [%d]", 42)
    [line] = lines_in(stderr)
    assert line.endswith('logger=some_library.server event="Started server process [42]"')


def test_the_bound_request_id_is_on_every_line_of_the_request(stderr: Stderr) -> None:
    """Inside bound_contextvars, structlog and stdlib lines carry the id; after, neither."""
    configured()
    with structlog.contextvars.bound_contextvars(request_id="req-7"):
        get_logger("ethgw.test").info("inside")
        logging.getLogger("ethgw.test").info("inside too")
    get_logger("ethgw.test").info("outside")
    first, second, third = lines_in(stderr)
    assert "event=inside request_id=req-7" in first
    assert 'event="inside too" request_id=req-7' in second
    assert "request_id" not in third


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "passphrase",
        "private_key",
        "secret",
        "api_key",
        "token",
        "authorization",
        "Authorization",
        "admin_password",
        "registry_token",
    ],
)
def test_secrets_are_redacted_by_key(stderr: Stderr, key: str) -> None:
    """A field named like a secret is logged as [redacted], in either format."""
    configured()
    get_logger("ethgw.test").info("unlock", **{key: "hunter2", "address": "0xab"})
    configured("json")
    get_logger("ethgw.test").info("unlock", **{key: "hunter2", "address": "0xab"})
    logfmt_line, json_line = lines_in(stderr)
    assert "hunter2" not in logfmt_line + json_line
    assert f"{key}=[redacted] address=0xab" in logfmt_line
    assert json.loads(json_line)[key] == "[redacted]"


def test_a_field_merely_containing_a_secret_word_is_kept(stderr: Stderr) -> None:
    """token_address or tokens are no secrets: their values are logged."""
    configured()
    get_logger("ethgw.test").info("deployed", token_address="0xab", tokens=5)
    [line] = lines_in(stderr)
    assert "token_address=0xab tokens=5" in line


def test_a_traceback_is_folded_into_one_escaped_field(stderr: Stderr) -> None:
    """log.exception, structlog's or stdlib's, is one line whose exception field holds the
    traceback."""
    configured()
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        get_logger("ethgw.test").exception("task_crashed", task="t-1")
        logging.getLogger("ethgw.test").exception("crashed %s", "t-2")
    first, second = lines_in(stderr)
    for line in (first, second):
        assert 'exception="Traceback (most recent call last):\\n' in line
        assert "ValueError: bad\\nthing" in line
    assert "level=error" in first
    assert "event=task_crashed task=t-1 exception=" in first


def test_json_mode_is_one_valid_object_per_line(stderr: Stderr) -> None:
    """ETHGW_LOG_FORMAT=json: each event, a traceback's too, is one JSON object."""
    configured("json")
    log = get_logger("ethgw.test")
    with structlog.contextvars.bound_contextvars(request_id="req-8"):
        log.info("task_done", task="t-1", note='quote " and\nnewline', thing=object())
    logging.getLogger("ethgw.test").info("plain %s", "call")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("task_crashed")
    objects = [json.loads(line) for line in lines_in(stderr)]
    assert [o["event"] for o in objects] == ["task_done", "plain call", "task_crashed"]
    assert objects[0]["request_id"] == "req-8"
    assert objects[0]["note"] == 'quote " and\nnewline'
    assert list(objects[0])[:5] == ["ts", "level", "logger", "event", "request_id"]
    assert "RuntimeError: boom" in objects[2]["exception"]


def test_the_format_comes_from_the_environment(
    stderr: Stderr, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ETHGW_LOG_FORMAT and ETHGW_LOG_LEVEL apply when configure_logging is not told."""
    monkeypatch.setenv("ETHGW_LOG_FORMAT", "json")
    monkeypatch.setenv("ETHGW_LOG_LEVEL", "WARNING")
    configure_logging()
    get_logger("ethgw.test").info("too low")
    get_logger("ethgw.test").warning("shown")
    [line] = lines_in(stderr)
    assert json.loads(line)["event"] == "shown"
