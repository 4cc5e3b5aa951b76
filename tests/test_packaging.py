"""The provider proven as a user installs it: its wheel, in a fresh virtual environment.

One module fixture builds the wheel and the sdist (``python -m build``) from a copy of the
repository's files (tracked, and untracked ones git does not ignore: a clean checkout plus work
in progress, without the ``build/`` and ``*.egg-info`` leftovers that setuptools would otherwise
carry into the wheel), creates a fresh venv and installs only that wheel with its declared
dependencies, constrained to ``requirements/lock.txt``: nothing from the test extra, not the
reference service. The fresh venv has no pip of its own: the test venv's pip installs into it
(``pip --python``), and without byte-compiling (the step that would take half the install time).
Every check runs the fresh venv's ``airflow`` or ``python`` from a temporary folder, with a
private ``AIRFLOW_HOME`` and without the test session's ``PYTHONPATH`` or Airflow settings, so
nothing resolves to the source tree. Expectations come from ``pyproject.toml`` and the example
files, not from the installed code.
"""

from __future__ import annotations

import ast
import configparser
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from importlib import metadata
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
SERVICE_PROJECT = tomllib.loads((REPO / "reference-service" / "pyproject.toml").read_text())["project"]
PACKAGE = "airflow_jobwait"
LOCK = REPO / "requirements" / "lock.txt"
EXAMPLES = REPO / "dags_examples"
# Paths that are tests, demos or the reference service: none belongs in the provider's wheel.
FORBIDDEN_DIRS = {"tests", "reference-service", "jobwait_reference_service", "benchmarks", "dags_examples"}
FORBIDDEN_SERVER_DEPS = {"fastapi", "uvicorn"}
RESULT = "RESULT "  # prefix of the one line a probe script prints its JSON on (Airflow may log around it)

IMPORT_ALL = """
import importlib, json, sys, traceback
failed = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except BaseException as exc:
        failed[name] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
package = sys.modules.get("airflow_jobwait")
print("RESULT " + json.dumps({"failed": failed, "package_file": getattr(package, "__file__", None)}))
"""

PARSE_EXAMPLES = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
import airflow_jobwait
print("RESULT " + json.dumps({
    "dags": {dag_id: dag.fileloc for dag_id, dag in bag.dags.items()},
    "import_errors": bag.import_errors,
    "package_file": airflow_jobwait.__file__,
}))
"""

LOAD_ENTRY_POINT = """
import importlib, json, sys
module, _, attr = sys.argv[1].partition(":")
info = getattr(importlib.import_module(module), attr)()
print("RESULT " + json.dumps({"package-name": info.get("package-name")}))
"""

INVENTORY = """
import json
from importlib import metadata
print("RESULT " + json.dumps({d.metadata["Name"]: d.version for d in metadata.distributions()}))
"""


@dataclass(frozen=True)
class Installed:
    wheel: Path
    sdist: Path
    venv: Path
    env: dict[str, str]
    workdir: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        return self.venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"

    def run(self, *args: str | Path, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
        """Run a command of the fresh venv from the temporary folder; fail with its output on an error."""
        done = subprocess.run(
            [str(a) for a in args],
            cwd=self.workdir,
            env=self.env | env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, (
            f"{' '.join(map(str, args))} exited {done.returncode}\n"
            f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
        )
        return done

    def airflow(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.venv / "bin" / "airflow", *args)

    def probe(self, script: str, *args: str, **env: str) -> dict:
        """Run ``script`` with the fresh venv's python; return the JSON it printed after ``RESULT``."""
        done = self.run(self.python, "-c", script, *args, **env)
        lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
        assert lines, f"no result line\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
        return json.loads(lines[-1][len(RESULT) :])


def _clean_env() -> dict[str, str]:
    """The environment without the test session's Python path, venv and Airflow settings (pip's stay)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}


def _copy_sources(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = REPO / rel
        if src.is_file():  # a tracked file deleted in the work tree is listed too
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _check(cmd: list[str | Path], log: Path, env: dict[str, str], cwd: Path) -> None:
    with log.open("w") as out:
        done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{log.read_text()[-4000:]}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("packaging")
    src, dist, venv, home, work = (tmp / name for name in ("src", "dist", "venv", "airflow-home", "work"))
    for folder in (src, home, work):
        folder.mkdir()
    _copy_sources(src)
    env = _clean_env()

    _check([sys.executable, "-m", "build", "--wheel", "--sdist", "--outdir", dist, src], tmp / "build.log", env, work)
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")

    _check([sys.executable, "-m", "venv", "--without-pip", venv], tmp / "venv.log", env, work)
    python = venv / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", python, "install", "--no-compile", "-c", LOCK, wheel]
    _check(install, tmp / "install.log", env, work)

    env |= {
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONNOUSERSITE": "1",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
    }
    with zipfile.ZipFile(wheel) as zf:
        files = len(zf.namelist())
    sizes = f"{wheel.stat().st_size} bytes, {files} files; sdist {sdist.stat().st_size} bytes"
    print(f"\n[packaging] {wheel.name}: {sizes}")
    return Installed(wheel=wheel, sdist=sdist, venv=venv, env=env, workdir=work)


def _wheel_names(installed: Installed) -> list[str]:
    with zipfile.ZipFile(installed.wheel) as zf:
        return zf.namelist()


def _dist_info(installed: Installed) -> str:
    return f"{PACKAGE}-{PROJECT['version']}.dist-info"


def _read_from_wheel(installed: Installed, name: str) -> str:
    with zipfile.ZipFile(installed.wheel) as zf:
        return zf.read(name).decode()


def _source_package_files() -> set[str]:
    return {p.relative_to(REPO).as_posix() for p in (REPO / PACKAGE).rglob("*") if p.is_file() and p.suffix != ".pyc"}


def _module_name(path: str) -> str:
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


# 1. The providers manager finds the installed distribution at the version in pyproject.toml.
def test_providers_list_shows_the_provider_at_the_pyproject_version(installed: Installed) -> None:
    done = installed.airflow("providers", "list", "--output", "json")
    providers = {p["package_name"]: p for p in json.loads(done.stdout)}
    assert PROJECT["name"] in providers, f"{PROJECT['name']} not among {sorted(providers)}"
    assert providers[PROJECT["name"]]["version"] == PROJECT["version"]
    # The providers page's link: Airflow reads it from the Project-URL "Documentation" (else it
    # makes one on airflow.apache.org that only Apache's providers have).
    done = installed.run(
        installed.python,
        "-c",
        "from airflow.providers_manager import ProvidersManager as P;"
        f"print('RESULT', P().providers[{PROJECT['name']!r}].data['documentation-url'])",
    )
    assert f"RESULT {PROJECT['urls']['Documentation']}" in done.stdout.splitlines()


# 2. Every connection type the provider declares is registered, with its hook class.
def test_providers_hooks_lists_every_declared_connection_type(installed: Installed) -> None:
    # The source's declaration is the contract. Airflow first: provider_info imported before it is a
    # circular import (see test_provider_entry_point_loads_first_in_a_fresh_interpreter).
    import airflow  # noqa: F401

    from airflow_jobwait.provider_info import get_provider_info

    declared = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}
    assert set(declared) == {"modzy", "tensorbay", "evo", "chime_results"}
    done = installed.airflow("providers", "hooks", "--output", "json")
    registered = {h["connection_type"]: h for h in json.loads(done.stdout)}
    missing = sorted(set(declared) - set(registered))
    assert not missing, f"connection types not registered: {missing}"
    for conn_type, decl in declared.items():
        hook = registered[conn_type]
        assert hook["package_name"] == PROJECT["name"], hook
        assert hook["class"] == decl["hook-class-name"], hook
        assert hook["hook_name"] == decl["hook-name"], hook


# 3. Every module the wheel ships imports in the fresh venv, from the installed copy.
def test_every_wheel_module_imports_in_the_fresh_venv(installed: Installed) -> None:
    modules = sorted(_module_name(n) for n in _wheel_names(installed) if n.endswith(".py"))
    assert PACKAGE in modules
    result = installed.probe(IMPORT_ALL, json.dumps(modules))
    assert result["failed"] == {}, "modules failing to import:\n" + "\n".join(
        f"  {name}: {error}" for name, error in result["failed"].items()
    )
    assert Path(result["package_file"]).is_relative_to(installed.site_packages), result["package_file"]


def test_provider_entry_point_loads_first_in_a_fresh_interpreter(installed: Installed) -> None:
    """The entry point as the first import of a process, the way a tool that reads it by name loads it."""
    text = _read_from_wheel(installed, f"{_dist_info(installed)}/entry_points.txt")
    entry_points = configparser.ConfigParser(delimiters=("=",))
    entry_points.read_string(text)
    result = installed.probe(LOAD_ENTRY_POINT, entry_points["apache_airflow_provider"]["provider_info"])
    assert result["package-name"] == PROJECT["name"]


def _example_dag_ids(path: Path) -> set[str]:
    """The dag ids a file declares: ``DAG(dag_id=...)`` / ``DAG("...")`` and ``@dag`` functions."""
    ids: set[str] = set()

    def named(func: ast.expr, name: str) -> bool:
        if isinstance(func, ast.Attribute):
            return func.attr == name
        return isinstance(func, ast.Name) and func.id == name

    def dag_id(call: ast.Call) -> str | None:
        for kw in call.keywords:
            if kw.arg == "dag_id" and isinstance(kw.value, ast.Constant):
                return kw.value.value
        if call.args and isinstance(call.args[0], ast.Constant):
            return call.args[0].value
        return None

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and named(node.func, "DAG") and (found := dag_id(node)):
            ids.add(found)
        elif isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                if named(deco, "dag"):
                    ids.add(node.name)
                elif isinstance(deco, ast.Call) and named(deco.func, "dag"):
                    ids.add(dag_id(deco) or node.name)
    return ids


# 4. Every example DAG parses with the installed provider (a DagBag needs no metadata DB).
def test_every_example_dag_parses_in_the_fresh_venv(installed: Installed) -> None:
    files = sorted(EXAMPLES.glob("*.py"))
    expected = {f.name: _example_dag_ids(f) for f in files}
    assert files and all(expected.values()), f"an example file with no dag id found: {expected}"
    # No bytecode written: the examples are the repository's files.
    result = installed.probe(PARSE_EXAMPLES, str(EXAMPLES), PYTHONDONTWRITEBYTECODE="1")
    assert result["import_errors"] == {}, "example import errors:\n" + "\n".join(
        f"{path}:\n{error}" for path, error in result["import_errors"].items()
    )
    dags = result["dags"]
    assert len(dags) >= len(files)
    for name, ids in expected.items():
        for dag_id in ids:
            assert dag_id in dags, f"{dag_id} ({name}) not parsed; parsed: {sorted(dags)}"
            assert Path(dags[dag_id]).name == name
    assert Path(result["package_file"]).is_relative_to(installed.site_packages), result["package_file"]


def _third_party_imports(installed: Installed) -> dict[str, set[str]]:
    """Absolute imports of the wheel's modules outside the stdlib and the package: name -> importing files."""
    found: dict[str, set[str]] = {}
    for name in _wheel_names(installed):
        if not name.endswith(".py"):
            continue
        for node in ast.walk(ast.parse(_read_from_wheel(installed, name))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            else:
                continue
            for target in targets:
                top = target.partition(".")[0]
                if top not in sys.stdlib_module_names and top != PACKAGE:
                    found.setdefault(target, set()).add(name)
    return found


def _distributions_for(module: str, top_level: dict[str, list[str]]) -> set[str]:
    """The distributions that may provide ``module`` (canonical names)."""
    parts = module.split(".")
    if parts[:2] == ["airflow", "providers"]:
        # Provider distributions follow Airflow's naming: airflow.providers.a.b -> apache-airflow-providers-a-b.
        installed_providers = {
            canonicalize_name(d.metadata["Name"])
            for d in metadata.distributions()
            if canonicalize_name(d.metadata["Name"]).startswith("apache-airflow-providers-")
        }
        packages = {
            p: "airflow.providers." + p.removeprefix("apache-airflow-providers-").replace("-", ".")
            for p in installed_providers
        }
        return {p for p, package in packages.items() if module == package or module.startswith(package + ".")}
    if parts[0] == "airflow":
        return {"apache-airflow"}
    return {canonicalize_name(d) for d in top_level.get(parts[0], [])}


# 5. The wheel holds the provider and its metadata, nothing else; the sdist holds the sources.
def test_wheel_holds_only_the_provider_with_complete_metadata(installed: Installed, record_property) -> None:
    names = _wheel_names(installed)
    dist_info = _dist_info(installed)
    size = installed.wheel.stat().st_size
    record_property("wheel_bytes", size)
    record_property("wheel_files", len(names))
    print(f"\n[packaging] wheel {size} bytes, {len(names)} files")

    outside = [n for n in names if n.split("/")[0] not in (PACKAGE, dist_info)]
    assert not outside, f"files outside {PACKAGE}/ and {dist_info}/: {outside}"
    forbidden = [
        n
        for n in names
        if FORBIDDEN_DIRS & set(n.split("/")[:-1])
        or PurePosixPath(n).name in ("demo.py", "conftest.py")
        or (PurePosixPath(n).name.startswith("test_") and n.endswith(".py"))
    ]
    assert not forbidden, f"test, demo or server files in the wheel: {forbidden}"
    assert f"{PACKAGE}/py.typed" in names
    missing = sorted(_source_package_files() - set(names))
    assert not missing, f"source files missing from the wheel: {missing}"

    meta = HeaderParser().parsestr(_read_from_wheel(installed, f"{dist_info}/METADATA"))
    assert meta["Name"] == PROJECT["name"] and meta["Version"] == PROJECT["version"]
    assert meta["License-Expression"] == "Apache-2.0" or meta["License"] == "Apache-2.0", dict(meta)
    license_files = meta.get_all("License-File") or []
    assert "LICENSE" in license_files
    assert any(n.startswith(f"{dist_info}/") and PurePosixPath(n).name == "LICENSE" for n in names), names

    requirements = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
    server = sorted(str(r) for r in requirements if canonicalize_name(r.name) in FORBIDDEN_SERVER_DEPS)
    assert not server, f"Requires-Dist on the reference service's server: {server}"
    runtime = {canonicalize_name(r.name) for r in requirements if not (r.marker and "extra" in str(r.marker))}
    top_level = metadata.packages_distributions()
    undeclared = {}
    for module, users in sorted(_third_party_imports(installed).items()):
        candidates = _distributions_for(module, top_level)
        if not candidates & runtime:
            undeclared[module] = (sorted(candidates) or "no installed distribution", sorted(users))
    assert not undeclared, f"imports without a Requires-Dist (module: candidates, files): {undeclared}"


def test_sdist_holds_the_provider_sources_and_license(installed: Installed) -> None:
    with tarfile.open(installed.sdist) as tf:
        names = set(tf.getnames())
    root = f"{PACKAGE}-{PROJECT['version']}"
    expected = {f"{root}/{rel}" for rel in _source_package_files()} | {f"{root}/LICENSE", f"{root}/pyproject.toml"}
    missing = sorted(expected - names)
    assert not missing, f"missing from the sdist: {missing}"


# 6. The provider entry point is there; the reference service's console script is not.
def test_entry_points_register_the_provider_and_no_server(installed: Installed) -> None:
    text = _read_from_wheel(installed, f"{_dist_info(installed)}/entry_points.txt")
    entry_points = configparser.ConfigParser(delimiters=("=",))
    entry_points.optionxform = str  # type: ignore[assignment,method-assign]
    entry_points.read_string(text)
    assert dict(entry_points["apache_airflow_provider"]) == PROJECT["entry-points"]["apache_airflow_provider"]
    assert "jobwait-server" not in text
    console = dict(entry_points["console_scripts"]) if entry_points.has_section("console_scripts") else {}
    assert "jobwait-server" not in console


# The fresh venv holds the lock's versions, and nothing from the test extra or the reference service.
def test_fresh_venv_holds_only_locked_runtime_distributions(installed: Installed) -> None:
    found = {canonicalize_name(k): v for k, v in installed.probe(INVENTORY).items()}
    assert found.pop(canonicalize_name(PROJECT["name"])) == PROJECT["version"]
    lock = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            lock[canonicalize_name(name)] = version.strip()
    off_lock = {name: (version, lock.get(name)) for name, version in found.items() if lock.get(name) != version}
    assert not off_lock, f"installed versions that differ from the lock (installed, locked): {off_lock}"
    test_only = {canonicalize_name(Requirement(r).name) for r in PROJECT["optional-dependencies"]["test"]}
    test_only.add(canonicalize_name(SERVICE_PROJECT["name"]))
    assert not sorted(test_only & set(found)), f"test-only distributions installed: {sorted(test_only & set(found))}"
