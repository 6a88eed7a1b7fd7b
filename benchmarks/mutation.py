"""Mutation testing, one module at a time, with only the tests that concern it.

    python benchmarks/mutation.py simulate            # one module (names in MODULES)
    python benchmarks/mutation.py predict --sample 30 --out results.jsonl --resume
    python benchmarks/mutation.py predict --sites 12,40 # rerun two mutants (numbers as listed)
    nice -n 19 python benchmarks/mutation.py --all     # every module; hours on 2 cores
    python benchmarks/mutation.py --list predict      # number every mutant, run nothing
    python benchmarks/mutation.py predict --report --out results.jsonl  # scores so far

Why our own runner and not mutmut: mutmut 3 copies the whole project into ``mutants/``,
rewrites every function of every module into a trampoline, and selects tests globally
(``pytest_add_cli_args_test_selection``), not per module; on a shared 2-core machine one
run over the package does not fit a background job. This runner makes one mutant at a
time, of one module, and runs only that module's tests (``MODULES``) with ``-x``, so a
killed mutant usually costs one failing test.

Mutants are made on the syntax tree, one site at a time (the module is written back with
``ast.unparse``, comments and docstrings aside the code is the same):

* arithmetic ``+ - * / // %`` swapped (``+``<->``-``, ``*``<->``/``, ``//``->``/``, ``%``->``*``);
* comparisons ``< <= > >= == !=`` to their neighbour (``<``->``<=``, ``==``->``!=``, ...);
* ``and``<->``or``; ``not x`` -> ``x``;
* numeric constants ``c`` -> ``c + 1`` (ints) or ``c * 2`` / ``1.0`` for ``0.0`` (floats);
  ``True``<->``False``;
* ``return x`` -> ``return None`` in functions that return a value.

The module is mutated in a scratch copy of the repository (``--work``, default a temporary
folder); tests run there with ``PYTHONPATH`` pointing at the copy, so the working tree is
never touched. A mutant is *killed* when the tests fail or run past ``--timeout`` (default
10 x the unmutated run, at least 60 s), *survived* when they pass. Score = killed / mutants
run. Survivors are listed with their line and change; judge each: a test that kills it, or
the reason it is equivalent (in ``docs/reliability.md``).

Mutants are numbered 0 .. T-1 in syntax-tree order (``--list`` prints them). ``--sample N``
runs N of them spread evenly over the module (numbers ``floor((2k + 1) T / 2N)``, the same on
every run), in an order that covers the module evenly at every step (a run stopped early is
still an even sample); ``--limit N`` the first N; ``--sites`` the ones named. With ``--out`` every mutant's
result is appended as one JSON line as soon as it is known (``"kind": "mutant"``, with the
module's sha256, the tests run and the sha256 of their files, so rows of other code or
tests are never mixed in) and a summary line
per module at the end (``"kind": "module"``); ``--resume`` skips the mutants whose result the
file already holds for the same code, so a stopped run continues where it was.
"""
from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# module -> (file, pytest arguments: the tests that concern it, fast ones only)
MODULES: dict[str, tuple[str, list[str]]] = {
    "simulate": ("lfpsurrogate/simulate.py",
                 ["tests/test_simulate.py", "-k", "independent or threshold or bin_start or refused or first_500 or lfpy_s "
                  "or divide"]),
    "probes": ("lfpsurrogate/probes.py", ["tests/test_probes.py", "-k", "not meautility_builtin"]),
    "inputs": ("lfpsurrogate/inputs.py", ["tests/test_inputs.py"]),
    "geometry": ("lfpsurrogate/geometry.py", ["tests/test_geometry.py"]),
    "forward": ("lfpsurrogate/forward.py", ["tests/test_forward.py", "-k",
                                            "not no_neuron_import and not l5"]),
    "predict": ("lfpsurrogate/predict.py", ["tests/test_predict.py", "-k",
                                            "not neuron_cannot_be_imported"]),
    # the NEURON-free tests (the generator's kill/resume tests take minutes per run)
    "store": ("lfpsurrogate/data/store.py",
              ["tests/test_store.py", "tests/test_dataset.py::test_sample_plan_seeds_are_disjoint_and_stable"]),
    # the tests that need no simulated store (building one runs NEURON in every test run)
    "evaluate": ("lfpsurrogate/evaluate.py",
                 ["tests/test_evaluate.py", "-k", "rmse or auc or onsets or tolerance or one_to_one "
                  "or regions or streaming or radial_stick or calibration or by_hand or burn_in_and "
                  "or pools_the_samples or hand_written_store"]),
}

_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
          ast.FloorDiv: ast.Div, ast.Mod: ast.Mult}
_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
        ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn,
        ast.NotIn: ast.In}


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _sites(tree: ast.AST) -> list[tuple[int, str]]:
    """(index in ast.walk order, description) of every mutable site."""
    skip = _docstring_nodes(tree)
    out = []
    for i, node in enumerate(ast.walk(tree)):
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOP:
            out.append((i, f"{type(node.op).__name__} -> {_BINOP[type(node.op)].__name__}"))
        elif isinstance(node, ast.Compare) and type(node.ops[0]) in _CMP:
            out.append((i, f"{type(node.ops[0]).__name__} -> {_CMP[type(node.ops[0])].__name__}"))
        elif isinstance(node, ast.BoolOp):
            out.append((i, "and <-> or"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            out.append((i, "not x -> x"))
        elif isinstance(node, ast.Constant) and id(node) not in skip:
            if isinstance(node.value, bool):
                out.append((i, f"{node.value} -> {not node.value}"))
            elif isinstance(node.value, (int, float)):
                out.append((i, f"{node.value!r} -> {_new_number(node.value)!r}"))
        elif isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            out.append((i, "return x -> return None"))
    return out


def _new_number(v):
    if isinstance(v, int):
        return v + 1
    return 1.0 if v == 0.0 else v * 2


class _Unwrap(ast.NodeTransformer):
    """Replace one node (a ``not x``) by its operand."""

    def __init__(self, target: ast.AST) -> None:
        self.target = target

    def visit(self, node):
        if node is self.target:
            return node.operand
        return self.generic_visit(node)


def _mutate(tree: ast.AST, index: int) -> ast.AST:
    tree = copy.deepcopy(tree)
    node = list(ast.walk(tree))[index]
    if isinstance(node, ast.BinOp):
        node.op = _BINOP[type(node.op)]()
    elif isinstance(node, ast.Compare):
        node.ops[0] = _CMP[type(node.ops[0])]()
    elif isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif isinstance(node, ast.UnaryOp):
        tree = _Unwrap(node).visit(tree)  # "not x" -> "x"
    elif isinstance(node, ast.Constant):
        node.value = (not node.value) if isinstance(node.value, bool) else _new_number(node.value)
    elif isinstance(node, ast.Return):
        node.value = None
    return ast.fix_missing_locations(tree)


def _run_tests(work: Path, args: list[str], timeout: float) -> tuple[str, float]:
    env = dict(os.environ, PYTHONPATH=str(work), MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    t0 = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                               *args], cwd=work, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0
    return ("passed" if proc.returncode == 0 else "failed"), time.monotonic() - t0


def pick(total: int, limit: int | None = None, sample: int | None = None,
         sites: list[int] | None = None) -> list[int]:
    """Mutant numbers to run, out of ``total``: named ones, an even spread, or the first ones."""
    if sites is not None:
        bad = [k for k in sites if not 0 <= k < total]
        if bad:
            raise SystemExit(f"mutant numbers {bad} are outside 0..{total - 1}")
        return sorted(set(sites))
    if sample is not None and sample < total:
        return sorted({(2 * k + 1) * total // (2 * sample) for k in range(sample)})
    return list(range(total if limit is None else min(limit, total)))


def spread_order(n: int) -> list[int]:
    """0..n-1 in bit-reversed (van der Corput) order, so that a run stopped early has still
    covered the whole module evenly: 0, n/2, n/4, 3n/4, ..."""
    bits = max(1, (n - 1).bit_length())
    keys = {i: int(format(i, f"0{bits}b")[::-1], 2) for i in range(n)}
    return sorted(range(n), key=keys.__getitem__)


def _tests_digest(work: Path, args: list[str]) -> str:
    """sha256 over the test files named in the pytest arguments (so a resume never reuses a
    result of other test code under the same arguments)."""
    h = hashlib.sha256()
    for a in args:
        f = work / a.split("::")[0]
        if not a.startswith("-") and f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()


def _done_rows(out: Path | None, name: str, digest: str, args: list[str],
               tests_digest: str | None = None) -> dict[int, dict]:
    """Mutant results already in ``out`` for this module at this version of its code."""
    rows: dict[int, dict] = {}
    if out is None or not out.exists():
        return rows
    for text in out.read_text().splitlines():
        try:
            row = json.loads(text)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if (isinstance(row, dict) and row.get("kind") == "mutant" and row.get("module") == name
                and row.get("sha256") == digest and row.get("tests", args) == args
                and row.get("tests_sha256", tests_digest) == tests_digest):
            rows[row["site"]] = row
    return rows


def _append(out: Path | None, row: dict) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as fh:
            fh.write(json.dumps(row) + "\n")


def run_module(name: str, work: Path, limit: int | None, timeout: float | None,
               log=print, sample: int | None = None, sites: list[int] | None = None,
               out: Path | None = None, resume: bool = False, baseline: bool = True,
               tests: list[str] | None = None) -> dict:
    rel, args = MODULES[name]
    args = tests or args
    target = work / rel
    original = target.read_text()
    digest = hashlib.sha256(original.encode()).hexdigest()
    tree = ast.parse(original)
    all_sites = _sites(tree)
    chosen = pick(len(all_sites), limit, sample, sites)
    tests_digest = _tests_digest(work, args)
    done = _done_rows(out, name, digest, args, tests_digest) if resume else {}
    todo = [chosen[i] for i in spread_order(len(chosen)) if chosen[i] not in done]
    nodes = list(ast.walk(tree))
    rows = [done[k] for k in chosen if k in done]
    if todo and baseline:
        status, base_s = _run_tests(work, args, timeout=3600)
        if status != "passed":
            raise SystemExit(f"{name}: the tests fail on the unmutated code; fix them first.")
        per = timeout or max(60.0, 10 * base_s)
    elif todo:
        if timeout is None:
            raise SystemExit("without the unmutated run, give --timeout")
        base_s, per = float("nan"), timeout
    if todo:
        log(f"{name}: {len(chosen)} of {len(all_sites)} mutants ({len(rows)} already done), "
            f"unmutated tests {base_s:.0f} s, timeout {per:.0f} s")
    try:
        for n, k in enumerate(todo):
            index, what = all_sites[k]
            target.write_text(ast.unparse(_mutate(tree, index)))
            result, secs = _run_tests(work, args, per)
            line = getattr(nodes[index], "lineno", 0)
            row = {"kind": "mutant", "module": name, "sha256": digest, "site": k, "line": line,
                   "mutation": what, "result": result, "seconds": round(secs, 1),
                   "tests": args, "tests_sha256": tests_digest}
            rows.append(row)
            _append(out, row)
            log(f"  [{n + 1}/{len(todo)}] #{k} line {line}: {what}: "
                f"{'killed' if result != 'passed' else 'SURVIVED'} ({result}, {secs:.0f} s)")
    finally:
        target.write_text(original)
    rows.sort(key=lambda r: r["site"])
    n_killed = sum(r["result"] != "passed" for r in rows)
    score = 100.0 * n_killed / max(len(rows), 1)
    of = "" if len(rows) == len(all_sites) else f" sampled mutants of {len(all_sites)}"
    log(f"mutation score: {name} {score:.0f} % ({n_killed} of {len(rows)} killed{of})")
    for r in rows:
        if r["result"] == "passed":
            log(f"  survivor #{r['site']} line {r['line']}: {r['mutation']}")
    res = {"kind": "module", "module": name, "file": rel, "tests": args, "sha256": digest,
           "total": len(all_sites), "mutants": len(rows), "killed": n_killed,
           "score_percent": round(score, 1),
           "survivors": [r for r in rows if r["result"] == "passed"], "all": rows}
    _append(out, res)
    return res


def list_mutants(name: str) -> None:
    rel, _ = MODULES[name]
    tree = ast.parse((ROOT / rel).read_text())
    nodes = list(ast.walk(tree))
    for k, (index, what) in enumerate(_sites(tree)):
        print(f"{name} #{k} line {getattr(nodes[index], 'lineno', 0)}: {what}")


def _read_rows(out: Path, names: list[str], log=print) -> list[dict]:
    if not out.exists():
        log(f"{out}: no such file")
        return []
    rows = []
    for text in out.read_text().splitlines():
        try:
            row = json.loads(text)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if isinstance(row, dict) and row.get("kind") == "mutant" and row.get("module") in names:
            rows.append(row)
    return rows


def report(out: Path, later: list[Path], names: list[str], log=print) -> None:
    """Scores for the current code of each module: the sampled run recorded in ``out`` (the
    module's own test selection) and, when runs recorded in ``later`` (``--tests``, e.g. new
    tests run on that run's survivors) killed some of its survivors, the score counting
    those as killed."""
    main_rows = _read_rows(out, names, log)
    later_rows = [r for f in later for r in _read_rows(f, names, log)]
    for name in names:
        rel, default = MODULES[name]
        digest = hashlib.sha256((ROOT / rel).read_bytes()).hexdigest()
        own = {r["site"]: r for r in main_rows if r["module"] == name and r["sha256"] == digest}
        if not own:
            log(f"{name}: no run of the current {rel} in {out}")
            continue
        total = len(_sites(ast.parse((ROOT / rel).read_text())))
        killed_later = {r["site"]: r.get("tests") for r in later_rows
                        if r["module"] == name and r["sha256"] == digest and r["result"] != "passed"}
        k0 = sum(r["result"] != "passed" for r in own.values())
        used = sorted({" ".join(r.get("tests") or default) for r in own.values()})
        log(f"mutation score: {name} {100 * k0 / len(own):.0f} % ({k0} of {len(own)} sampled "
            f"mutants of {total}; tests: {' | '.join(used)})")
        now = [k for k, r in own.items() if r["result"] == "passed" and k in killed_later]
        if now:
            k1 = k0 + len(now)
            log(f"mutation score: {name} {100 * k1 / len(own):.0f} % ({k1} of {len(own)} sampled "
                f"mutants of {total}; counting {len(now)} survivors killed by later runs)")
        for k in sorted(own):
            r = own[k]
            if r["result"] == "passed":
                by = f"killed by {killed_later[k]}" if k in killed_later else "SURVIVES"
                log(f"  #{k} line {r['line']}: {r['mutation']}: {by}")
            elif r["result"] == "timeout":
                log(f"  #{k} line {r['line']}: {r['mutation']}: timeout (counted as killed)")


def _stop(signum, frame):  # SIGTERM (timeout, kill): end the test run, restore the module
    raise SystemExit(f"stopped by signal {signum}")


def main(argv=None) -> int:
    import signal

    signal.signal(signal.SIGTERM, _stop)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", help=f"any of {', '.join(MODULES)}")
    ap.add_argument("--all", action="store_true", help="every module in MODULES")
    ap.add_argument("--limit", type=int, help="at most this many mutants per module (the first ones)")
    ap.add_argument("--sample", type=int, help="this many mutants per module, spread evenly")
    ap.add_argument("--sites", help="comma-separated mutant numbers (see --list) to run")
    ap.add_argument("--list", action="store_true", help="number the mutants, run nothing")
    ap.add_argument("--report", action="store_true",
                    help="print the scores and survivors recorded in --out, run nothing")
    ap.add_argument("--also", type=Path, nargs="*", default=[],
                    help="with --report: JSON-lines files of later runs (e.g. new tests on "
                    "the survivors, --sites with --tests) whose kills count")
    ap.add_argument("--tests", help="pytest arguments to use instead of the module's selection "
                    "(quoted, e.g. to confirm with --sites that new tests kill survivors)")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the unmutated run (it must pass: check it once); needs --timeout")
    ap.add_argument("--resume", action="store_true",
                    help="skip mutants whose result --out already holds for the same code")
    ap.add_argument("--timeout", type=float, help="seconds per mutant (default 10 x unmutated, >= 60)")
    ap.add_argument("--work", type=Path, help="scratch copy of the repository (default: temporary)")
    ap.add_argument("--out", type=Path, help="append the results (JSON lines) to this file, "
                    "one line per mutant as it finishes and one per module")
    a = ap.parse_args(argv)
    names = list(MODULES) if a.all else a.modules
    if not names or set(names) - set(MODULES):
        ap.error(f"name modules among {', '.join(MODULES)}, or pass --all")
    if a.report:
        if not a.out:
            ap.error("--report needs --out")
        report(a.out, a.also, names)
        return 0
    if a.list:
        for name in names:
            list_mutants(name)
        return 0
    if a.resume and not a.out:
        ap.error("--resume needs --out")
    sites = [int(x) for x in a.sites.split(",") if x.strip()] if a.sites else None
    work = a.work or Path(tempfile.mkdtemp(prefix="lfps-mutation-"))
    # (re)copy every time, so a reused --work runs the current code and tests
    shutil.copytree(ROOT, work, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".venv", ".git", "*.pyc", "__pycache__",
                                                  "mutants", ".pytest_cache"))
    env = dict(os.environ, PYTHONPATH=str(work))
    where = subprocess.run([sys.executable, "-c", "import lfpsurrogate; print(lfpsurrogate.__file__)"],
                           env=env, cwd=work, capture_output=True, text=True).stdout.strip()
    if not where.startswith(str(work)):
        raise SystemExit(f"the tests would import lfpsurrogate from {where!r}, not from the "
                         f"mutated copy in {work}")
    for name in names:
        run_module(name, work, a.limit, a.timeout, sample=a.sample, sites=sites, out=a.out,
                   resume=a.resume, baseline=not a.no_baseline,
                   tests=shlex.split(a.tests) if a.tests else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
