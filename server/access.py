"""Who may see and steer a run, and how much one owner may keep: the owner checks and per-owner quotas that
RunManager (server/runs.py) mixes in. Owners come from the signed cookie (server/owners.py)."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from server.owners import Caller
from server.steer import ActiveRun, Forbidden, NotFound, QuotaExceeded

if TYPE_CHECKING:
    from server.settings import Settings
    from server.store import Store


class Access:
    active: dict[str, ActiveRun]
    store: Store
    settings: Settings
    queue: deque[str]

    def running_count(self) -> int:
        raise NotImplementedError

    def _check_quotas(self, owner: str) -> None:
        s = self.settings
        usage = self.store.owner_usage(owner)
        queued = sum(1 for run_id in self.queue if self.active[run_id].owner == owner)
        if usage["runs"] >= s.max_runs_per_owner:
            raise QuotaExceeded(
                f"you keep {usage['runs']} runs: the quota max_runs_per_owner={s.max_runs_per_owner} is reached;"
                " delete some (DELETE /api/runs/ID)"
            )
        if queued >= s.max_queued_runs_per_owner and self.running_count() >= s.max_concurrent_runs:
            raise QuotaExceeded(
                f"you have {queued} runs waiting: the quota max_queued_runs_per_owner="
                f"{s.max_queued_runs_per_owner} is reached; wait for one to start"
            )
        if usage["bytes"] >= s.max_bytes_per_owner:
            raise QuotaExceeded(
                f"your runs and models take {usage['bytes']} bytes: the quota max_bytes_per_owner="
                f"{s.max_bytes_per_owner} is reached; delete some"
            )

    def check_access(self, run_id: str, caller: Caller, control: bool = False) -> None:
        """NotFound when the caller may not see the run (not shared, not theirs), Forbidden when it may watch but
        not steer or delete it."""
        run = self.active.get(run_id)
        if run is not None:
            owner, shared, kind = run.owner, run.shared, run.kind
        else:
            stored = self.store.get_run(run_id)
            if stored is None:
                raise NotFound(f"no run with id {run_id!r}")
            owner, shared, kind = stored["owner"], stored["shared"], stored["kind"]
        if not caller.may_see(owner, shared):
            raise NotFound(f"no run with id {run_id!r}")
        if control and not self.may_control(caller, owner, kind):
            if kind == "default":
                raise Forbidden(
                    "the default model's run belongs to the server: only the admin token holder may steer it"
                )
            raise Forbidden("only the run's owner (or the token holder) may pause, resume, stop or delete it")

    def may_control(self, caller: Caller, owner: str | None, kind: str) -> bool:
        """The server's own run (the default model's) has no owner: on a server that requires a token (any
        server others can reach) only the token holder steers it; on a private loopback server, anyone."""
        if kind == "default" and self.settings.token is not None:
            return caller.admin
        return caller.may_control(owner)
