"""Cancellation and interrupts at every step: the record keeps its bytes, and only orphans are left behind.

Each operation runs clean once to count its steps (the ``S3Call``, ``DBCall`` and ``Sleep`` steps its
generator yields), then once per step on fresh keys, stopped at that step:

- ``caller``: the caller's task is cancelled while it awaits; the operation runs shielded, so it
  finishes (and releases its claims) while the caller gets CancelledError.
- ``driver-before``: the task driving the operation is cancelled as the step starts (what the loop
  going away does); the step never runs.
- ``driver-lost``: the step runs, and the driving task is cancelled before its result arrives.
- ``interrupt-before`` / ``interrupt-lost``: the sync face, with KeyboardInterrupt raised instead
  of the step, or right after it.

After each case: no unraisable error and nothing reported to the loop's exception handler; at most
one record per file, pointing at an object with the original bytes; and once the claims have
expired (cleared here), one orphan sweep leaves exactly the records' objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from django_s3strata.core import (
    DeleteOrphanOptions,
    FileManager,
    InMemoryAdapter,
    PhysicalFile,
    SetTierOptions,
    SetVisibilityOptions,
    StorageTier,
    UploadOptions,
)
from django_s3strata.core import steps as steps_module
from django_s3strata.core.manager import SyncFileManager
from django_s3strata.core.steps import DBCall, S3Call, Sleep
from tests.conftest import Env

Where = tuple[str, str]  # (tier, key)


@dataclass
class Item:
    """One file of a case: its bytes, and where its record is before and after the operation (None: no record)."""

    mark: str
    data: bytes
    before: Where | None
    after: Where | None


@dataclass
class Case:
    items: list[Item]
    #: Run the operation through the async API, or through the sync face.
    run: Callable[[FileManager], Awaitable[Any]]
    run_sync: Callable[[SyncFileManager], Any]


def record(fm: FileManager, mark: str) -> PhysicalFile:
    found = [r for r in fm.adapter.files.values() if f"/{mark}/" in r.path]
    assert len(found) == 1, f"{len(found)} records for {mark}"
    return found[0]


def stored(setup: FileManager, mark: str, tier: str = "HOT", visibility: str = "PRIVATE") -> Item:
    """Upload a case's file with a manager of its own (so the one under test counts no step of it)."""
    data = f"bytes of {mark}".encode()
    f = setup.sync.upload(data, UploadOptions(tier=tier, visibility=visibility, path_suffix=f"{mark}/f.bin", hot_duration=0))
    return Item(mark, data, (tier, f.path), (tier, f.path))


def upload(setup: FileManager, mark: str) -> Case:
    data = f"bytes of {mark}".encode()
    options = UploadOptions(path_suffix=f"{mark}/f.bin")
    item = Item(mark, data, None, ("HOT", f"private/{mark}/f.bin"))
    return Case([item], lambda fm: fm.upload(data, options), lambda sync: sync.upload(data, options))


def set_tier(source: str, target: str) -> Callable[[FileManager, str], Case]:
    def prepare(setup: FileManager, mark: str) -> Case:
        item = stored(setup, mark, tier=source)
        assert item.before is not None
        item.after = (target, item.before[1])
        options = SetTierOptions(tier=target, hot_duration=3600)
        return Case(
            [item],
            lambda fm: fm.set_tier(record(fm, mark), options),
            lambda sync: sync.set_tier(record(sync.manager, mark), options),
        )

    return prepare


def set_visibility(setup: FileManager, mark: str) -> Case:
    item = stored(setup, mark)
    assert item.before is not None
    item.after = ("HOT", item.before[1].replace("private/", "public/", 1))
    options = SetVisibilityOptions(visibility="PUBLIC")
    return Case(
        [item],
        lambda fm: fm.set_visibility(record(fm, mark), options),
        lambda sync: sync.set_visibility(record(sync.manager, mark), options),
    )


def delete(setup: FileManager, mark: str) -> Case:
    item = stored(setup, mark)
    item.after = None
    return Case([item], lambda fm: fm.delete(record(fm, mark)), lambda sync: sync.delete(record(sync.manager, mark)))


def archive(setup: FileManager, mark: str) -> Case:
    """Two expired HOT files archived as one batch (their copies run side by side)."""
    items = [stored(setup, f"{mark}-{n}") for n in range(2)]
    for item in items:
        assert item.before is not None
        item.after = ("COLD", item.before[1])
    marks = [item.mark for item in items]
    return Case(
        items,
        lambda fm: fm.archive_files([record(fm, m) for m in marks]),
        lambda sync: sync.archive_files([record(sync.manager, m) for m in marks]),
    )


OPERATIONS: dict[str, Callable[[FileManager, str], Case]] = {
    "upload": upload,
    "set_tier-to-COLD": set_tier("HOT", "COLD"),
    "set_tier-to-HOT": set_tier("COLD", "HOT"),
    "set_visibility-to-PUBLIC": set_visibility,
    "delete": delete,
    "archive_files": archive,
}
#: One endpoint: a copy is one step whichever way it is made (server-side or streamed between endpoints),
#: so the layout changes no step boundary; the fault matrix covers the requests inside a copy.
PARAMS = [(op, "shared") for op in OPERATIONS]


# -- stopping an operation at its k-th step -------------------------------------------------


class Stepper:
    """Replace the drivers' ``_advance`` to count the steps operations yield, and act on the k-th one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = steps_module._advance
        self.count = 0
        self.at: int | None = None
        self.act: Callable[[Any], Any] | None = None
        self.lock = threading.Lock()  # the sync face's archival copies advance from pool threads
        monkeypatch.setattr(steps_module, "_advance", self.advance)

    def arm(self, at: int | None, act: Callable[[Any], Any] | None = None) -> None:
        self.count, self.at, self.act = 0, at, act

    def advance(self, op: Any, value: Any, error: BaseException | None) -> tuple[bool, Any]:
        done, step = self.real(op, value, error)
        if done:
            return done, step
        with self.lock:
            self.count += 1
            hit = self.count == self.at
        if hit and self.act is not None:
            step = self.act(step)
        return done, step


def performer(step: Any, adapter: Any) -> Callable[[], Any]:
    """Return a callable that performs ``step`` (blocking), with the sync adapter for ``DBCall`` steps."""
    if isinstance(step, S3Call):
        return lambda: step.fn(*step.args, **step.kwargs)
    if isinstance(step, DBCall):

        def call() -> Any:
            return getattr(adapter, step.method)(*step.args, **step.kwargs)

        return call
    return lambda: None


def cancel_driver(variant: str, adapter: Any) -> Callable[[Any], Any]:
    """Cancel the task driving the operation at the step: before it runs, or once it ran (its result lost)."""

    def act(step: Any) -> Any:
        task = asyncio.current_task()
        assert task is not None
        if variant == "before" or isinstance(step, Sleep):
            task.cancel()
            return Sleep(0) if variant == "before" else step
        loop = asyncio.get_running_loop()
        perform = performer(step, adapter)

        def run() -> Any:
            try:
                return perform()
            finally:
                # Queued before the step's result: the driver is cancelled while it waits for it.
                loop.call_soon_threadsafe(task.cancel)

        return S3Call(run)

    return act


def interrupt(variant: str, adapter: Any) -> Callable[[Any], Any]:
    """Raise KeyboardInterrupt in place of the step, or right after it ran."""

    def act(step: Any) -> Any:
        perform = performer(step, adapter)

        def run() -> Any:
            if variant == "lost":
                with contextlib.suppress(Exception):  # the step ran (and failed): the interrupt comes all the same
                    perform()
            raise KeyboardInterrupt

        return S3Call(run)

    return act


# -- what must hold after each case -------------------------------------------------------


@dataclass
class Trouble:
    """Unraisable errors and what reached a loop's exception handler, captured for a whole test."""

    seen: list[str] = field(default_factory=list)

    def unraisable(self, info: Any) -> None:
        self.seen.append(f"unraisable: {info.err_msg or ''} {info.exc_type.__name__}: {info.exc_value}")

    def loop_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.seen.append(f"loop: {context.get('message')} {context.get('exception')!r}")

    def take(self) -> list[str]:
        gc.collect()  # a generator or task nobody closed reports itself when collected
        out, self.seen = self.seen, []
        return out


@pytest.fixture
def trouble(monkeypatch: pytest.MonkeyPatch) -> Iterator[Trouble]:
    t = Trouble()
    monkeypatch.setattr(sys, "unraisablehook", t.unraisable)
    # Collections after each case then scan only what the test made (a full one of moto's heap takes 0.5 s).
    gc.collect()
    gc.freeze()
    try:
        yield t
        assert t.take() == []
    finally:
        gc.unfreeze()


def objects(env: Env) -> set[Where]:
    """Return every object of both buckets, listed directly (they hold a few dozen)."""
    found: set[Where] = set()
    for tier in ("HOT", "COLD"):
        resp = env.client(tier).list_objects_v2(Bucket=env.bucket(tier))
        found.update((tier, o["Key"]) for o in resp.get("Contents", []))
    return found


def of(mark: str, where: set[Where]) -> set[Where]:
    return {w for w in where if f"/{mark}/" in w[1]}


def rows(fm: FileManager, mark: str) -> list[Where]:
    return [(StorageTier(r.storage_tier).value, r.path) for r in fm.adapter.files.values() if f"/{mark}/" in r.path]


def check(env: Env, calm: FileManager, case: Case, *, finished: bool, trouble: Trouble) -> list[str]:
    """Return what is wrong after a stopped operation; ``finished`` when it must have completed anyway.

    ``calm`` shares the records of the manager under test; it sweeps, as an operator would.
    """
    problems = trouble.take()
    claims = calm.adapter.sync_adapter._state.claims  # type: ignore[attr-defined]
    if finished and claims:
        problems.append(f"{len(claims)} claim(s) left behind by an operation that finished")
    for item in case.items:
        found = rows(calm, item.mark)
        if len(found) > 1:
            problems.append(f"{item.mark}: {len(found)} records")
        state = found[0] if found else None
        allowed = [item.after] if finished else [item.before, item.after]
        if state not in allowed:
            problems.append(f"{item.mark}: the record is at {state}, expected one of {allowed}")
        if state is not None:
            try:
                if env.read(*state) != item.data:
                    problems.append(f"{item.mark}: {state} holds other bytes")
            except Exception as exc:
                problems.append(f"{item.mark}: the record points at {state}, which cannot be read ({type(exc).__name__})")
    # The claims of a stopped writer expire; then one sweep removes whatever has no record.
    claims.clear()
    records = {(StorageTier(r.storage_tier).value, r.path) for r in calm.adapter.files.values()}
    if objects(env) != records:
        calm.sync.delete_orphan_objects(DeleteOrphanOptions(grace_period=0))
        if (left := objects(env)) != records:
            problems.append(f"after the sweep the objects are {sorted(left)}, the records {sorted(records)}")
    return problems + trouble.take()


def managers(env: Env) -> tuple[FileManager, FileManager]:
    """A manager under test and a calm one (set-up, sweeps) sharing one InMemoryAdapter, for a whole test."""
    adapter = InMemoryAdapter()
    return FileManager(env.config, adapter), FileManager(env.config, adapter)


def drive(fm: FileManager, case: Case, trouble: Trouble, cancel_caller: tuple[Stepper, int] | None = None) -> str:
    """Run the case's operation in a task of its own on a new loop; return how the caller's task ended."""
    outcome = ""

    async def main() -> None:
        nonlocal outcome
        asyncio.get_running_loop().set_exception_handler(trouble.loop_handler)
        caller = asyncio.create_task(case.run(fm))
        if cancel_caller is not None:
            stepper, k = cancel_caller
            stepper.arm(k, lambda step: (caller.cancel(), step)[1])
        await asyncio.wait([caller])
        outcome = "cancelled" if caller.cancelled() else repr(caller.exception()) if caller.exception() else "done"
        # The shielded operation (or a batch's copies) may still be running: let it finish.
        while others := asyncio.all_tasks() - {asyncio.current_task()}:
            await asyncio.wait(others)

    asyncio.run(main())
    return outcome


def learn_steps(env: Env, operation: str, stepper: Stepper, trouble: Trouble, sync: bool = False) -> int:
    """Run the operation clean, check it, and return how many steps it took."""
    fm, calm = managers(env)
    case = OPERATIONS[operation](calm, f"{operation}-clean")
    stepper.arm(None)
    if sync:
        case.run_sync(fm.sync)
    else:
        assert drive(fm, case, trouble) == "done"
    steps = stepper.count
    assert check(env, calm, case, finished=True, trouble=trouble) == []
    asyncio.run(fm.close())
    return steps


def report(name: str, steps: int, failures: list[str]) -> None:
    print(f"\ncancellation {name}: {steps} steps, {len(failures)} broken")
    assert failures == [], "\n".join(failures[:12])


# -- the tests -----------------------------------------------------------------------------


@pytest.mark.parametrize(("operation", "env"), PARAMS, indirect=["env"])
def test_caller_cancelled_at_every_step_the_operation_finishes(
    operation: str, env: Env, monkeypatch: pytest.MonkeyPatch, trouble: Trouble
) -> None:
    stepper = Stepper(monkeypatch)
    steps = learn_steps(env, operation, stepper, trouble)
    fm, calm = managers(env)
    failures = []
    for k in range(1, steps + 1):
        case = OPERATIONS[operation](calm, f"{operation}-caller-{k}")
        outcome = drive(fm, case, trouble, cancel_caller=(stepper, k))
        stepper.arm(None)
        problems = [] if outcome == "cancelled" else [f"the caller's task ended {outcome}, not cancelled"]
        problems += check(env, calm, case, finished=True, trouble=trouble)
        failures += [f"step {k}: {p}" for p in problems]
    asyncio.run(fm.close())
    report(f"{operation} [caller]", steps, failures)


@pytest.mark.parametrize("variant", ["before", "lost"])
@pytest.mark.parametrize(("operation", "env"), PARAMS, indirect=["env"])
def test_driving_task_cancelled_at_every_step_leaves_only_orphans(
    operation: str, env: Env, variant: str, monkeypatch: pytest.MonkeyPatch, trouble: Trouble
) -> None:
    stepper = Stepper(monkeypatch)
    steps = learn_steps(env, operation, stepper, trouble)
    fm, calm = managers(env)
    failures = []
    for k in range(1, steps + 1):
        case = OPERATIONS[operation](calm, f"{operation}-driver-{variant}-{k}")
        stepper.arm(k, cancel_driver(variant, fm.adapter.as_sync()))
        outcome = drive(fm, case, trouble)
        stepper.arm(None)
        asyncio.run(fm.close())  # wait for a step still running on the pool when its driver went away
        problems = [] if outcome == "cancelled" else [f"the caller's task ended {outcome}, not cancelled"]
        problems += check(env, calm, case, finished=False, trouble=trouble)
        failures += [f"step {k}: {p}" for p in problems]
    report(f"{operation} [driver-{variant}]", steps, failures)


@pytest.mark.parametrize("variant", ["before", "lost"])
@pytest.mark.parametrize(("operation", "env"), PARAMS, indirect=["env"])
def test_keyboard_interrupt_at_every_step_of_the_sync_face_leaves_only_orphans(
    operation: str, env: Env, variant: str, monkeypatch: pytest.MonkeyPatch, trouble: Trouble
) -> None:
    stepper = Stepper(monkeypatch)
    steps = learn_steps(env, operation, stepper, trouble, sync=True)
    fm, calm = managers(env)
    failures = []
    for k in range(1, steps + 1):
        case = OPERATIONS[operation](calm, f"{operation}-interrupt-{variant}-{k}")
        stepper.arm(k, interrupt(variant, fm.sync.adapter))
        try:
            case.run_sync(fm.sync)
            problems = ["KeyboardInterrupt never reached the caller"]
        except KeyboardInterrupt:
            problems = []
        stepper.arm(None)
        problems += check(env, calm, case, finished=False, trouble=trouble)
        failures += [f"step {k}: {p}" for p in problems]
    report(f"{operation} [interrupt-{variant}]", steps, failures)
