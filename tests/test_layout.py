"""The package's layering: nothing imports upward, no private name leaves its module."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "spacy_clinlong"
# What each sub-package may import from the others (docs/architecture.md draws it).
# `about` (the version) and `configs` (config text) are leaves anyone may use.
ALLOWED = {
    "io": set(),
    "corpus": {"io"},
    "standins": {"corpus"},
    "models": set(),
    "pipes": {"models"},
    "training": {"models", "pipes"},
    "integrations": {"pipes", "models"},
    "pretraining": {"io", "models", "standins"},
    "evaluation": {"pipes", "models", "corpus", "standins", "integrations"},
    "annotate": {"io", "pipes", "models", "integrations"},
    "cli": None,  # the top: may import anything
}
LEAVES = {"about", "configs"}


def _imports():
    """Yield (file, importing sub-package, imported module parts, imported names)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("").parts
        is_init = rel[-1] == "__init__"
        module = list(rel[:-1] if is_init else rel)
        package = module if is_init else module[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    target = base + (node.module.split(".") if node.module else [])
                elif node.module and node.module.split(".")[0] == "spacy_clinlong":
                    target = node.module.split(".")[1:]
                else:
                    continue
                yield path, module, target, [alias.name for alias in node.names]


@pytest.mark.parametrize("top", sorted(ALLOWED))
def test_nothing_imports_upward(top):
    wrong = []
    for path, module, target, _ in _imports():
        if not module or module[0] != top or not target or ALLOWED[top] is None:
            continue
        if target[0] != top and target[0] not in ALLOWED[top] | LEAVES:
            wrong.append(f"{path.relative_to(PACKAGE)} imports {'.'.join(target)}")
    assert not wrong


def test_no_private_name_leaves_its_module():
    wrong = []
    for path, module, target, names in _imports():
        if target == module:
            continue
        for name in names:
            if name.startswith("_") and not name.startswith("__"):
                wrong.append(f"{path.relative_to(PACKAGE)} imports {'.'.join(target)}.{name}")
    assert not wrong


def test_every_import_of_ours_names_a_module_that_exists():
    # Imports inside functions run late; a moved module must not leave one behind.
    wrong = []
    for path, _, target, names in _imports():
        base = PACKAGE.joinpath(*target)
        if base.with_suffix(".py").exists():
            continue
        if (base / "__init__.py").exists():
            continue
        wrong.append(f"{path.relative_to(PACKAGE)} imports {'.'.join(target) or '.'} ({', '.join(names)})")
    assert not wrong
