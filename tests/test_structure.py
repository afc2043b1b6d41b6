"""The house rules, checked on every run: the floors (import-linter), module size, ruff, mypy.

The import contracts live in pyproject.toml. Each is also shown failing: a copy of the tree
with one forbidden import added must break exactly that contract, so a contract that checks
nothing (a typo in a module name, a wildcard that matches no module) cannot pass unnoticed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "core", "chat", "checkout", "streaming", "server")
BIN = Path(sys.executable).parent
MAX_MODULE_LINES = 400


def _run(command: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def test_the_import_contracts_hold() -> None:
    result = _run([str(BIN / "lint-imports")], ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract", "shown"),
    [
        # the domain siblings are independent
        (
            "streaming/streams.py",
            "import checkout.records",
            "floors",
            "streaming.streams -> checkout.records",
        ),
        # a lower floor imports a higher one
        ("chat/hub.py", "import streaming.records", "floors", "chat.hub -> streaming.records"),
        ("core/identity.py", "import server.app", "floors", "core.identity -> server.app"),
        # domain code stays off the transport
        ("checkout/sales.py", "import aiohttp", "edge", "checkout.sales -> aiohttp"),
        # core.db.connect imports the driver already
        ("core/db/driver.py", "import core.db.connect", "acyclic", ".driver -> .connect"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, bad_import: str, contract: str, shown: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{bad_import}  # added by the test\n")

    result = _run([str(BIN / "lint-imports"), "--contract", contract], tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout and shown in result.stdout, result.stdout


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_ruff_finds_nothing() -> None:
    for command in (["check", "--no-cache", "."], ["format", "--no-cache", "--check", "."]):
        result = _run([str(BIN / "ruff"), *command], ROOT)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(600)  # a cold run takes ~12 s here; more on a loaded machine
def test_mypy_strict_finds_nothing() -> None:
    # The configuration (strict, every package and tests/) is pyproject.toml's [tool.mypy].
    result = _run([sys.executable, "-m", "mypy"], ROOT, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
