"""The layers, read from every module's imports: nothing reaches up (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "vlm"

# What each layer may import from vlm; a layer always may import itself. Base modules first.
BASE = ("vlm.domain", "vlm.dburl", "vlm.sso_config", "vlm.config", "vlm.secret_box")
ALLOWED: dict[str, tuple[str, ...]] = {
    "vlm.domain": (),
    "vlm.dburl": (),
    # single sign-on settings read from secrets.toml (pure: part of the configuration)
    "vlm.sso_config": (),
    "vlm.config": ("vlm.dburl", "vlm.sso_config"),
    "vlm.secret_box": (),
    "vlm.store": ("vlm.domain", "vlm.dburl"),
    "vlm.flexnet": ("vlm.domain",),
    "vlm.context": (*BASE, "vlm.store"),
    # alert evaluation and delivery: below both the scheduler (which runs a pass) and the
    # services (which send a test message); it reads and writes through the store only
    "vlm.alerting": (*BASE, "vlm.store", "vlm.context"),
    "vlm.sync": (*BASE, "vlm.store", "vlm.flexnet", "vlm.context", "vlm.alerting"),
    "vlm.services": (*BASE, "vlm.store", "vlm.flexnet", "vlm.context", "vlm.alerting"),
    "vlm.runtime": (*BASE, "vlm.context", "vlm.sync"),
    "vlm.api": (*BASE, "vlm.context", "vlm.runtime", "vlm.services", "vlm.alerting"),
    # The UI reaches data only through services (never the store or the API); sync and flexnet
    # for their error types, demo for the demo logins the sign-in page shows, alerting for the
    # kinds of alert rule.
    "vlm.ui": (*BASE, "vlm.context", "vlm.runtime", "vlm.services", "vlm.sync", "vlm.flexnet")
    + ("vlm.demo", "vlm.alerting"),
}
STREAMLIT_ALLOWED = ("vlm.ui",)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name a file imports, at any depth (function-level imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def layer_of(module: str) -> str | None:
    """The ALLOWED key a module belongs to (the longest matching prefix)."""
    matches = [k for k in ALLOWED if module == k or module.startswith(k + ".")]
    return max(matches, key=len) if matches else None


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_reaches_up(path: Path) -> None:
    module = module_name(path)
    layer = layer_of(module)
    if layer is None:
        pytest.skip(f"{module} is a top layer (cli, demo, lifespan) and may import below it")
    upward = sorted(
        name
        for name in imported_modules(path)
        if name.startswith("vlm") and not within(name, (layer, *ALLOWED[layer]))
    )
    assert upward == [], f"{module} ({layer}) imports from above it: {upward}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_ui_imports_streamlit(path: Path) -> None:
    module = module_name(path)
    if within(module, STREAMLIT_ALLOWED):
        return
    uses = sorted(
        n for n in imported_modules(path) if n == "streamlit" or n.startswith("streamlit.")
    )
    assert uses == [], f"{module} imports {uses}; only vlm.ui may"


def test_the_checks_see_a_violation(tmp_path: Path) -> None:
    """The import reader finds function-level imports, so the checks above can fail."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def f():\n    from vlm.services.pools import create_pool\n    import streamlit\n"
    )
    assert imported_modules(probe) == {"vlm.services.pools", "streamlit"}
    assert not within("vlm.services.pools", ALLOWED["vlm.sync"])
    assert layer_of("vlm.sync.inventory") == "vlm.sync"


SQL_STATEMENT = re.compile(
    r"\b(SELECT\b.+\bFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE)\b",
    re.IGNORECASE | re.DOTALL,
)


def sql_strings(path: Path) -> list[str]:
    """String constants (f-string parts too) that read as SQL statements."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        text = node.value if isinstance(node, ast.Constant) else None
        if isinstance(text, str) and SQL_STATEMENT.search(text):
            found.append(text.strip()[:60])
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_sql_lives_in_the_store(path: Path) -> None:
    if within(module_name(path), ("vlm.store",)):
        return
    assert sql_strings(path) == [], f"{path.relative_to(ROOT)} holds SQL; move it to vlm/store"


def test_the_sql_check_sees_sql(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        'A = "select id from pools where x = ?"\nB = f"UPDATE pools SET n = {1}"\nC = "DELETE"\n'
    )
    assert len(sql_strings(probe)) == 2
