"""Mutation testing of the core with cosmic-ray: does the suite fail when a line is wrong?

    python -m benchmarks.mutation [--module NAME ...] [--jobs N] [--again] [--resume]     (make mutation)

Each module is mutated with the test modules that cover it, in a copy of the project under var/mutation/,
niced. A first pass records which tests run each line (coverage contexts) and how long each takes; each
mutant then runs only the tests that run its line, fastest first, stopping at the first failure, with a
timeout from their baseline time (all of the module's tests when none is known, e.g. code run only in a
forked work horse or at import); a mutant that survives them is tried with all of the module's tests
before it counts as a survivor. Lines marked `# pragma: no mutate` are equivalent mutants the README lists:
skipped, and counted as "marked". Writes benchmarks/results/mutation.json ({"killed", "survived",
"timeout", "score", "survivors": [{"file", "line", "diff"}], "modules": {...}}) and prints the survivors.
Sessions are kept in var/mutation/: a second run only does what is left; --again re-runs the survivors of
the last run (after new tests; with --resume, without a new baseline), --fresh starts over.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "var" / "mutation"
RESULTS = ROOT / "benchmarks" / "results" / "mutation.json"
FACES_DIR = os.environ.get("FACES_DIR", str(ROOT.parent / "shared" / "faces"))


@dataclass(frozen=True)
class Target:
    path: str
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()  # only these functions and methods; empty: the whole module


TARGETS = {
    "matching": Target("recognition/matching.py", ("tests/test_matching.py", "tests/test_gallery_cache.py")),
    "engine": Target("recognition/engine.py", ("tests/test_engine.py",)),
    "uploads": Target("recognition/uploads.py", ("tests/test_uploads.py", "tests/test_api.py", "tests/test_limits.py")),
    "reconcile": Target("jobs/reconcile.py", ("tests/test_reconcile.py",)),
    "enqueue": Target(
        "jobs/enqueue.py",
        (
            "tests/test_enqueue.py",
            "tests/test_reconcile.py",
            "tests/test_reprocess.py",
            "tests/test_group_faces.py",
        ),
    ),
    "models": Target(
        "recognition/models.py",
        ("tests/test_models.py", "tests/test_process_photo.py", "tests/test_curation.py"),
        functions=("replace_faces", "apply_matches", "record_alerts", "_pair_by_overlap", "carry_decisions_from"),
    ),
}

# A mutmut-sized set of cosmic-ray's operators: each comparison to its boundary and its negation, each
# arithmetic operator to its opposite, and the logic operators. Not every operator to every other (7 mutants
# per comparison, 11 per arithmetic operator) nor the random variable replacer.
OPERATORS = re.compile(
    r"core/("
    r"ReplaceComparisonOperator_(Lt_LtE|Lt_GtE|LtE_Lt|LtE_Gt|Gt_GtE|Gt_LtE|GtE_Gt|GtE_Lt|Eq_NotEq|NotEq_Eq"
    r"|Is_IsNot|IsNot_Is|In_NotIn|NotIn_In)"
    r"|ReplaceBinaryOperator_(Add_Sub|Sub_Add|Mul_Div|Div_Mul|FloorDiv_Div|Mod_FloorDiv|Pow_Mul|BitOr_BitAnd"
    r"|BitAnd_BitOr|RShift_LShift|LShift_RShift)"
    r"|ReplaceUnaryOperator_(USub_UAdd|Delete_Not)"
    r"|AddNot|ReplaceTrueWithFalse|ReplaceFalseWithTrue|ReplaceAndWithOr|ReplaceOrWithAnd"
    r"|ReplaceBreakWithContinue|ReplaceContinueWithBreak|NumberReplacer|ZeroIterationForLoop|ExceptionReplacer"
    r"|RemoveDecorator)$"
)


def project_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [name for name in listed.stdout.splitlines() if (ROOT / name).is_file()]


def copy_project(dest: Path) -> None:
    """A copy of the working tree (tracked and new files): cosmic-ray mutates files in place."""
    for name in project_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)


def pytest_command(target: Target) -> str:
    """pytest, stopping at the first failure, without what a mutant's run does not need: the cache, coverage,
    the hypothesis plugin (seconds of imports) unless these tests use it, and the test database's
    migrations (--reuse-db: execute() puts a clean copy of the database in place before each run)."""
    options = "-x -q -p no:cacheprovider -p no:cov --reuse-db"
    if not any("hypothesis" in (ROOT / name).read_text() for name in target.tests if (ROOT / name).exists()):
        options += " -p no:hypothesispytest"
    return f"{sys.executable} -m pytest {options}"


def test_command(target: Target) -> str:
    tests = " ".join(name for name in target.tests if (ROOT / name).exists())
    return f"{pytest_command(target)} {tests}"


def allowed_lines(source: str, functions: tuple[str, ...]) -> set[int] | None:
    """The lines a mutant may start on: inside the named functions, never in a type annotation."""
    tree = ast.parse(source)
    annotations: set[int] = set()
    wanted: set[int] = set()
    for node in ast.walk(tree):
        for annotation in _annotations(node):
            annotations.update(range(annotation.lineno, annotation.end_lineno + 1))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in functions:
            first = node.body[0]
            start = first.end_lineno + 1 if _is_docstring(first) else first.lineno
            wanted.update(range(start, node.end_lineno + 1))
    lines = wanted if functions else set(range(1, source.count("\n") + 2))
    return lines - annotations


def _annotations(node: ast.AST) -> list[ast.AST]:
    found = []
    if isinstance(node, ast.arg) and node.annotation is not None:
        found.append(node.annotation)
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
        found.append(node.returns)
    if isinstance(node, ast.AnnAssign):
        found.append(node.annotation)
    return found


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def prepare(name: str, target: Target, fresh: bool, resume: bool = False) -> tuple[Path, Path, Path]:
    folder = WORK / name
    src, session, config = folder / "src", folder / "session.sqlite", folder / "config.toml"
    if fresh and folder.exists():
        shutil.rmtree(folder)
    if resume and config.exists() and session.exists():
        # Without a new baseline: the files again (new tests; the module as it was, should a mutant have been
        # left in it). New tests are not in the coverage map, so a survivor meets them in its run with all.
        copy_project(src)
        skip_marked(session, src / target.path, target)
        return src, session, config
    # The copy is made again each run, so new tests count; the session keeps the results.
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    copy_project(src)
    baseline = time.monotonic()
    coverage = [f"--cov={src / Path(target.path).parent}", "--cov-context=test", "--cov-report="]
    coverage += [f"--junit-xml={folder / 'durations.xml'}", "-o", "junit_duration_report=total", "--create-db"]
    database = src / "var" / "test.sqlite3"
    run = subprocess.run(
        [*test_command(target).replace(" -p no:cov", "").split(), *coverage],
        cwd=src,
        env={**environment(src), "COVERAGE_FILE": str(folder / "coverage")},
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        raise SystemExit(f"{name}: the tests fail without any mutant:\n{run.stdout[-3000:]}")
    seconds = time.monotonic() - baseline
    # The test database, migrated and empty; a module whose tests use no database (the engine's) has none.
    (folder / "clean.sqlite3").unlink(missing_ok=True)
    if database.exists():
        shutil.copy2(database, folder / "clean.sqlite3")
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{target.path}"\n'
        f"timeout = {max(60.0, 3 * seconds + 30):.0f}\n"
        "excluded-modules = []\n"
        f'test-command = "{test_command(target)}"\n'
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )
    print(f"{name}: baseline {seconds:.0f} s ({' '.join(target.tests)})", flush=True)
    if not session.exists() or not session.stat().st_size:
        subprocess.run(["cosmic-ray", "init", str(config), str(session)], cwd=src, check=True, env=environment(src))
        keep_scoped(session, src / target.path, target)
    skip_marked(session, src / target.path, target)
    return src, session, config


def keep_scoped(session: Path, module: Path, target: Target) -> None:
    """Drop mutants outside the scope: other operators, other functions, type annotations."""
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    lines = allowed_lines(module.read_text(), target.functions)
    with use_db(str(session)) as db:
        for item in db.pending_work_items:
            [mutation] = item.mutations
            if not OPERATORS.match(mutation.operator_name) or mutation.start_pos[0] not in lines:
                db.set_result(item.job_id, WorkResult(output="out of scope", worker_outcome=WorkerOutcome.SKIPPED))


NO_MUTATE = re.compile(r"#.*pragma:.*no mutate")
MARKED = "marked equivalent"


def skip_marked(session: Path, module: Path, target: Target) -> None:
    """Skip the mutants of a line marked `# pragma: no mutate` (an equivalent mutant the README lists), as
    cosmic-ray's cr-filter-pragma does; kept apart from the out-of-scope ones in the summary. A trailing
    comment moves no mutant, so a session made before the mark still fits the module."""
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    source = module.read_text()
    lines, allowed = source.splitlines(), allowed_lines(source, target.functions)
    with use_db(str(session)) as db:
        for item in db.work_items:
            [mutation] = item.mutations
            if not OPERATORS.match(mutation.operator_name) or mutation.start_pos[0] not in allowed:
                continue  # out of scope
            end_line, end_column = mutation.end_pos
            if NO_MUTATE.search(lines[end_line - 1 - (end_column == 0)]):
                db.set_result(item.job_id, WorkResult(output=MARKED, worker_outcome=WorkerOutcome.SKIPPED))


def test_durations(folder: Path) -> dict[str, float]:
    """Seconds each test took in the coverage pass (setup and teardown included), by pytest node id."""
    from xml.etree import ElementTree

    found = {}
    for case in ElementTree.parse(folder / "durations.xml").iter("testcase"):
        module, _, cls = case.get("classname", "").partition(".test_")
        path = module.replace(".", "/") + "/test_" + cls.split(".")[0] + ".py"
        found["::".join([path, *cls.split(".")[1:], case.get("name", "")])] = float(case.get("time", 0))
    return found


def related_lines(source: str, line: int) -> set[int]:
    """For a line run only at import: the lines that use what it defines. A def line (its default values):
    the function's body; a module-level assignment (a constant): the lines that read its names, and the
    bodies of functions taking it as a default."""
    tree = ast.parse(source)
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]

    def body_of_def_at(at: int) -> set[int]:
        return {
            number
            for node in functions
            if node.lineno <= at < node.body[0].lineno
            for number in range(node.body[0].lineno, node.end_lineno + 1)
        }

    found = body_of_def_at(line)
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.lineno <= line <= node.end_lineno:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)}
            for use in ast.walk(tree):
                if isinstance(use, ast.Name) and use.id in names and isinstance(use.ctx, ast.Load):
                    found |= {use.lineno} | body_of_def_at(use.lineno)
    return found


def tests_by_line(folder: Path, module: Path) -> dict[int, set[str]]:
    """The pytest node ids that ran each line of the module in the coverage pass."""
    from coverage import CoverageData

    data = CoverageData(basename=str(folder / "coverage"))
    data.read()
    found: dict[int, set[str]] = {}
    for line, contexts in (data.contexts_by_lineno(str(module)) or {}).items():
        tests = {context.rsplit("|", 1)[0] for context in contexts if "::" in context}
        if tests:
            found[line] = tests
    return found


def execute(
    name: str,
    target: Target,
    src: Path,
    session: Path,
    config: Path,
    jobs: int = 1,
    confirm: bool = True,
    newer_first: bool = False,
) -> None:
    """cosmic-ray's exec, each mutant with the tests that run its lines; `jobs` mutants at a time, each lane in
    its own copy of the project (cosmic-ray mutates the module in place, relative to the current folder)."""
    import multiprocessing
    import tomllib
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from cosmic_ray.work_db import use_db

    timeout = tomllib.loads(config.read_text())["cosmic-ray"]["timeout"]
    covering = tests_by_line(session.parent, src / target.path)
    durations = test_durations(session.parent)
    python = pytest_command(target)
    clean = session.parent / "clean.sqlite3"
    anywhere = set().union(*covering.values())
    source = (src / target.path).read_text()
    # Tests written or changed since the baseline (the coverage map does not know what they run) go first:
    # they are why a survivor is tried again. New ones first, then the others of the changed files, fastest first.
    newer = []
    if newer_first:
        since = (session.parent / "durations.xml").stat().st_mtime
        changed = {name for name in target.tests if (ROOT / name).stat().st_mtime > since}
        tests = collected(target, src)
        newer = sorted(tests - set(durations))
        newer += plan({test for test in tests & set(durations) if test.split("::")[0] in changed}, durations, 0)[0]
    lanes = multiprocessing.get_context("fork").Queue()
    for number in range(jobs):
        lane = src if number == 0 else src.with_name(f"src-{number + 1}")
        if number:
            shutil.rmtree(lane, ignore_errors=True)
            shutil.copytree(src, lane, symlinks=True)
        lanes.put(str(lane))
    with use_db(str(session)) as db:
        pending = sorted(db.pending_work_items, key=lambda item: item.mutations[0].start_pos)
        with ProcessPoolExecutor(
            jobs, mp_context=multiprocessing.get_context("fork"), initializer=_enter_lane, initargs=(lanes,)
        ) as pool:
            futures = {}
            for item in pending:
                [mutation] = item.mutations
                lines = range(mutation.start_pos[0], mutation.end_pos[0] + 1)
                tests = set().union(*(covering.get(line, set()) for line in lines))
                if not tests:  # a line run at import only: the tests that run what it defines, else any
                    related = related_lines(source, mutation.start_pos[0])
                    tests = set().union(*(covering.get(line, set()) for line in related)) or anywhere
                ordered, seconds = plan(tests, durations, timeout)
                ordered = [*newer, *(test for test in ordered if test not in newer)]
                seconds += 30 * len(newer)
                command = f"{python} {' '.join(map(shlex.quote, ordered))}" if tests else None
                run = (item.mutations, command, seconds, test_command(target), timeout, clean, confirm)
                futures[pool.submit(_run_mutant, *run)] = item
            for number, future in enumerate(as_completed(futures), 1):
                db.set_result(futures[future].job_id, future.result())
                if number % 10 == 0 or number == len(pending):
                    print(f"{name}: {number}/{len(pending)} mutants", flush=True)


def collected(target: Target, src: Path) -> set[str]:
    listed = subprocess.run(
        [*test_command(target).split(), "--collect-only"],
        cwd=src,
        env=environment(src),
        capture_output=True,
        text=True,
    )
    return {line.strip() for line in listed.stdout.splitlines() if "::" in line}


def _enter_lane(lanes) -> None:
    lane = Path(lanes.get())
    os.chdir(lane)
    os.environ.update(environment(lane))


def _run_mutant(
    mutations, command: str | None, seconds: float, everything: str, timeout: float, clean: Path, confirm: bool
):
    """Run the covering tests (all of the module's when none is known) against the mutant, in this lane."""
    from cosmic_ray.mutating import mutate_and_test
    from cosmic_ray.work_item import TestOutcome

    def run(command: str, seconds: float):
        # A run killed at its timeout may leave rows behind: each run starts from the clean database.
        database = Path("var", "test.sqlite3")
        for leftover in (database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
            leftover.unlink(missing_ok=True)
        if clean.exists():
            shutil.copy2(clean, database)
        return mutate_and_test(mutations, command, seconds)

    result = run(command or everything, seconds if command else timeout)
    if command and confirm and result.test_outcome == TestOutcome.SURVIVED:
        # Code a process runs once (the models loading) was run by one test only: confirm with all.
        result = run(everything, timeout)
    return result


def plan(tests: set[str], durations: dict[str, float], ceiling: float) -> tuple[list[str], float]:
    """The tests in the order to run them, fastest first (with -x the first failure ends the run), and a
    timeout: three times their time in the baseline and a minute for pytest, Django and Redis to start
    (a loaded machine is slow, and a timeout counts as killed, so it must not be tight)."""
    ordered = sorted(tests, key=lambda test: (durations.get(test, ceiling), test))
    seconds = sum(durations.get(test, ceiling) for test in tests)
    return ordered, min(ceiling, 3 * seconds + 60)


def environment(src: Path) -> dict[str, str]:
    env = dict(os.environ, FACES_DIR=FACES_DIR, SQLITE_TEST_PATH=str(src / "var" / "test.sqlite3"))
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    return env


def forget_survivors(session: Path) -> None:
    """Let the next exec run the last survivors again (after tests were added)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"sqlite:///{session}")
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'"))


def summarize(name: str, target: Target, session: Path) -> dict:
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    counts = {"killed": 0, "survived": 0, "timeout": 0, "incompetent": 0, "pending": 0, "marked": 0}
    survivors = []
    with use_db(str(session)) as db:
        counts["pending"] = len(db.pending_work_items)
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                counts["marked"] += result.output == MARKED
                continue
            if result.worker_outcome != WorkerOutcome.NORMAL or result.test_outcome == TestOutcome.INCOMPETENT:
                counts["incompetent"] += 1
            elif result.test_outcome == TestOutcome.SURVIVED:
                counts["survived"] += 1
                [mutation] = item.mutations
                survivors.append(
                    {
                        "file": target.path,
                        "line": mutation.start_pos[0],
                        "operator": mutation.operator_name.removeprefix("core/"),
                        "diff": _short_diff(result.diff or ""),
                    }
                )
            elif result.output == "timeout":
                counts["timeout"] += 1
            else:
                counts["killed"] += 1
    survivors.sort(key=lambda survivor: survivor["line"])
    return {**counts, "score": _score(counts), "tests": list(target.tests), "survivors": survivors}


def _short_diff(diff: str) -> str:
    """The changed lines only: '-old' and '+new'."""
    changed = [line for line in diff.splitlines() if line[:1] in "-+" and not line.startswith(("---", "+++"))]
    return "\n".join(changed)


def _score(counts: dict) -> float | None:
    tried = counts["killed"] + counts["timeout"] + counts["survived"]
    return round((counts["killed"] + counts["timeout"]) / tried, 3) if tried else None


def write_results(modules: dict[str, dict]) -> dict:
    previous = json.loads(RESULTS.read_text()).get("modules", {}) if RESULTS.exists() else {}
    modules = {**previous, **modules}
    totals = {key: sum(module[key] for module in modules.values()) for key in ("killed", "survived", "timeout")}
    result = {
        **totals,
        "score": _score({**totals}),
        "survivors": [survivor for module in modules.values() for survivor in module["survivors"]],
        "modules": modules,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="append", choices=sorted(TARGETS), help="default: all")
    parser.add_argument("--again", action="store_true", help="run the survivors of the last run again")
    parser.add_argument("--fresh", action="store_true", help="forget earlier sessions")
    parser.add_argument("--report", action="store_true", help="only summarize the sessions there are")
    parser.add_argument(
        "--resume", action="store_true", help="no new baseline: go on with an interrupted run (or --again) as it was"
    )
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at a time (default 1)")
    parser.add_argument(
        "--quick", action="store_true", help="a survivor of its covering tests is not tried with all (may overcount)"
    )
    args = parser.parse_args()
    os.nice(10)  # a shared machine: the web and other work first
    done = {}
    for name in args.module or list(TARGETS):
        if args.report:
            if (WORK / name / "session.sqlite").exists():
                done[name] = summarize(name, TARGETS[name], WORK / name / "session.sqlite")
            continue
        target = TARGETS[name]
        src, session, config = prepare(name, target, args.fresh, args.resume)
        if args.again:
            forget_survivors(session)
        started = time.monotonic()
        execute(name, target, src, session, config, args.jobs, not args.quick, args.again and args.resume)
        done[name] = summarize(name, target, session)
        done[name]["seconds"] = round(time.monotonic() - started)
        module = done[name]
        print(
            f"{name}: score {module['score']}, killed {module['killed']}, timeout {module['timeout']}, "
            f"survived {module['survived']}, incompetent {module['incompetent']}, {module['seconds']} s",
            flush=True,
        )
        write_results(done)
    result = write_results(done)
    print(f"\nscore {result['score']}: killed {result['killed']}, timeout {result['timeout']}, "
          f"survived {result['survived']}")  # fmt: skip
    for survivor in result["survivors"]:
        print(f"\n{survivor['file']}:{survivor['line']} ({survivor['operator']})\n{survivor['diff']}")


if __name__ == "__main__":
    main()
