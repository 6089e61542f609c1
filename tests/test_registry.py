"""Every registered function is an entry point that spaCy's registries resolve,
so `spacy.load` and `spacy train` find them without --code."""

import configparser
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from spacy.util import registry

SETUP_CFG = Path(__file__).parent.parent / "setup.cfg"
REGISTRIES = {
    "spacy_architectures": "architectures",
    "spacy_misc": "misc",
    "spacy_span_getters": "span_getters",
    "spacy_readers": "readers",
    "spacy_factories": "factories",
    "spacy_scorers": "scorers",
    "spacy_cli": "cli",
    "thinc_schedules": "schedules",
    "spacy_callbacks": "callbacks",
}


def _declared():
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    section = parser["options.entry_points"]
    rows = []
    for group, lines in section.items():
        for line in lines.strip().splitlines():
            name, target = (part.strip() for part in line.split("=", 1))
            rows.append((group, name, target))
    return rows


@pytest.mark.parametrize("group,name,target", _declared())
def test_entry_point_resolves(group, name, target):
    installed = {ep.name: ep for ep in entry_points(group=group)}
    assert name in installed, f"{name} not installed under {group}: reinstall the package"
    assert installed[name].value == target
    func = installed[name].load()
    assert callable(func)
    if group in REGISTRIES and group != "spacy_cli":
        import spacy_transformers  # noqa: F401  (creates the span_getters registry)

        assert getattr(registry, REGISTRIES[group]).get(name) is func


def test_all_registered_names_are_namespaced_and_versioned():
    for group, name, target in _declared():
        if group in ("console_scripts", "spacy_cli"):
            continue
        if group == "spacy_factories":
            # Pipeline factories are snake_case with a prefix (STYLE.md rule 2); medspaCy's
            # own are declared too, under medspaCy's names, so that spacy.load finds them.
            ours = name.startswith("clinlong_")
            assert ours or (name.startswith("medspacy_") and target.startswith("medspacy.")), name
            assert name == name.lower(), name
            continue
        assert name.startswith("spacy-clinlong.") and name.rsplit(".", 1)[-1].startswith("v"), name


def test_spacy_cli_has_the_clinlong_group():
    from spacy.cli._util import app as spacy_app

    registry.cli.get_all()  # what `spacy` does when it starts
    assert any(group.name == "clinlong" for group in spacy_app.registered_groups)
