"""The shape of vlm/ui, read from the source: the grid in one package, FeatureKey defined once,
test helpers outside the app, every confirmation through confirmed_action()."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
UI = ROOT / "vlm" / "ui"
GRID_PARTS = {"diff", "drafts", "state", "selection", "view", "report", "bulk", "extend"}
CONFIRM_PRIMITIVES = {"ask_confirmation", "confirmation"}


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def assigned_names(tree: ast.Module) -> set[str]:
    """Names bound at module level by an assignment (not by an import)."""
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def defined_functions(tree: ast.Module) -> set[str]:
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def called_names(tree: ast.Module) -> set[str]:
    calls = (n.func for n in ast.walk(tree) if isinstance(n, ast.Call))
    return {f.id if isinstance(f, ast.Name) else getattr(f, "attr", "") for f in calls}


def test_the_allocation_grid_lives_in_one_package():
    parts = {p.stem for p in (UI / "grid").glob("*.py")} - {"__init__"}
    assert parts == GRID_PARTS
    loose = sorted(p.name for p in UI.glob("*.py") if "grid" in p.stem or p.stem == "bulk_import")
    assert loose == [], f"grid modules outside vlm/ui/grid: {loose}"


def test_feature_key_is_defined_only_in_the_domain():
    defining = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "vlm").rglob("*.py")
        if "FeatureKey" in assigned_names(parsed(path))
    )
    assert defining == ["vlm/domain.py"]


def test_the_signed_in_test_helper_is_not_part_of_the_app():
    defining = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "vlm").rglob("*.py")
        if "seed_signed_in" in defined_functions(parsed(path))
    )
    assert defining == []
    assert "seed_signed_in" in defined_functions(parsed(ROOT / "tests/app/signed_in.py"))


def test_pages_confirm_only_through_confirmed_action():
    """No page or ui module opens or reads a confirmation by hand (confirm.py builds on them)."""
    scripts = [*(ROOT / "pages").glob("*.py"), *UI.rglob("*.py")]
    by_hand = sorted(
        str(path.relative_to(ROOT))
        for path in scripts
        if path.name not in ("confirm.py", "widgets.py")
        and CONFIRM_PRIMITIVES & called_names(parsed(path))
    )
    assert by_hand == []
    users = {path.name for path in scripts if "confirmed_action" in called_names(parsed(path))}
    assert {"pools_page.py", "vlms_page.py", "servers_page.py", "users_page.py"} <= users
