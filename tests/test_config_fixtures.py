"""Config fixtures as tables, like the OpenTelemetry Collector's ``config_test.go`` over ``testdata/``.

``tests/testdata/<kind>/<type>/`` holds one component's section: ``good*.yaml`` must build, and each
``bad_*.yaml`` ends with the exact error it must produce (``# error: file:line: key: problem`` and
an optional ``# hint: …``; ``{here}`` stands for the fixture's folder). ``tests/testdata/service/``
holds whole collector configs, checked the same way. Everything runs in-process.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from collector import registry
from collector.component import BuildContext, Component
from collector.config import ConfigError, parse_yaml
from collector.schema import key_paths
from collector.service import build_service
from collector.telemetry import SelfTelemetry

TESTDATA = Path(__file__).parent / "testdata"
FIXTURES = sorted(TESTDATA.glob("*/*/*.yaml")) + sorted((TESTDATA / "service").glob("*.yaml"))
SUPPORT_FILES = {"prices.yaml", "broken_prices.yaml"}  # read by the genai_cost fixtures, not fixtures themselves


def build(path: Path) -> object:
    document = parse_yaml(path.read_text(), path.name)
    if path.parent.name == "service":
        return build_service(document, path.parent)
    cls = registry.component_class(path.parent.parent.name, path.parent.name)
    return cls.from_config(document.section(), BuildContext(path.parent.name, SelfTelemetry(), path.parent))


def expected_error(path: Path) -> str | None:
    """The error a fixture must give, from its trailing ``# error:`` / ``# hint:`` lines."""
    lines = path.read_text().splitlines()
    error = next((line.removeprefix("# error: ") for line in lines if line.startswith("# error: ")), None)
    hint = next((line.removeprefix("# hint: ") for line in lines if line.startswith("# hint: ")), None)
    if error is None:
        return None
    message = error.replace("{here}", str(path.parent))
    return message + (f"\n  hint: {hint}" if hint else "")


@pytest.mark.parametrize("path", [p for p in FIXTURES if p.name not in SUPPORT_FILES],
                         ids=lambda p: str(p.relative_to(TESTDATA)))
def test_fixture(path):
    expected = expected_error(path)
    if path.name.startswith("good"):
        assert expected is None, "a good fixture has no expected error"
        build(path)
        return
    assert path.name.startswith("bad_") and expected is not None, "bad_*.yaml ends with '# error: <message>'"
    with pytest.raises(ConfigError) as error:
        build(path)
    assert str(error.value) == expected


@pytest.mark.parametrize(("kind", "type_name"), [(kind, name) for kind, types in registry.KINDS.items()
                                                 for name in types])
def test_every_component_has_good_and_bad_fixtures(kind, type_name):
    folder = TESTDATA / kind / type_name
    names = [p.name for p in folder.glob("*.yaml")]
    assert "good.yaml" in names and any(n.startswith("bad_") for n in names), f"add fixtures under {folder}"


@pytest.mark.parametrize(("kind", "type_name"), [(kind, name) for kind, types in registry.KINDS.items()
                                                 for name in types])
def test_an_empty_section_gives_the_config_class_defaults(kind, type_name):
    cls: type[Component] = registry.component_class(kind, type_name)
    required = [f.name for f in dataclasses.fields(cls.config_class)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    document = parse_yaml("{}", "empty.yaml")
    context = BuildContext(type_name, SelfTelemetry(), TESTDATA)
    if required:
        with pytest.raises(ConfigError, match=f"missing required key '{required[0]}'"):
            cls.from_config(document.section(), context)
    elif kind == "receivers":
        with pytest.raises(ConfigError, match="enable at least one protocol"):
            cls.from_config(document.section(), context)
    else:
        cls.from_config(document.section(), context)


def test_a_good_fixture_is_read_into_its_typed_config():
    from processors.genai_budget import GenAIBudget
    budget = build(TESTDATA / "processors" / "genai_budget" / "good.yaml")
    assert isinstance(budget, GenAIBudget)
    assert [b.id for b in budget.configured] == ["acme-monthly", "gpt5-daily", "rolling"]
    assert budget.webhook is not None and budget.webhook.attempts == 3 and budget.webhook.backoff == 0.5
    assert str(budget.book.zone) == "Europe/Berlin"


README = (Path(__file__).parent.parent / "README.md").read_text()
_KIND_HEADINGS = {"receivers": "### Receivers", "processors": "### Processors", "exporters": "### Exporters",
                  "extensions": "### Extensions"}


def reference_rows(kind: str, type_name: str) -> list[tuple[list[str], str]]:
    """The README's reference table of a component: (keys in the first column, whole row) per row.

    A component's block starts at a paragraph that names it in bold (``**`otlphttp`**``) under its
    kind's heading and ends at the next bold component name or heading; its reference is the first
    ``| key | default | meaning |`` table there. ``.x`` in a row is relative to the row's first key
    (``retention.calls``, ``.hourly``)."""
    section = README.split(_KIND_HEADINGS[kind], 1)[1].split("\n### ", 1)[0]
    block = re.split(r"\n\*\*`", re.split(rf"\*\*`{re.escape(type_name)}`\*\*", section, maxsplit=1)[1])[0]
    table = block.split("\n| key | default | meaning |\n", 1)[-1].split("\n\n", 1)[0] if "| key |" in block else ""
    rows = []
    for line in table.splitlines():
        if not line.startswith("| `") or re.search(rf"`(?!{re.escape(type_name)}`)[a-z_]+` only", line):
            continue  # a shared table's row for another component ("`otlphttp` only")
        spans = re.findall(r"`([^`]+)`", line.split("|")[1])
        prefix = spans[0].rpartition(".")[0]
        rows.append(([prefix + span if span.startswith(".") else span for span in spans], line))
    return rows


@pytest.mark.parametrize(("kind", "type_name"), [(kind, name) for kind, types in registry.KINDS.items()
                                                 for name in types])
def test_the_readme_reference_matches_the_config_class(kind, type_name):
    """Every key the config class reads is in the README's table for the component (a row for a block,
    ``tls``, may name its keys in the text), and every key in that table is one the class reads."""
    paths = key_paths(registry.component_class(kind, type_name).config_class)
    rows = reference_rows(kind, type_name)
    assert rows, f"README: no reference table for {kind} {type_name}"
    documented = {key for keys, _ in rows for key in keys}
    for key in documented:
        assert any(p == key or p.startswith(key + ".") for p in paths), f"README documents {key}, which is not read"
    for path in paths:
        assert path in documented or any(
            path.startswith(key + ".") and f"`{path[len(key) + 1:]}`" in row for keys, row in rows for key in keys
        ), f"README: {kind} {type_name} reads {path}, which the reference does not name"
