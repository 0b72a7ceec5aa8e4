"""Judgments' follow-up leaves in batches from a publisher thread (active_selection/follow_up.py):
every id is sent once and in order, many at once under load, what is left goes out on flush, a
failed send is logged without stopping later ones, and a forked child publishes its own ids."""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from active_selection import follow_up, tasks
from active_selection.follow_up import BatchPublisher


class Recorder:
    """A send that takes a while, as a broker round trip does, and keeps what it was given."""

    def __init__(self, seconds: float = 0.002, fail_first: bool = False) -> None:
        self.batches: list[list] = []
        self.seconds = seconds
        self.fail_first = fail_first
        self.sent = threading.Event()

    def __call__(self, batch) -> None:
        time.sleep(self.seconds)
        if self.fail_first and not self.batches:
            self.batches.append([])
            raise ConnectionError("broker down")
        self.batches.append(list(batch))
        self.sent.set()

    def items(self) -> list:
        return [item for batch in self.batches for item in batch]


def test_every_item_is_sent_once_in_order_and_many_share_a_message_under_load():
    send = Recorder()
    publisher = BatchPublisher(send)

    def add_range(start: int) -> None:
        for item in range(start, start + 250):
            publisher.add(item)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(add_range, range(0, 2000, 250)))
    publisher.flush()
    items = send.items()
    assert sorted(items) == list(range(2000)), "each item once"
    for start in range(0, 2000, 250):  # each thread's items in the order it added them
        mine = [item for item in items if start <= item < start + 250]
        assert mine == list(range(start, start + 250))
    assert len(send.batches) < 200, f"{len(send.batches)} messages for 2,000 items"


def test_a_quiet_publisher_sends_each_item_at_once_without_waiting_for_more():
    send = Recorder(seconds=0)
    publisher = BatchPublisher(send)
    publisher.add("only")
    assert send.sent.wait(5), "sent without a flush"
    assert send.batches == [["only"]]


def test_a_lingering_publisher_sends_what_came_in_meanwhile_as_one_message():
    send = Recorder(seconds=0)
    publisher = BatchPublisher(send, linger=0.3)
    for item in range(20):
        publisher.add(item)
        time.sleep(0.005)
    assert send.sent.wait(5)
    assert send.batches == [list(range(20))]


def test_batches_are_capped():
    send = Recorder()
    publisher = BatchPublisher(send, max_batch=10)
    for item in range(95):
        publisher.add(item)
    publisher.flush()
    assert sorted(send.items()) == list(range(95))
    assert max(len(batch) for batch in send.batches) <= 10


def test_a_failed_send_is_logged_and_later_items_still_go(caplog):
    send = Recorder(fail_first=True)
    publisher = BatchPublisher(send)
    publisher.add(1)
    publisher.flush()
    publisher.add(2)
    publisher.flush()
    assert send.items() == [2]
    assert "could not send the follow-up of 1 judgments" in caplog.text


def test_a_child_forked_while_the_parent_publishes_sends_its_own_items():
    # Celery's prefork pool forks at any time: the child must not inherit a held lock or the
    # parent's pending items, and it needs a publisher thread of its own.
    release = threading.Event()
    parent_sent: list = []

    def slow_send(batch):
        release.wait(10)
        parent_sent.extend(batch)

    publisher = BatchPublisher(slow_send)
    publisher.add("parent-1")  # the publisher thread takes it and blocks in send
    time.sleep(0.05)
    publisher.add("parent-2")  # pending while the fork happens
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            sent: list = []
            publisher._send = sent.extend  # the child's own broker connection, say
            publisher.add("child")
            publisher.flush(timeout=5)
            os.write(write, repr(sent).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    child_sent = os.read(read, 1000).decode()
    os.close(read)
    release.set()
    publisher.flush()
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_sent == "['child']"
    assert parent_sent == ["parent-1", "parent-2"]


@pytest.mark.django_db
def test_a_judgment_on_a_broker_is_handed_to_the_publisher(monkeypatch, project):
    from config.celery import app
    from labeling.signals import announce, judgment_recorded

    handed: list[int] = []
    monkeypatch.setattr(follow_up.judgments, "add", handed.append)
    app.conf.task_always_eager = False  # the autouse fixture restores it
    announce(judgment_recorded, judgment_id=41, project_id=project.pk)
    assert handed == [41]


def test_the_batch_task_follows_up_every_judgment_even_after_one_fails(monkeypatch):
    seen: list[int] = []

    def handle_judgment(*, judgment_id):
        seen.append(judgment_id)
        if judgment_id == 2:
            raise RuntimeError("search state broken")

    monkeypatch.setattr(tasks.services, "handle_judgment", handle_judgment)
    with pytest.raises(RuntimeError, match="search state broken"):
        tasks.judgments_recorded([1, 2, 3])
    assert seen == [1, 2, 3]
