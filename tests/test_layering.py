"""The house rules on imports: the core never imports an adapter or telegram; adapters only the core's data."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

# The core's data types and pure functions on request data (signatures, hashes, JSON, client addresses).
ADAPTER_MAY_IMPORT = {"bot.messages", "bot.config", "bot.errors", "bot.signing", "bot.passwords", "bot.json_input",
                      "bot.client_address"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("path", modules("bot") + modules("knowledge") + modules("commerce"), ids=lambda p: p.relative_to(REPO).as_posix())
def test_core_never_imports_adapters_or_telegram(path):
    bad = {name for name in imports_of(path) if name.split(".")[0] in ("adapters", "telegram")}
    assert bad == set()


@pytest.mark.parametrize("path", modules("adapters"), ids=lambda p: p.relative_to(REPO).as_posix())
def test_adapters_import_only_the_cores_data_and_no_other_adapter(path):
    own = "adapters." + path.relative_to(REPO / "adapters").parts[0].removesuffix(".py")  # a module or a package
    names = imports_of(path)
    core = {name for name in names if name.split(".")[0] in ("bot", "knowledge", "commerce")}
    other_adapters = {name for name in names
                      if name.startswith("adapters") and name != own and not name.startswith(own + ".")}
    assert core <= ADAPTER_MAY_IMPORT
    assert other_adapters == set()


def test_layering_check_sees_real_imports():
    """Guard against the checks above passing vacuously."""
    assert "bot.messages" in imports_of(REPO / "adapters" / "webhook.py")
    assert "knowledge.search" in imports_of(REPO / "bot" / "pipeline.py")
    assert "commerce.orders" in imports_of(REPO / "bot" / "orders" / "stage.py")


@pytest.mark.parametrize("path", modules("commerce"), ids=lambda p: p.relative_to(REPO).as_posix())
def test_commerce_reads_shops_and_knows_nothing_of_conversations(path):
    """The shop connectors and order logic are the core's lowest layer: no pipeline, store or responder."""
    bad = {name for name in imports_of(path)
           if name.split(".")[0] == "bot" and name not in ("bot.concurrency", "bot.errors")}
    assert bad == set()
