"""The rule that decides whether a reply topic exists, and the checks that feed it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from hypothesis import given
from hypothesis import strategies as st

from provider.reply_topics import ReplyTopicBook, ReplyTopics, TopicCheck

A, B = "ethgw.replies.a", "ethgw.replies.b"


def book_with(*checks: TopicCheck, ttl_s: float = 1.0) -> ReplyTopicBook:
    book = ReplyTopicBook(ttl_s=ttl_s)
    for check in checks:
        book.record(check)
    return book


def test_nothing_is_known_before_a_check() -> None:
    """With no check yet, every topic must be checked."""
    assert ReplyTopicBook().known(A, ready_at=0.0, now=0.0) is None


def test_a_topic_a_recent_check_saw_exists() -> None:
    """A topic in a check younger than the TTL exists, without asking again."""
    book = book_with(TopicCheck(10.0, frozenset({A})))
    assert book.known(A, ready_at=10.5, now=10.9) is True


def test_a_topic_an_old_check_saw_is_checked_again() -> None:
    """A check vouches for a topic only for the TTL: its instance may have stopped since."""
    book = book_with(TopicCheck(10.0, frozenset({A})))
    assert book.known(A, ready_at=11.5, now=11.5) is None


def test_a_topic_missing_from_a_check_after_the_reply_is_gone() -> None:
    """A check that began after the reply was ready and lacks the topic says it is gone."""
    book = book_with(TopicCheck(10.0, frozenset({B})))
    assert book.known(A, ready_at=9.0, now=20.0) is False


def test_a_topic_missing_from_a_check_before_the_reply_is_checked_again() -> None:
    """An instance may have created its topic after the last check: ask again."""
    book = book_with(TopicCheck(10.0, frozenset({B})))
    assert book.known(A, ready_at=10.1, now=10.2) is None


def test_an_older_check_does_not_replace_a_newer_one() -> None:
    """Checks that finish out of order leave the newest in place."""
    book = book_with(TopicCheck(10.0, frozenset({A})), TopicCheck(9.0, frozenset()))
    assert book.known(A, ready_at=10.0, now=10.5) is True


def test_a_check_without_a_tracked_topic_stops_tracking_it() -> None:
    """A topic sent to and then missing from a check is no longer followed by the producer."""
    book = book_with(TopicCheck(1.0, frozenset({A, B})))
    book.track(A)
    book.track(B)
    assert book.record(TopicCheck(2.0, frozenset({B}))) is True
    assert book.tracked == {B}


def test_a_topic_that_vanished_from_the_producer_is_checked_again() -> None:
    """Once the producer's metadata has shown a topic and then lacks it, no check vouches for it."""
    book = book_with(TopicCheck(1.0, frozenset({A})))
    book.track(A)
    assert book.vanished({A}, now=1.2) is False
    assert book.vanished(set(), now=1.4) is True
    assert (book.known(A, ready_at=1.5, now=1.5), book.tracked) == (None, frozenset())


def test_a_vanished_topic_is_never_called_gone_by_it() -> None:
    """The producer's metadata may lack a topic that exists: only a check says gone."""
    book = book_with(TopicCheck(1.0, frozenset({A})))
    book.track(A)
    book.vanished({A}, now=1.2)
    book.vanished(set(), now=1.4)
    assert book.known(A, ready_at=0.5, now=1.5) is None


def test_a_check_begun_before_a_vanish_is_not_recorded() -> None:
    """A check older than the producer's news of a vanished topic vouches for nothing."""
    book = book_with(TopicCheck(1.0, frozenset({A})))
    book.track(A)
    book.vanished({A}, now=1.2)
    book.vanished(set(), now=1.4)
    book.record(TopicCheck(1.3, frozenset({A})))
    assert book.known(A, ready_at=1.5, now=1.5) is None


def test_a_topic_the_producer_never_showed_does_not_vanish() -> None:
    """A metadata update asked before a topic was tracked does not name it: no verdict."""
    book = book_with(TopicCheck(1.0, frozenset({A})))
    book.track(A)
    assert book.vanished(set(), now=1.2) is False
    assert book.tracked == {A}


def test_a_topic_is_announced_once() -> None:
    """The first drop to a topic is announced, the next ones are not."""
    book = ReplyTopicBook()
    assert [book.first_drop(A), book.first_drop(A), book.first_drop(B)] == [True, False, True]


def test_a_topic_seen_again_is_announced_again_when_it_goes() -> None:
    """A topic that came back (its instance restarted) and went again is announced again."""
    book = ReplyTopicBook()
    book.first_drop(A)
    book.record(TopicCheck(1.0, frozenset({A})))
    assert book.first_drop(A) is True


def test_announced_topics_are_bounded() -> None:
    """Only the latest announced topics are remembered."""
    book = ReplyTopicBook(announced_kept=2)
    for topic in ("t1", "t2", "t3"):
        book.first_drop(topic)
    assert book.first_drop("t1") is True


checks = st.lists(st.tuples(st.floats(0, 100), st.frozensets(st.sampled_from([A, B]))), max_size=6)


@given(checks, st.floats(0, 100), st.floats(0, 100))
def test_gone_only_after_a_check_that_began_after_the_reply(
    recorded: list[tuple[float, frozenset[str]]], ready_at: float, later_s: float
) -> None:
    """A topic is called gone only if a check that began at or after its reply lacked it."""
    book = book_with(*(TopicCheck(started, existing) for started, existing in recorded))
    if book.known(A, ready_at, ready_at + later_s) is False:
        assert any(s >= ready_at and A not in existing for s, existing in recorded)


class CountingClient:
    """Answers each metadata check with `topics`, after `delay_s`; counts the checks."""

    def __init__(self, topics: set[str], delay_s: float = 0.01) -> None:
        self.topics_now = topics
        self.delay_s = delay_s
        self.checks = 0
        self.followed: list[set[str]] = []

    async def fetch_all_metadata(self) -> CountingClient:
        self.checks += 1
        seen = set(self.topics_now)
        await asyncio.sleep(self.delay_s)
        self.seen = seen
        return self

    def topics(self) -> set[str]:
        return self.seen

    def set_topics(self, topics: Iterable[str]) -> object:
        self.followed.append(set(topics))
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_replies_ready_before_a_check_share_it() -> None:
    """Many replies to a gone topic, ready at once, cost one check."""
    client = CountingClient({B})
    topics = ReplyTopics(client)
    ready_at = topics.now()
    answers = await asyncio.gather(*(topics.exists(A, ready_at) for _ in range(50)))
    assert (set(answers), client.checks) == ({False}, 1)


async def test_a_reply_ready_during_a_check_waits_for_the_next() -> None:
    """A check that began before a reply was ready does not answer for it."""
    client, clock = CountingClient(set(), delay_s=0.05), Clock()
    topics = ReplyTopics(client, clock=clock)
    first = asyncio.create_task(topics.exists(A, ready_at=0.0))
    await asyncio.sleep(0.01)
    client.topics_now = {A}  # the instance created its topic, then submitted a task
    clock.now = 0.5
    assert await topics.exists(A, ready_at=0.5) is True
    assert await first is False
    assert client.checks == 2


async def test_a_topic_found_gone_is_no_longer_followed() -> None:
    """The producer's client stops following a tracked topic a check did not find."""
    client, clock = CountingClient({A, B}), Clock()
    topics = ReplyTopics(client, clock=clock)
    assert await topics.exists(A, ready_at=0.0) is True
    topics.track(A)
    topics.track(B)
    client.topics_now = {B}
    clock.now = 2.0  # the first check no longer vouches for A
    assert await topics.exists(A, ready_at=2.0) is False
    assert client.followed == [{B}]
