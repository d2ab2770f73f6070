"""Several kefu processes on one `index_dir`: nobody rebuilds or deletes an index another is using.

The processes are real (tests/index_user.py, driven over stdin/stdout); the searches are
keyword-only so no encoder has to load.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from index_user import HashEncoder, hash_vector

from knowledge import index_folders
from knowledge.embeddings import text_key
from knowledge.index_folders import HOLD_FILE, hold, publish, remove_if_unheld, stage, sweep

USER = REPO / "tests" / "index_user.py"
SAVES = 40
WAIT_SECONDS = 60.0  # generous bound for a loaded machine; the tests finish in well under a second each

SHIPPING = """\
- id: shipping-cost
  question: How much does shipping cost?
  answer: Standard shipping costs EUR 4.95.
- id: returns-policy
  question: How do I return an item?
  answer: Send items back within 30 days.
"""
GIFT_WRAP = """\
- id: gift-wrap
  question: Do you gift wrap?
  answer: Yes, for EUR 3.
"""


class IndexUser:
    """One tests/index_user.py process; every wait on it is bounded."""

    def __init__(self, index_dir: Path, faq_dir: Path):
        self.process = subprocess.Popen(
            [sys.executable, str(USER), str(index_dir), str(faq_dir)], cwd=REPO, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._next_line() == "ready"

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _next_line(self) -> str:
        try:
            line = self._lines.get(timeout=WAIT_SECONDS)
        except queue.Empty:
            pytest.fail(f"index user {self.process.pid} said nothing for {WAIT_SECONDS}s")
        if line is None:
            pytest.fail(f"index user exited with {self.process.wait()}: {self.process.stderr.read()}")
        return line

    def send(self, command: str) -> None:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def answer(self) -> dict:
        answer = json.loads(self._next_line())
        assert "error" not in answer, answer["error"]
        return answer

    def poll_answer(self) -> dict | None:
        """The next answer if one has arrived, without waiting."""
        if self._lines.empty():
            return None
        return self.answer()

    def ask(self, command: str) -> dict:
        self.send(command)
        return self.answer()

    def quit(self) -> None:
        assert self.ask("quit") == {"closed": True}
        assert self.process.wait(timeout=WAIT_SECONDS) == 0

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=WAIT_SECONDS)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            stream.close()


@pytest.fixture
def users() -> Iterator[list[IndexUser]]:
    started: list[IndexUser] = []
    yield started
    for user in started:
        user.stop()


def faq_folder(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "faq.yaml").write_text(text, encoding="utf-8")
    return folder


def names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


# -- two real processes -----------------------------------------------------------------


def test_a_process_with_other_faq_content_never_deletes_the_index_another_process_holds(tmp_path, users):
    index_dir = tmp_path / "index"
    a = IndexUser(index_dir, faq_folder(tmp_path, "faq-a", SHIPPING))
    users.append(a)
    a_folder = Path(a.ask("open")["folder"])
    assert a.ask("search how much is shipping")["ids"] == ["shipping-cost"]

    b = IndexUser(index_dir, faq_folder(tmp_path, "faq-b", SHIPPING + GIFT_WRAP))
    users.append(b)
    b_answer = b.ask("open")
    assert b_answer["built"] is True and Path(b_answer["folder"]) != a_folder
    assert b.ask("sweep") == {"removed": []}

    assert (a_folder / "faq.marker").is_file()
    assert a.ask("search how do I return an item")["ids"] == ["returns-policy"]
    assert a.ask("search gift wrap")["ids"] == []  # still A's own version, not rebuilt by B

    a.quit()
    assert b.ask("sweep") == {"removed": [str(a_folder)]}
    assert names(index_dir / "keyword") == [Path(b_answer["folder"]).name]
    assert b.ask("search gift wrap")["ids"] == ["gift-wrap"]


def test_processes_building_the_same_content_at_once_all_end_with_one_working_index(tmp_path, users):
    index_dir = tmp_path / "index"
    faq_dir = faq_folder(tmp_path, "faq", SHIPPING)
    users.extend(IndexUser(index_dir, faq_dir) for _ in range(3))
    for user in users:  # all started and imported: the opens now race each other
        user.send("open")
    answers = [user.answer() for user in users]
    assert len({answer["folder"] for answer in answers}) == 1
    assert sorted(answer["built"] for answer in answers) == [False, False, True]
    for user in users:
        assert user.ask("search how much is shipping")["ids"] == ["shipping-cost"]
    assert names(index_dir / "keyword") == [Path(answers[0]["folder"]).name]  # no staging copy left


def test_a_staging_folder_of_a_killed_builder_is_swept_later_but_not_while_it_lives(tmp_path, users):
    root = tmp_path / "index" / "keyword"
    builder = IndexUser(tmp_path / "index", faq_folder(tmp_path, "faq", SHIPPING))
    users.append(builder)
    staging = Path(builder.ask("stage 0123456789abcdef")["staging"])
    assert staging.name.startswith(f".staging-0123456789abcdef-{builder.process.pid}-")
    assert sweep(root) == []
    assert staging.is_dir()
    builder.kill()
    assert sweep(root) == [staging]
    assert names(root) == []


def test_two_processes_saving_one_embedding_cache_never_leave_a_torn_file(tmp_path, users):
    writers = [IndexUser(tmp_path / "index", tmp_path) for _ in range(2)]
    users.extend(writers)
    cache_file = tmp_path / "index" / "embeddings" / f"{HashEncoder.id}.npz"
    for n, writer in enumerate(writers):
        writer.send(f"embed {SAVES} writer-{n}")
    pending, loads = list(writers), 0
    deadline = time.monotonic() + WAIT_SECONDS
    while pending:  # read the cache as often as possible while both processes rewrite it
        assert time.monotonic() < deadline, "the writers did not finish in time"
        if cache_file.exists():
            assert_cache_is_whole(cache_file)
            loads += 1
        pending = [writer for writer in pending if writer.poll_answer() is None]
    assert loads > 0
    assert len(assert_cache_is_whole(cache_file)) > 0
    assert names(cache_file.parent) == [cache_file.name]  # no temporary file left behind


def assert_cache_is_whole(path: Path) -> dict[str, np.ndarray]:
    """Every vector in the file is the one its text hashes to; returns them by text key."""
    texts = {text_key(f"writer-{n} {i}"): f"writer-{n} {i}" for n in range(2) for i in range(SAVES)}
    with np.load(path, allow_pickle=False) as data:
        vectors = dict(zip(data["keys"].tolist(), data["vectors"]))
    for key, vector in vectors.items():
        assert np.array_equal(vector, hash_vector(texts[key]))
    return vectors


# -- the folder rules, one at a time ----------------------------------------------------


def test_the_second_publisher_of_a_name_drops_its_copy_and_the_first_stays(tmp_path):
    first, second = stage(tmp_path, "v1"), stage(tmp_path, "v1")
    (first.folder / "data").write_text("first", encoding="utf-8")
    (second.folder / "data").write_text("second", encoding="utf-8")
    assert publish(first, tmp_path / "v1") is True
    assert publish(second, tmp_path / "v1") is False
    assert (tmp_path / "v1" / "data").read_text(encoding="utf-8") == "first"
    assert names(tmp_path) == ["v1"]
    assert first.held and not second.held
    assert remove_if_unheld(tmp_path / "v1") is False  # the hold moved with the rename
    first.release()
    assert remove_if_unheld(tmp_path / "v1") is True


def test_a_hold_waiting_on_a_folder_being_deleted_reports_it_gone(tmp_path):
    published = stage(tmp_path, "v1")
    assert publish(published, tmp_path / "v1")
    published.release()
    sweeper = os.open(tmp_path / "v1" / HOLD_FILE, os.O_RDONLY)
    fcntl.flock(sweeper, fcntl.LOCK_EX)  # a sweep is deleting it
    result: list = []
    waiter = threading.Thread(target=lambda: result.append(hold(tmp_path / "v1")))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # blocked on the sweep's lock, as it must be
    os.rename(tmp_path / "v1", tmp_path / ".trash-test")
    os.close(sweeper)
    waiter.join(WAIT_SECONDS)
    assert result == [None]


def test_a_young_folder_without_a_lock_file_is_kept_and_an_old_one_swept(tmp_path):
    young, old = tmp_path / "young", tmp_path / "old"
    young.mkdir()
    old.mkdir()
    long_ago = time.time() - 2 * index_folders.LOCKLESS_GRACE_SECONDS
    os.utime(old, (long_ago, long_ago))
    assert sweep(tmp_path) == [old]
    assert names(tmp_path) == ["young"]
