"""Mutation testing of the provider's client core and hooks (``make mutation``; not in ``make test``).

mutmut 3 mutates a copy of the tracked files (``git ls-files``) in a scratch folder, so the
checkout is never touched, then runs, for each mutant, the tests that reach the mutated function.
Per module it reports killed / non-equivalent mutants; a module group under its floor (client core
90 %, hooks 80 %) fails the run.

Equivalent mutants (no test can tell them from the original: the behaviour is the same) are listed
in ``.ci/mutation-equivalents.toml`` with the mutated line and why. A listed mutant whose diff no
longer shows that line (the code moved on) counts as a survivor again, so the list cannot go stale
silently.

Run: ``make mutation`` (see docs/mutation.md for its duration), or ``.venv-mutation/bin/python
.ci/mutation.py --module airflow_jobwait/client/retry.py`` for one module.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

# mutmut's own reading of its mutant names (``make mutation``'s venv has mutmut).
from mutmut.utils.format_utils import (
    get_module_from_key,
    mangled_name_from_mutant_name,
    orig_function_and_class_names_from_key,
)

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS_FILE = ROOT / ".ci" / "mutation-equivalents.toml"
#: pytest's options for each mutant's tests (see write_config).
PYTEST_ARGS = ["-p", "no:cacheprovider", "-q", "-p", "mutation_order", "--timeout", "60"]
#: The tests' liveness bound under mutation (``tests/_liveness.py``; 60 s in ``make test``). The
#: waits it bounds end within a few seconds on the unmutated code; a mutant that stalls one is
#: caught when it runs out, so the bound is most of such a mutant's time.
LIVENESS_S = 20


@dataclass(frozen=True)
class Group:
    """Modules scored together, the floor they must reach and the tests that exercise them."""

    name: str
    floor: float
    modules: tuple[str, ...]
    tests: tuple[str, ...]


GROUPS: tuple[Group, ...] = (
    Group(
        "client core",
        90.0,
        (
            "airflow_jobwait/client/retry.py",
            "airflow_jobwait/client/wait_loop.py",
            "airflow_jobwait/client/job_kinds.py",
            "airflow_jobwait/client/http.py",
            "airflow_jobwait/client/coalesce.py",
        ),
        (
            "tests/test_client_core.py",
            "tests/test_response_parsers.py",
            "tests/test_coalesced_poller.py",
            "tests/test_tick_wheel.py",
            "tests/test_apply_slices.py",
            "tests/test_bad_input.py",
            "tests/test_native_statuses.py",
            "tests/test_job_trigger.py",
            "tests/test_wait_outcomes.py",
            "tests/test_socket_faults.py",
            "tests/test_wait_deadlines.py",
        ),
    ),
    Group(
        "hooks",
        80.0,
        (
            "airflow_jobwait/hooks/base.py",
            "airflow_jobwait/hooks/connection.py",
            "airflow_jobwait/hooks/jobs.py",
            "airflow_jobwait/hooks/datasets.py",
            "airflow_jobwait/hooks/compute.py",
            "airflow_jobwait/hooks/results.py",
        ),
        (
            "tests/test_jobs_hook.py",
            "tests/test_datasets_hook.py",
            "tests/test_compute_hook.py",
            "tests/test_results_hook.py",
            "tests/test_connection_types.py",
            "tests/test_create_once.py",
            "tests/test_evo_oauth.py",
            "tests/test_submit_idempotency.py",
            "tests/test_secrets.py",
            "tests/test_shared_settings.py",
        ),
    ),
)

#: ``airflow_jobwait.client.retry.xǁRetryPolicyǁbackoff__mutmut_3: killed``
_RESULT_LINE = re.compile(r"^\s*(?P<name>[\w.ǁ]+__mutmut_\d+): (?P<status>[\w ]+?)\s*$")
#: mutmut's verdicts that count as a test noticing the mutant.
_CAUGHT = {"killed", "timeout", "caught by type check"}


@dataclass
class ModuleScore:
    """Verdicts of one module's mutants."""

    module: str
    statuses: dict[str, str] = field(default_factory=dict)
    equivalent: set[str] = field(default_factory=set)

    @property
    def killed(self) -> int:
        return sum(status in _CAUGHT for status in self.statuses.values())

    @property
    def survivors(self) -> list[str]:
        return sorted(n for n, s in self.statuses.items() if s not in _CAUGHT and n not in self.equivalent)

    @property
    def score(self) -> float:
        counted = len(self.statuses) - len(self.equivalent)
        return 100.0 if counted <= 0 else 100.0 * self.killed / counted


def module_of(mutant: str) -> str:
    """``airflow_jobwait.client.retry.xǁRetryPolicyǁbackoff__mutmut_3`` -> ``airflow_jobwait/client/retry.py``."""
    return get_module_from_key(mangled_name_from_mutant_name(mutant)).replace(".", "/") + ".py"


def function_of(mutant: str) -> str:
    """``airflow_jobwait.client.retry.xǁRetryPolicyǁbackoff__mutmut_3`` -> ``client.retry.RetryPolicy.backoff``."""
    module = get_module_from_key(mangled_name_from_mutant_name(mutant)).removeprefix("airflow_jobwait.")
    name, owner = orig_function_and_class_names_from_key(mutant)
    return ".".join(part for part in (module, owner, name) if part)


def copy_tracked_files(destination: Path) -> None:
    """The files git tracks (not venvs, caches or local state), as the checkout has them now."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def write_config(workdir: Path, modules: list[str], tests: list[str]) -> None:
    """mutmut's settings, appended to the copy's ``pyproject.toml`` (the checkout's stays clean)."""
    config = (
        "\n[tool.mutmut]\n"
        'source_paths = ["airflow_jobwait"]\n'
        f"only_mutate = {json.dumps(modules)}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        # The e2e and soak suites are not selected; -p no:cacheprovider keeps the copy clean.
        # mutation_order (.ci/mutation_order.py): each mutant's tests fastest first, a file's together.
        # --timeout: a test that a mutant made hang fails after 60 s (6x the slowest of the selected
        # tests, 10 s) instead of holding its mutant until mutmut's own timeout (4x its whole
        # selection's time: many minutes for a mutant that every test reaches).
        f"pytest_add_cli_args = {json.dumps(PYTEST_ARGS)}\n"
        'also_copy = ["reference-service", "dags_examples"]\n'
        # A mutant that hangs (a wait that never ends) is cut at 4x (its tests' own time + 10 s),
        # wall-clock, rather than mutmut's 15x: the HTTP tests take seconds each, 15x made one hang
        # cost minutes. Timeouts are re-run with fewer at once (recheck_timeouts).
        "timeout_multiplier = 4.0\n"
        "timeout_constant = 10.0\n"
    )
    with (workdir / "pyproject.toml").open("a", encoding="utf-8") as out:
        out.write(config)


def mutmut(workdir: Path, *args: str, capture: bool = False) -> str:
    """Run mutmut in the copy (``make mutation``'s venv has the provider's entry points and the
    reference service installed; the copy's ``.ci`` holds the ``mutation_order`` plugin)."""
    path = os.pathsep.join(filter(None, [str(workdir / ".ci"), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        cwd=workdir,
        check=True,
        text=True,
        capture_output=capture,
        env={**os.environ, "PYTHONPATH": path, "JOBWAIT_TEST_LIVENESS_S": str(LIVENESS_S)},
    )
    return done.stdout if capture else ""


def migrated_template(workdir: Path) -> Path:
    """One migrated SQLite metadata DB that every mutant's test session copies
    (``tests/conftest.py`` ``airflow_db``) instead of running ``airflow db migrate`` itself."""
    home = workdir / ".airflow-db-template"
    home.mkdir()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, env=env, capture_output=True)
    return home / "airflow.db"


def recheck_timeouts(workdir: Path, modules: list[str], max_children: int) -> None:
    """Run the mutants that timed out again: mutmut's timeout is wall-clock, so a mutant whose
    tests only lacked CPU among the others would count as caught. The second verdict stands (a
    mutant that hangs times out again).

    A mutant that hangs waits without using the CPU, and most timeouts are such hangs, so the
    re-run still runs several at once: half of them, at most ``max_children`` and at least one per
    core, so that the few that really compute are not short of CPU again (run 5: all 23 timed out
    again, a quarter at once, in 4 minutes).
    """
    timed_out = [
        match["name"]
        for row in mutmut(workdir, "results", "--all", "true", capture=True).splitlines()
        if (match := _RESULT_LINE.match(row)) and match["status"] == "timeout" and module_of(match["name"]) in modules
    ]
    if timed_out:
        at_once = max(os.cpu_count() or 2, min(max_children, len(timed_out) // 2))
        print(f"re-running the {len(timed_out)} mutants that timed out, {at_once} at once", flush=True)
        mutmut(workdir, "run", "--max-children", str(at_once), *timed_out)


def load_equivalents() -> dict[str, dict[str, str]]:
    """``{mutant name: {"line": mutated line, "why": reason}}`` from the equivalents file."""
    if not EQUIVALENTS_FILE.exists():
        return {}
    return tomllib.loads(EQUIVALENTS_FILE.read_text("utf-8")).get("mutant", {})


def still_equivalent(workdir: Path, name: str, line: str) -> bool:
    """The listed mutant still makes the recorded change (its diff has the ``+`` line)."""
    try:
        diff = mutmut(workdir, "show", name, capture=True)
    except subprocess.CalledProcessError:
        return False
    added = [row[1:].strip() for row in diff.splitlines() if row.startswith("+") and not row.startswith("+++")]
    return line.strip() in added


def score(
    workdir: Path, modules: list[str], previous: dict[str, dict[str, str]] | None = None
) -> tuple[dict[str, ModuleScore], list[str]]:
    """Per-module verdicts, and the equivalents that no longer hold.

    :param previous: A previous run's verdicts (``--rerun-survivors-of``): where this run did not
        check a mutant, its caught verdict from then stands.
    """
    scores = {module: ModuleScore(module) for module in modules}
    for row in mutmut(workdir, "results", "--all", "true", capture=True).splitlines():
        if match := _RESULT_LINE.match(row):
            module = module_of(match["name"])
            if module in scores:
                status = match["status"]
                before = (previous or {}).get(module, {}).get(match["name"])
                if status == "not checked" and before in _CAUGHT:
                    status = before
                scores[module].statuses[match["name"]] = status
    stale = []
    for name, entry in load_equivalents().items():
        owner = scores.get(module_of(name))
        if owner is None or name not in owner.statuses:
            continue
        if owner.statuses[name] in _CAUGHT:
            continue  # a test notices it now: not equivalent after all, and counted as killed
        if still_equivalent(workdir, name, entry["line"]):
            owner.equivalent.add(name)
        else:
            stale.append(name)
    return scores, stale


def report(scores: dict[str, ModuleScore], stale: list[str], minutes: float) -> tuple[str, bool]:
    """A markdown table per group (as ``docs/mutation.md`` records it) and whether every floor holds."""
    lines = [
        f"mutmut 3.8.1, {minutes:.0f} min on {os.cpu_count()} cores",
        "",
        "| module | mutants | killed | equivalent | survived | score |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    ok = True
    for group in GROUPS:
        members = [scores[m] for m in group.modules if m in scores]
        if not members:
            continue
        for s in members:
            lines.append(
                f"| `{s.module.removeprefix('airflow_jobwait/')}` | {len(s.statuses)} | {s.killed} "
                f"| {len(s.equivalent)} | {len(s.survivors)} | {s.score:.1f} % |"
            )
        total = sum(len(s.statuses) - len(s.equivalent) for s in members)
        killed = sum(s.killed for s in members)
        group_score = 100.0 if total == 0 else 100.0 * killed / total
        ok &= group_score >= group.floor
        lines.append(
            f"| **{group.name}** (floor {group.floor:.0f} %) | {sum(len(s.statuses) for s in members)} | {killed} "
            f"| {sum(len(s.equivalent) for s in members)} | {sum(len(s.survivors) for s in members)} "
            f"| **{group_score:.1f} %** |"
        )
    survivors = [n for s in scores.values() for n in s.survivors]
    lines += ["", f"survivors ({len(survivors)}):", *(f"- `{n}`" for n in survivors)]
    if stale:
        lines += ["", "equivalents that no longer match their mutant (counted as survivors):"]
        lines += [f"- `{n}`" for n in stale]
    return "\n".join(lines), ok


def time_spent(workdir: Path, modules: list[str], top: int = 15) -> str:
    """Where the run's time went: the functions whose mutants took the most seconds in all (each
    mutant's own wall-clock time, as mutmut recorded it in the copy's ``.meta`` files), for the next
    attempt at shortening the run."""
    by_function: dict[str, list[float]] = {}
    for module in modules:
        meta = workdir / "mutants" / f"{module}.meta"
        if not meta.exists():
            continue
        for name, seconds in json.loads(meta.read_text("utf-8")).get("durations_by_key", {}).items():
            by_function.setdefault(function_of(name), []).append(float(seconds))
    total = sum(map(sum, by_function.values()))
    lines = [
        f"mutant time: {total / 60:.0f} min in all (summed over the mutants run at once)",
        "",
        "| function | mutants | minutes | share | mean s |",
        "|---|---:|---:|---:|---:|",
    ]
    for function, times in sorted(by_function.items(), key=lambda item: -sum(item[1]))[:top]:
        spent = sum(times)
        lines.append(
            f"| `{function}` | {len(times)} | {spent / 60:.1f} | {100 * spent / max(total, 1e-9):.0f} % "
            f"| {spent / len(times):.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module", action="append", help="mutate only this module (repeatable)")
    # Most tests wait (poll intervals, a service's answers over HTTP), and the slow mutants wait
    # most: 25 at once on 2 cores decided mutants 1.6 times as fast as 10 at once (run 6), and at
    # 24 at once the load average fell under 2 in the slow tail (run 7, docs/mutation.md). Those
    # that time out for want of CPU (mutmut's timeout is wall-clock) run again with fewer at once
    # (recheck_timeouts).
    parser.add_argument("--max-children", type=int, default=16 * (os.cpu_count() or 2))
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "mutation", help="where the report goes")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy (to inspect mutants)")
    parser.add_argument(
        "--rerun-survivors-of",
        nargs=2,
        metavar=("VERDICTS", "COMMIT"),
        help="a previous run's verdicts.json and the commit it ran on: when the scored modules are "
        "unchanged since (only tests changed), its caught mutants keep their verdict and only the "
        "rest run again",
    )
    args = parser.parse_args(argv)

    groups = [g for g in GROUPS if not args.module or set(args.module) & set(g.modules)]
    modules = [m for g in groups for m in g.modules if not args.module or m in args.module]
    if args.module and set(args.module) - set(modules):
        parser.error(f"--module: not a scored module: {sorted(set(args.module) - set(modules))}")
    tests = sorted({t for g in groups for t in g.tests})
    previous: dict[str, dict[str, str]] | None = None
    if args.rerun_survivors_of:
        verdicts, commit = args.rerun_survivors_of
        # Adding tests can only catch more mutants; changed code would make the old verdicts stale.
        # The working tree, not HEAD: the copy that is mutated is the checkout as it is now.
        changed = subprocess.run(["git", "diff", "--quiet", commit, "--", *modules], cwd=ROOT).returncode
        if changed:
            parser.error(f"--rerun-survivors-of: the scored modules changed since {commit}: run them all")
        previous = json.loads(Path(verdicts).read_text("utf-8"))

    workdir = Path(tempfile.mkdtemp(prefix="jobwait-mutation-"))
    began = time.monotonic()
    try:
        copy_tracked_files(workdir)
        write_config(workdir, modules, tests)
        os.environ["JOBWAIT_TEST_AIRFLOW_DB_TEMPLATE"] = str(migrated_template(workdir))
        if previous is None:
            mutmut(workdir, "run", "--max-children", str(args.max_children))
        else:
            again = [n for m in modules for n, status in previous.get(m, {}).items() if status not in _CAUGHT]
            print(f"re-running the {len(again)} mutants the previous run did not catch", flush=True)
            if again:
                mutmut(workdir, "run", "--max-children", str(args.max_children), *again)
        recheck_timeouts(workdir, modules, args.max_children)
        scores, stale = score(workdir, modules, previous)
        text, ok = report(scores, stale, (time.monotonic() - began) / 60)
        text += "\n\n" + time_spent(workdir, modules)
    finally:
        if args.keep:
            print(f"scratch copy kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(text + "\n", encoding="utf-8")
    (args.out / "verdicts.json").write_text(
        json.dumps({m: s.statuses for m, s in scores.items()}, indent=1, ensure_ascii=False), encoding="utf-8"
    )
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
