"""The fault matrix: learn an operation's requests on a clean run, then fail each one with each fault and check the promise."""

from __future__ import annotations

import abc
import json
import pathlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import Env
from tests.faults import FAULTS, RACES, Faults

ARTIFACTS = pathlib.Path(__file__).resolve().parents[2] / "test-artifacts" / "reliability"
Where = tuple[str, str]  # (tier, key)


@dataclass
class Case:
    """One run of an operation on fresh state: every key it may touch holds ``/{mark}/``."""

    mark: str
    data: bytes
    #: Where the case's record is before and after the operation (None: no record).
    before: Where | None
    after: Where | None
    #: Run the operation once; return True when it reports that it completed (raise when it fails).
    act: Callable[[], bool]


class World(abc.ABC):
    """What the matrix reads and runs behind the operation's back: records, raw buckets, the orphan sweep."""

    def __init__(self, env: Env, faults: Faults) -> None:
        self.env = env
        self.faults = faults

    # -- a subclass must implement -------------------------------------------------

    @abc.abstractmethod
    def rows(self, mark: str) -> list[Where]:
        """Return where each record of the case points."""

    @abc.abstractmethod
    def sweep(self, mark: str) -> None:
        """Delete the case's orphans (grace period 0), as an operator's sweep would."""

    @abc.abstractmethod
    def calm(self) -> AbstractContextManager[None]:
        """Within: run on a manager that bypasses the proxies, with default timeouts (set-up, re-runs, sweeps)."""

    def problems(self, mark: str) -> list[str]:
        """Return anything else wrong with the case's records (a lease left behind, ...)."""
        return []

    def start_lane(self) -> None:
        """Prepare the thread that runs this world's cases."""

    def end_lane(self) -> None:
        """Release what that thread holds."""

    # -- shared ----------------------------------------------------------------------

    def keys(self, mark: str) -> set[Where]:
        """Return the case's objects in both buckets, listed directly (not through the proxy)."""
        found: set[Where] = set()
        for tier in ("HOT", "COLD"):
            for visibility in ("public", "private"):
                resp = self.env.client(tier).list_objects_v2(Bucket=self.env.bucket(tier), Prefix=f"{visibility}/{mark}/")
                found.update((tier, o["Key"]) for o in resp.get("Contents", []))
        return found

    def holds(self, where: Where, data: bytes) -> str | None:
        """Return None when ``where`` holds ``data``, else what is wrong."""
        try:
            got = self.env.read(*where)
        except Exception as exc:
            return f"the row points at {where}, which cannot be read ({type(exc).__name__})"
        return None if got == data else f"{where} holds other bytes"


@dataclass
class Tally:
    """What one matrix tried and how many cases held."""

    operation: str
    layout: str
    steps: list[str]
    cases: int = 0
    held: int = 0
    failures: list[str] = field(default_factory=list)
    #: Cases where the operation raised although its record change was made (held, but worth knowing).
    raised_after_commit: list[str] = field(default_factory=list)
    #: What each request was met with: the faults, or the moments another writer ran at (races).
    kinds: tuple[str, ...] = FAULTS

    def save(self) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"{self.operation}-{self.layout}.json").write_text(json.dumps(self.__dict__, indent=2))
        what = "faults" if self.kinds == FAULTS else "moments of another writer"
        print(
            f"\nfault matrix {self.operation} [{self.layout}]: {len(self.steps)} steps x {len(self.kinds)} {what} = "
            f"{self.cases} cases, {self.held} held; steps: {', '.join(self.steps)}"
        )


def _check(world: World, case: Case, completed: bool | None) -> list[str]:
    """Check the promise right after the operation: ``completed`` is None when it raised."""
    problems: list[str] = []
    rows = world.rows(case.mark)
    if len(rows) > 1:
        problems.append(f"{len(rows)} rows for one file")
    state = rows[0] if rows else None
    allowed = [case.after] if completed else [case.before] if completed is False else [case.before, case.after]
    if state not in allowed:
        problems.append(f"the row is at {state}, expected one of {allowed}")
    if state is not None and (bad := world.holds(state, case.data)):
        problems.append(bad)
    return problems + world.problems(case.mark)


def _converge(world: World, case: Case, completed: bool) -> list[str]:
    """Re-run the operation if it did not complete, sweep the orphans, and check that all is as it should be."""
    problems: list[str] = []
    if not completed:
        try:
            if not case.act():
                problems.append("the re-run did not complete")
        except Exception as exc:
            problems.append(f"the re-run failed: {exc}")
    expected = [case.after] if case.after else []
    keys = world.keys(case.mark)
    if keys != set(expected):
        world.sweep(case.mark)  # only when there is something to sweep: it lists four prefixes
        keys = world.keys(case.mark)
    rows = world.rows(case.mark)
    if rows != expected:
        problems.append(f"after the re-run and sweep the rows are {rows}, expected {expected}")
    if case.after is not None and (bad := world.holds(case.after, case.data)):
        problems.append(bad)
    if keys != set(expected):
        problems.append(f"after the sweep the objects are {sorted(keys)}, expected {expected}")
    return problems + world.problems(case.mark)


def run_matrix(operation: str, layout: str, worlds: list[World], prepare: Callable[[World, str], Case]) -> Tally:
    """Run ``operation`` clean to learn its requests, then once per (request, fault) on fresh state; return the tally.

    Cases run in parallel, one at a time per world: each world has its own proxies and request
    counts, and every case its own keys, so they cannot see each other's faults.
    """
    world = worlds[0]
    with world.calm():
        clean = prepare(world, f"{operation}-{layout}-clean")
    world.faults.reset()
    assert clean.act(), f"{operation} did not complete on a clean run"
    steps = world.faults.ops()
    world.faults.reset()
    with world.calm():
        assert not _check(world, clean, True) + _converge(world, clean, True), f"{operation} breaks the promise on a clean run"
    tally = Tally(operation, layout, steps)
    plan = [(index, op, steps[: index + 1].count(op), fault) for index, op in enumerate(steps) for fault in FAULTS]
    lanes = [plan[i :: len(worlds)] for i in range(len(worlds))]

    def run_lane(world: World, lane: list[tuple[int, str, int, str]]) -> list[tuple[str, list[str]]]:
        results = []
        world.start_lane()
        try:
            for index, op, nth, fault in lane:
                name = f"{operation}[{layout}] step {index + 1} ({op} #{nth}) {fault}"
                with world.calm():
                    case = prepare(world, f"{operation}-{layout}-{index}-{fault}")
                results.append((name, _one_case(world, case, op, nth, fault, name, tally)))
        finally:
            world.end_lane()
        return results

    with ThreadPoolExecutor(len(worlds)) as pool:
        for results in pool.map(run_lane, worlds, lanes):
            for name, problems in results:
                tally.cases += 1
                if problems:
                    tally.failures.append(f"{name}: {'; '.join(problems)}")
                else:
                    tally.held += 1
    tally.failures.sort()
    tally.save()
    return tally


def _one_case(world: World, case: Case, op: str, nth: int, fault: str, name: str, tally: Tally) -> list[str]:
    faults = world.faults
    faults.reset()
    faults.fail(op, nth=nth, fault=fault)
    completed: bool | None
    try:
        completed = case.act()
    except Exception:
        completed = None
    fired = any(s.outcome == fault for s in faults.log)
    faults.reset()
    problems = [] if fired else ["the fault never fired: the request sequence changed"]
    # Checked, re-run and swept the way an operator would: without faults, with normal timeouts.
    with world.calm():
        problems += _check(world, case, completed)
        if completed is None and world.rows(case.mark)[:1] == ([case.after] if case.after else []) != [case.before]:
            tally.raised_after_commit.append(name)
        return problems + _converge(world, case, bool(completed))


def assert_held(tally: Tally) -> None:
    """Fail with the first broken cases, if any."""
    assert tally.held == tally.cases, "\n".join(tally.failures[:15])


def record_of(records: Any, mark: str) -> Any:
    """Return the one record among ``records`` whose path holds ``/{mark}/``."""
    found = [r for r in records if f"/{mark}/" in r.path]
    assert len(found) == 1, f"{len(found)} records for {mark}"
    return found[0]


# -- races: another writer run at each request of an operation ------------------------------


@dataclass
class Race:
    """Writer A (the operation whose requests are learned) and writer B, run by the proxy at one of A's requests."""

    mark: str
    data: bytes
    #: Where the file's record may be once both are done (None: no record).
    ends: list[Where | None]
    #: Writer A; what it returns or raises is only reported.
    act: Callable[[], object]
    #: Writer B, on a manager that bypasses the proxies.
    other: Callable[[], object]
    #: Faults A meets on every run, the learning one included (a failing copy whose clean-up B races).
    arm: Callable[[Faults], None] = lambda faults: None


def run_races(name: str, layout: str, worlds: list[World], prepare: Callable[[World, str], Race]) -> Tally:
    """Learn A's requests, then for each request and each moment (before it, after it) run B there; return the tally.

    After each case: at most one record, at one of the allowed places, holding the original bytes; then
    one sweep (the claims are released by then) leaves exactly the record's object.
    """
    world = worlds[0]
    with world.calm():
        clean = prepare(world, f"{name}-{layout}-clean")
    world.faults.reset()
    clean.arm(world.faults)
    _outcome(clean.act)
    steps = world.faults.ops()
    world.faults.reset()
    tally = Tally(name, layout, steps, kinds=RACES)
    plan = [(index, op, steps[: index + 1].count(op), when) for index, op in enumerate(steps) for when in RACES]
    lanes = [plan[i :: len(worlds)] for i in range(len(worlds))]
    outcomes: dict[str, int] = {}

    def run_lane(world: World, lane: list[tuple[int, str, int, str]]) -> list[tuple[str, list[str]]]:
        results = []
        world.start_lane()
        try:
            for index, op, nth, when in lane:
                case_name = f"{name}[{layout}] B {when} request {index + 1} ({op} #{nth})"
                with world.calm():
                    race = prepare(world, f"{name}-{layout}-{index}-{when}")
                seen: list[str] = []
                ran = threading.Event()

                def other(race: Race = race, seen: list[str] = seen, ran: threading.Event = ran) -> None:
                    seen.append(_outcome(race.other))
                    ran.set()

                world.faults.reset()
                race.arm(world.faults)
                world.faults.race(op, nth, when, other)
                a = _outcome(race.act)
                # After a stalled request B runs once the answer is withheld, which A has stopped waiting for.
                fired = ran.wait(world.faults.stall_seconds + 5)
                world.faults.reset()
                with world.calm():
                    problems = [] if fired else ["B never ran: the request sequence changed"]
                    problems += _check_race(world, race)
                results.append((case_name, problems))
                for outcome in (f"A {a}", *(f"B {b}" for b in seen)):
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
        finally:
            world.end_lane()
        return results

    with ThreadPoolExecutor(len(worlds)) as pool:
        for results in pool.map(run_lane, worlds, lanes):
            for case_name, problems in results:
                tally.cases += 1
                if problems:
                    tally.failures.append(f"{case_name}: {'; '.join(problems)}")
                else:
                    tally.held += 1
    tally.failures.sort()
    tally.save()
    print(f"race {name} [{layout}] outcomes: {dict(sorted(outcomes.items()))}")
    return tally


def _outcome(work: Callable[[], object]) -> str:
    """Run ``work``; return "done" (or the bool or None it returned) or the name of what it raised."""
    try:
        value = work()
    except Exception as exc:
        return type(exc).__name__
    return f"returned {value}" if value is None or isinstance(value, bool) else "done"


def _check_race(world: World, race: Race) -> list[str]:
    problems: list[str] = []
    rows = world.rows(race.mark)
    if len(rows) > 1:
        problems.append(f"{len(rows)} rows for one file")
    state = rows[0] if rows else None
    if state not in race.ends:
        problems.append(f"the row is at {state}, expected one of {race.ends}")
    if state is not None and (bad := world.holds(state, race.data)):
        problems.append(bad)
    expected = {state} if state is not None else set()
    if world.keys(race.mark) != expected:
        world.sweep(race.mark)
        if (keys := world.keys(race.mark)) != expected:
            problems.append(f"after the sweep the objects are {sorted(keys)}, expected {sorted(expected)}")
    return problems + world.problems(race.mark)
