"""The import rules of docs/architecture.md hold for every module of the package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pro_service"
DOC = REPO / "docs" / "architecture.md"

CORE = {"clock", "crypto", "db", "extensions", "logging_privacy", "migrate", "models"}
CORE |= {"rate_limit", "settings"}
CORE_PACKAGES = {"migrations"}
DOMAINS = ("instruments", "file_scoring", "audit", "scheduling", "messaging", "answering")
DOMAINS += ("patients",)
DOMAINS += ("exports", "staff")
WEB_FRAMEWORK = ("flask", "flask_wtf", "flask_babel", "werkzeug")
#: Core modules that bind extensions to the Flask app.
FLASK_BINDINGS = {"db", "extensions"}


def unit_of(module: str) -> str:
    """The row of the rules table a dotted module belongs to."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return "app"
    first = parts[1]
    if first in CORE or first in CORE_PACKAGES:
        return "core"
    return first


def rules() -> dict[str, set[str]]:
    """The 'may import' table of docs/architecture.md."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Which package may import which", 1)[1].split("\n## ", 1)[0]
    table: dict[str, set[str]] = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\| ([a-z_]+) \| (.+) \|", line.strip())
        if match and match.group(1) != "package":
            allowed = match.group(2)
            names = set() if allowed.startswith("(") else {n.strip() for n in allowed.split(",")}
            table[match.group(1)] = names
    return table


def module_name(path: Path) -> tuple[str, bool]:
    parts = path.relative_to(REPO).with_suffix("").parts
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def is_module(dotted: str) -> bool:
    path = REPO.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> list[tuple[int, str]]:
    module, is_package = module_name(path)
    return imports_in(module, is_package, path.read_text(encoding="utf-8"))


def imports_in(module: str, is_package: bool, source: str) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in the source, relative ones resolved."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # "from package import module" names the module
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if is_module(sub) else target))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def test_the_rules_table_names_every_package():
    table = rules()
    units = {unit_of(module_name(p)[0]) for p in modules()}
    assert units <= set(table), f"packages missing from docs/architecture.md: {units - set(table)}"
    for unit, allowed in table.items():
        assert allowed <= set(table), f"{unit} may import unknown {allowed - set(table)}"


def violations(module: str, found: list[tuple[int, str]]) -> list[str]:
    table = rules()
    unit = unit_of(module)
    wrong = []
    for line, target in found:
        if not target.startswith("pro_service"):
            continue
        other = unit_of(target)
        if other != unit and other not in table[unit]:
            wrong.append(f"line {line}: {unit} imports {target} ({other})")
    return wrong


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_import_follows_the_rules(path: Path):
    wrong = violations(module_name(path)[0], imports_of(path))
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_domain_code_knows_nothing_of_flask(path: Path):
    module = module_name(path)[0]
    unit = unit_of(module)
    if unit not in DOMAINS and not (unit == "core" and module.split(".")[1] not in FLASK_BINDINGS):
        return
    web = [
        f"line {line}: {target}"
        for line, target in imports_of(path)
        if target.split(".")[0] in WEB_FRAMEWORK
    ]
    assert not web, f"{module} imports the web framework:\n" + "\n".join(web)


def test_no_folder_outgrows_one_domain():
    for folder in [PACKAGE, *(p for p in PACKAGE.rglob("*") if p.is_dir())]:
        if "migrations" in folder.parts or "__pycache__" in folder.parts:
            continue
        own = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in own)
        assert len(own) <= 12, f"{folder}: {len(own)} modules"
        assert lines <= 3000, f"{folder}: {lines} lines"


def test_a_lower_package_importing_a_higher_one_is_caught():
    """The checker itself, on sources that are not in the package."""
    module = "pro_service.scheduling.example"
    upward = "from ..answering.responses import save_answers\nfrom .. import demo\n"
    assert violations(module, imports_in(module, False, upward)) == [
        "line 1: scheduling imports pro_service.answering.responses (answering)",
        "line 2: scheduling imports pro_service.demo (demo)",
    ]
    allowed = "from .assessments import local_today\nfrom ..models import Site\nimport yaml\n"
    assert violations(module, imports_in(module, False, allowed)) == []
