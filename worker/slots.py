"""The slots: each claims a task when it is free, runs it, and hands the outcome to the recorder;
idle slots wait on the store's wake-up signals with a capped backoff.

Part of the worker daemon (``worker.daemon.Daemon`` mixes it in).
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future

from dataclasses import replace

from fsm.states import AttemptState
from fsm.store import Claim
from worker.executor import Outcome
from worker.group_commit import groupable
from fsm.store.driver import StoreError as PyMongoError
from worker.recorder import RETRY_MAX_S, RETRY_START_S

log = logging.getLogger("suanwang.worker")

#: First idle wait; doubles up to ``poll_max_s`` while nothing is claimable.
IDLE_START_S = 0.05
#: Outcomes of one slot being written while it runs its next attempt.
FINISH_DEPTH = 2
#: Tasks claimed ahead left in a slot when it claims the next ones (the claim overlaps their runs).
AHEAD_LOW = 8


class Slots:
    """The daemon's slot loops (uses ``store``, ``claimant``, ``executor`` and the daemon's locks)."""

    # -------------------------------------------------------- one iteration
    def run_once(self) -> int:
        """One heartbeat, then one claim per slot, run side by side to their ends; returns attempts run."""
        if not self.start():
            return 0
        self.heartbeat.beat()
        if self._claiming_paused():
            return 0
        slots = self.config.concurrency
        if slots == 1:
            return int(self._step(0, sync=True))
        worked = [False] * slots
        threads = [threading.Thread(target=lambda i=i: worked.__setitem__(i, self._step(i, sync=True)))
                   for i in range(slots)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(worked)

    # ------------------------------------------------------------ the slots
    def _claiming_paused(self) -> bool:
        return self._stopping.is_set() or self._admin_draining or self._too_hot is not None

    def _slot_loop(self, slot: int) -> None:
        idle_s, retry_s = IDLE_START_S, RETRY_START_S
        worked = False
        while not self._stopping.is_set():
            if self._admin_draining:
                self._stopping.wait(min(1.0, self.config.heartbeat_s))
                continue
            try:
                worked = self._step(slot, ahead=worked)
                retry_s = RETRY_START_S
            except PyMongoError as exc:
                worked = False
                self.trouble.failed(f"slot {slot}", exc)
                self._stopping.wait(retry_s)
                retry_s = min(retry_s * 2, RETRY_MAX_S)
                continue
            except Exception:
                worked = False
                log.exception("slot %d: unexpected error", slot)
                self._stopping.wait(1.0)
                continue
            if worked:
                idle_s = IDLE_START_S
            elif self.config.burst:
                if self._burst_done(slot):
                    return
            else:
                try:
                    # a wait that says "nothing new" is followed by another, not by a claim
                    while not self._idle_wait(idle_s):
                        pass
                except Exception:
                    log.exception("slot %d: idle wait failed", slot)
                    self._stopping.wait(idle_s)
                idle_s = min(idle_s * 2, self.config.poll_max_s)

    def _step(self, slot: int, sync: bool = False, ahead: bool = False) -> bool:
        """Claim for this slot and run what it claimed; False when nothing was claimable.

        ``ahead`` (the slot's last claim found work): tasks of functions measured as short are
        claimed several at once (``worker.prefetch``) and run one after another; those the slot
        cannot start (stopping, draining, too hot, no free core) are handed back unstarted.
        Each outcome is written by the group commit or the finisher pool while the slot runs or
        claims its next task (at most ``_depth`` writes per slot in flight), so MongoDB round
        trips overlap; ``sync`` writes it before returning and claims one at a time.
        """
        with self._cv:
            self._busy += 1
            self._claim_gen[slot] = self._ended_gen
        owed = 1  # _leave() calls owed: one per claim not handed to a writer (one if nothing was claimed)
        waiting: list[Claim] = []
        more: Future | None = None  # the next tasks, claimed ahead while these run
        try:
            sent = time.monotonic()  # the lease the server sets starts after this
            claim, fits = self._claim_within_capacity()
            self.trouble.ok()
            if claim is None:
                return False
            self._hold(claim, slot, sent)
            ahead = ahead and not sync
            if ahead:  # the next ones are claimed while this one runs
                more = self._claim_ahead_meanwhile(claim.task["function"], slot)
            owed -= self._run_claim(slot, claim, fits, sync)
            while not self._claiming_paused():
                if ahead and more is None and waiting and len(waiting) <= AHEAD_LOW:
                    more = self._claim_ahead_meanwhile(waiting[-1].task["function"], slot)
                if not waiting:
                    got, more = (more.result() if more else []), None
                    if not got:
                        break
                    waiting = got
                    owed += self._busy_with(got)
                claim = waiting[0]
                with self._capacity_lock:
                    if self.capacity.hold(claim.attempt_id, claim.task.get("requires") or {}) is None:
                        break
                owed -= self._run_claim(slot, waiting.pop(0), True, sync)
            return True
        finally:
            if more is not None:  # claimed while the slot stopped: handed back with the rest
                got = more.result()
                waiting += got
                owed += self._busy_with(got)
            if waiting:
                self._hand_back(waiting)
            for _ in range(owed):
                self._leave()

    def _busy_with(self, claims: list[Claim]) -> int:
        """Claims made ahead count as busy until recorded or handed back; returns how many."""
        if claims:
            with self._cv:
                self._busy += len(claims)
        return len(claims)

    def _hold(self, claim: Claim, slot: int, sent: float) -> None:
        """The claim is this worker's: the heartbeat renews its lease, the fence watches it."""
        with self._lock:
            self._running[claim.attempt_id] = (claim.task_id, slot)
        self.fence.hold(claim.attempt_id, sent)

    def _run_claim(self, slot: int, claim: Claim, fits: bool, sync: bool) -> int:
        """Run one held claim and hand its outcome on; returns 1 when a writer owns its _leave()."""
        try:
            outcome = self._execute(slot, claim) if fits else Outcome(
                AttemptState.LOST, error=f"the task did not fit worker {self.config.name}'s free capacity "
                                         "(cores or GPU memory); it is retried")
        except BaseException:
            self._release(claim)
            raise
        finally:  # its processes are gone: the cores and GPUs are free for the next claim
            with self._capacity_lock:
                self.capacity.release(claim.attempt_id)
        if outcome.state == AttemptState.SUCCEEDED:  # known before the next claim decides what to take
            self.short.note(claim.task["function"], outcome.seconds)
        if sync:
            self._record(claim, outcome, leave=False)
            return 0
        pending = self._pending[slot]
        while len(pending) >= self._depth:
            pending.pop(0).result()
        if groupable(claim, outcome):
            pending.append(self.group.submit(claim, outcome))
        else:
            pending.append(self._finisher.submit(self._record, claim, outcome, True))
        return 1

    def _claim_ahead_meanwhile(self, function: str, slot: int) -> Future | None:
        """After a task of ``function``, if it is short: the next tasks, claimed in the background
        (``claim_ahead``) while the slot runs what it holds; None when nothing is claimed ahead."""
        count, functions = self.short.ahead(function)
        return self._ahead.submit(self._claim_ahead, count, functions, slot) if count else None

    def _claim_ahead(self, count: int, functions: list[str], slot: int) -> list[Claim]:
        if self._claiming_paused():
            return []
        try:
            with self._ahead_lock:  # one at a time per worker: two slots would race for the same next tasks
                sent = time.monotonic()
                more = self.store.tasks.claim_ahead(self.claimant, count, functions,
                                                    self.quota_room.limited_owners())
        except Exception as exc:  # noqa: BLE001 - claiming ahead is an optimisation: run what we have
            log.info("claiming ahead failed (%s: %s); going on with one claim at a time", type(exc).__name__, exc)
            return []
        for extra in more:
            self._hold(extra, slot, sent)
        return more

    def _hand_back(self, claims: list[Claim]) -> None:
        """Claimed ahead, never started: back to the queue without counting a failure."""
        why = f"handed back unstarted by worker {self.config.name}"
        for claim in claims:
            try:
                self.store.tasks.release_attempt(claim.task_id, claim.attempt_id, self.config.name, why)
            except Exception as exc:  # noqa: BLE001 - its lease ends and it is retried
                log.warning("task %s: could not hand back attempt %s (%s); its lease will expire", claim.task_id,
                            claim.attempt_id, exc)
            finally:
                self._release(claim)

    def _leave(self, recorded: bool = False) -> None:
        with self._cv:
            self._busy -= 1
            if recorded:
                self._ended_gen += 1
            self._cv.notify_all()

    def _claim_within_capacity(self) -> tuple[Claim | None, bool]:
        """Claim only what fits the free cores and GPUs, and take them, as one step per worker."""
        with self._capacity_lock:
            free = self.capacity.claim_limits()
            who = replace(self.claimant, cpus=free["cpus"], gpus=free["gpus"], gpu_mem_gb=free["gpu_mem_gb"])
            claim = self.store.tasks.claim_next(who)
            if claim is None:
                return None, False
            owner = claim.task.get("submitted_by")
            if self.quota_room.limited(owner):  # under a running quota: the next claim knows it took one
                self.quota_room.claimed(claim.attempt_id, owner, self.store.now())
                self._avoid_full_owners()
            # the claim filter bounds each need on its own; the exact fit (which GPUs) is decided here
            return claim, self.capacity.hold(claim.attempt_id, claim.task.get("requires") or {}) is not None

    def _release(self, claim: Claim) -> None:
        with self._lock:
            self._running.pop(claim.attempt_id, None)
            self._doomed.discard(claim.attempt_id)
            self._submitters.pop(claim.task_id, None)
        with self._capacity_lock:  # (already, unless the attempt never ran)
            self.capacity.release(claim.attempt_id)
            self.quota_room.ended(claim.attempt_id)
            self._avoid_full_owners()
        self.fence.drop(claim.attempt_id)

    # ------------------------------------------------------------- idling
    def _burst_done(self, slot: int) -> bool:
        """Burst mode found nothing: over when no slot claims, runs or records, else wait for one to end.

        An outcome recorded while this slot's claim was under way (a retry may have re-queued a
        task) means: claim again before concluding.
        """
        with self._cv:
            if self._burst_over:
                return True
            if self._ended_gen != self._claim_gen[slot]:
                return False
            if self._busy == 0:
                self._burst_over = True
                self._cv.notify_all()
                return True
            self._cv.wait(0.5)
            return self._burst_over

    def _tail_wakeups(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for a wake-up signal (True when one came), in waits that each end
        within the socket timeout: an idle worker asks MongoDB once a second and claims once
        per ``timeout`` (up to ``poll_max_s``), not once per wait."""
        deadline = time.monotonic() + timeout
        step = min(timeout, self.config.io_timeout_s() / 2)  # one await for every wait: the cursor is kept
        while not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            began = time.monotonic()
            try:
                if self.store.wakeups.wait(step):
                    return True
            except Exception as exc:  # wake-ups are an optimisation: fall back to polling
                if not self._wakeups_broken:
                    self._wakeups_broken = True
                    log.warning("wake-up signals unavailable (%s: %s); polling every %gs at most",
                                type(exc).__name__, exc, self.config.poll_max_s)
            # a dead cursor answers at once: never spin on it
            self._stopping.wait(max(0.0, step - (time.monotonic() - began)))
        return False

    def _idle_wait(self, timeout: float) -> bool:
        """Wait for work; True when this slot should claim now.

        One idle slot tails the wake-ups and claims after each wait (its poll); the others
        claim only after a wake-up signal or a timeout of their own. After the tailing slot's
        silent timeout they wait again: one claim found nothing, so theirs would too.
        """
        if self._waiter.acquire(blocking=False):
            try:
                got = self._tail_wakeups(timeout)
            finally:
                self._waiter.release()
            with self._cv:
                self._wake_gen += 1
                self._wake_signalled = got
                self._cv.notify_all()
            return True
        with self._cv:
            gen = self._wake_gen
            woken = self._cv.wait_for(lambda: self._wake_gen != gen or self._stopping.is_set(), 2 * timeout)
            return not woken or self._wake_signalled or self._stopping.is_set()
