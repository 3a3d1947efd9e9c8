"""New correlation ids: unique, in the documented form, and distinct in a forked child."""

import os

import pytest

from smartid_events.logs import is_valid_correlation_id, new_correlation_id


def test_new_ids_are_unique_32_hex_digits() -> None:
    ids = [new_correlation_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 and is_valid_correlation_id(i) for i in ids)


# Python 3.12+ warns about fork() in a process with threads; the child only writes and exits.
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its first id and leave at once
        os.write(write_end, new_correlation_id().encode())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    parent_id = new_correlation_id()
    assert len(child_id) == 32
    assert child_id[:16] != parent_id[:16], "the child kept the parent's prefix"
