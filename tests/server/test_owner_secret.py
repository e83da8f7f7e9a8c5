"""Two web replicas on one data volume start together: they must end up with one owner secret, or a student's
cookie signed by one replica is a stranger's to the other."""

from __future__ import annotations

import threading
from pathlib import Path

from server.owners import SECRET_FILE, OwnerKeys


def test_replicas_making_the_secret_at_once_share_one(tmp_path: Path) -> None:
    for attempt in range(20):
        data_dir = tmp_path / str(attempt)
        keys = [OwnerKeys(data_dir) for _ in range(8)]
        start = threading.Barrier(len(keys))
        seen: list[bytes] = []

        def make(k: OwnerKeys, start: threading.Barrier = start, seen: list[bytes] = seen) -> None:
            start.wait()
            seen.append(k.secret())

        threads = [threading.Thread(target=make, args=(k,)) for k in keys]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(seen)) == 1 and len(seen[0]) == 32
        assert bytes.fromhex((data_dir / SECRET_FILE).read_text()) == seen[0]
        assert [p.name for p in data_dir.iterdir()] == [SECRET_FILE]  # no drafts left behind
