"""metadata.yaml against Airbyte's metadata schema, and a static check of the Dockerfile.

The schema is Airbyte's ``ConnectorMetadataDefinitionV0`` (JSON Schema draft-07 written as YAML,
14 files) copied into ``integration_tests/resource/metadata-schema/`` (provenance in its README.md).
It is validated offline with jsonschema + referencing, handling three upstream quirks in memory:
the files' ``$id``s disagree (file names become the URIs), ``ConnectorReleases.yaml`` uses the
non-standard ``type: dict``, and YAML dates must stay strings (the schema wants ``format: date``).
No docker engine is needed: the Dockerfile is only parsed. Also pinned: LICENSE is the full text of
the license metadata.yaml declares, the icon it names is a valid SVG, one version / image tag in
metadata.yaml, setup.py, the Dockerfile, README and docs (and the docs' Changelog), the supported Python
versions, and acceptance-test-config.yml at the root.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import uuid
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import yaml
from jsonschema import Draft7Validator, FormatChecker, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from integration_tests import connector_cli as cli

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = Path(__file__).resolve().parent / "resource" / "metadata-schema"
ROOT_SCHEMA = "ConnectorMetadataDefinitionV0.yaml"
METADATA = PROJECT_ROOT / "metadata.yaml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
SETUP_PY = PROJECT_ROOT / "setup.py"


class _DatesAsStrings(yaml.SafeLoader):
    """SafeLoader without the timestamp resolver: ``2026-11-29`` stays a string."""


_DatesAsStrings.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_DatesAsStrings)  # noqa: S506 - a SafeLoader


def metadata_errors(document: Any) -> List[str]:
    """One ``$.json.path: message`` line per schema violation of a metadata.yaml document."""
    schemas = {path.name: load_yaml(path) for path in SCHEMA_DIR.glob("*.yaml")}
    for schema in schemas.values():
        schema.pop("$id", None)  # the upstream $ids disagree; the sibling file names are the $refs
        schema.pop("$schema", None)  # else a $ref into that file falls back to the plain Draft7Validator
    registry = Registry().with_resources(
        (name, Resource.from_contents(schema, default_specification=DRAFT7)) for name, schema in schemas.items()
    )
    validator_class = validators.extend(
        Draft7Validator,
        type_checker=Draft7Validator.TYPE_CHECKER.redefine("dict", lambda _, value: isinstance(value, dict)),
    )
    validator = validator_class(schemas[ROOT_SCHEMA], registry=registry, format_checker=FormatChecker())
    return [f"{e.json_path}: {e.message}" for e in sorted(validator.iter_errors(document), key=lambda e: e.json_path)]


def setup_keywords() -> Dict[str, Any]:
    """The literal keyword arguments of setup.py's ``setup(...)`` call (without running it)."""
    tree = ast.parse(SETUP_PY.read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    found = {}
    for keyword in call.keywords:
        try:
            found[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            continue  # a name (MAIN_REQUIREMENTS, ...)
    return found


def dockerfile_instructions() -> List[Tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, comments dropped and continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


@pytest.fixture(scope="module")
def metadata() -> Dict[str, Any]:
    return load_yaml(METADATA)


def test_the_schema_copy_is_complete_and_every_ref_resolves():
    names = {p.name for p in SCHEMA_DIR.glob("*.yaml")}
    assert len(names) == 14 and ROOT_SCHEMA in names
    refs = set(re.findall(r"\$ref:\s*\"?([A-Za-z]+\.yaml)", "".join(p.read_text() for p in SCHEMA_DIR.glob("*.yaml"))))
    assert refs <= names


def test_metadata_yaml_is_valid_against_airbytes_metadata_schema(metadata):
    assert metadata_errors(metadata) == []


def test_the_validator_rejects_an_invalid_metadata_yaml(metadata):
    broken = json.loads(json.dumps(metadata))
    broken["data"]["connectorType"] = "sorce"
    del broken["data"]["license"]
    broken["data"]["definitionId"] = "not-a-uuid"
    broken["data"]["releaseDate"] = "29/11/2026"
    errors = metadata_errors(broken)
    assert "$.data.connectorType: 'sorce' is not one of ['destination', 'source']" in errors
    assert "$.data: 'license' is a required property" in errors
    assert any(e.startswith("$.data.definitionId: ") for e in errors)
    assert any(e.startswith("$.data.releaseDate: ") for e in errors)


def test_metadata_yaml_declares_what_airbyte_needs_to_publish_the_connector(metadata):
    data = metadata["data"]
    assert metadata["metadataSpecVersion"] == "1.0"
    uuid.UUID(data["definitionId"])
    assert data["connectorType"] == "source" and data["connectorSubtype"] == "api"
    assert data["dockerRepository"] == "airbyte/source-bitbucket"
    assert data["dockerImageTag"] == setup_keywords()["version"]
    assert data["releaseStage"] in ("alpha", "beta", "generally_available", "custom")
    assert data["supportLevel"] in ("community", "certified", "archived")
    spec = json.loads((PROJECT_ROOT / "source_bitbucket" / "spec.json").read_text())
    assert data["documentationUrl"] == spec["documentationUrl"] == "https://docs.airbyte.com/integrations/sources/bitbucket"
    assert {"language:python", "cdk:python"} <= set(data["tags"])
    assert data["allowedHosts"]["hosts"] == ["api.bitbucket.org"]
    assert data["githubIssueLabel"] == "source-bitbucket"
    suggested = data["suggestedStreams"]["streams"]
    assert suggested[:5] == ["repositories", "pull_requests", "commits", "deployments", "workspace_users"]
    assert set(suggested) <= set(cli.STREAMS)  # only streams that exist


def test_the_base_image_is_pinned_and_is_the_dockerfiles_from(metadata):
    base_image = metadata["data"]["connectorBuildOptions"]["baseImage"]
    assert re.fullmatch(r"docker\.io/airbyte/python-connector-base:\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", base_image)
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", base_image)
    assert [args for name, args in instructions if name == "FROM"] == [base_image]  # one stage


def test_the_cdks_metadata_model_reads_metadata_yaml(metadata):
    """The image tests and ``airbyte-cdk image build`` read metadata.yaml through this model."""
    from airbyte_cdk.models.connector_metadata import MetadataFile

    parsed = MetadataFile.from_file(METADATA)
    assert parsed.data.dockerRepository == "airbyte/source-bitbucket"
    assert parsed.data.connectorBuildOptions.baseImage == metadata["data"]["connectorBuildOptions"]["baseImage"]


def test_the_dockerfile_installs_the_connector_and_runs_its_console_script(metadata):
    instructions = dockerfile_instructions()
    envs = dict(shlex.split(args)[0].split("=", 1) for name, args in instructions if name == "ENV" and "=" in args)
    assert envs.get("AIRBYTE_ENTRYPOINT") == "source-bitbucket"
    entrypoints = [json.loads(args) for name, args in instructions if name == "ENTRYPOINT"]
    assert entrypoints == [["source-bitbucket"]]
    assert "source-bitbucket=source_bitbucket.run:run" in setup_keywords()["entry_points"]["console_scripts"]
    runs = " ".join(args for name, args in instructions if name == "RUN")
    assert re.search(r"pip install [^&]*\.(\s|$)", runs) and " -e " not in runs  # a wheel, not editable
    for name, args in instructions:
        if name == "COPY":
            *sources, _ = shlex.split(args)
            for source in sources:
                assert (PROJECT_ROOT / source).exists(), f"COPY {source}: not in the repository"
    copied = {s for name, args in instructions if name == "COPY" for s in shlex.split(args)[:-1]}
    assert {"setup.py", "schemas", "source_bitbucket"} <= copied
    labels = dict(args.split("=", 1) for name, args in instructions if name == "LABEL")
    assert labels == {"io.airbyte.name": metadata["data"]["dockerRepository"],
                      "io.airbyte.version": metadata["data"]["dockerImageTag"]}


def _markdown_table(text: str, header_start: str) -> List[List[str]]:
    """The body rows (cells stripped of backticks) of the first markdown table whose header starts so."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().replace("`", "") for cell in line.strip().strip("|").split("|")])
    return rows


def test_the_docs_page_lists_the_discovered_streams_keys_cursors_and_the_current_version(metadata):
    from airbyte_cdk.test.entrypoint_wrapper import discover

    from source_bitbucket import SourceBitbucket

    docs = (PROJECT_ROOT / "docs" / "bitbucket.md").read_text()
    config = json.loads((PROJECT_ROOT / "integration_tests" / "sample_config.json").read_text())
    discovered = {s.name: s for s in discover(SourceBitbucket(), config).catalog.catalog.streams}

    documented = {row[0]: row for row in _markdown_table(docs, "| Stream | Endpoint |")}
    assert documented.keys() == discovered.keys()
    for name, stream in discovered.items():
        _, _, primary_key, cursor, modes = documented[name]
        assert primary_key == ", ".join(field for path in stream.source_defined_primary_key for field in path), name
        assert cursor == ".".join(stream.default_cursor_field or []), name
        assert ("Incremental" in modes) == ("incremental" in [m.value for m in stream.supported_sync_modes]), name
    scopes = {row[0] for row in _markdown_table(docs, "| Stream | Scope |")}
    assert scopes == discovered.keys()
    changelog = _markdown_table(docs, "| Version | Date |")
    assert changelog[0][0] == metadata["data"]["dockerImageTag"]


# ---------------------------------------------------------------------------------------------------
# The license, the icon, one version everywhere, the acceptance-test config where airbyte-ci looks.

MIT_BODY = (
    'Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated '
    'documentation files (the "Software"), to deal in the Software without restriction, including without limitation '
    "the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and "
    "to permit persons to whom the Software is furnished to do so, subject to the following conditions: The above "
    "copyright notice and this permission notice shall be included in all copies or substantial portions of the "
    'Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT '
    "LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT "
    "SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION "
    "OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER "
    "DEALINGS IN THE SOFTWARE."
)
LICENSE_TEXTS = {"MIT": ("MIT License", MIT_BODY, "License :: OSI Approved :: MIT License")}
SVG = "{http://www.w3.org/2000/svg}"


def test_the_license_file_is_the_full_text_of_the_license_metadata_declares(metadata):
    declared = metadata["data"]["license"]
    assert declared in LICENSE_TEXTS, f"no reference text for license {declared!r}"
    title, body, classifier = LICENSE_TEXTS[declared]
    text = (PROJECT_ROOT / "LICENSE").read_text(encoding="utf-8")
    lines = text.strip().splitlines()
    assert lines[0] == title and re.fullmatch(r"Copyright \(c\) \d{4} \S.*", lines[2])
    assert " ".join(" ".join(lines[3:]).split()) == body  # the whole standard text, nothing more
    keywords = setup_keywords()
    assert keywords["license"] == declared and classifier in keywords["classifiers"]


def test_the_icon_metadata_names_is_a_valid_standalone_svg(metadata):
    import xml.etree.ElementTree as ElementTree

    icon = PROJECT_ROOT / metadata["data"]["icon"]
    assert metadata["data"]["icon"] == "icon.svg" and icon.is_file()
    text = icon.read_text(encoding="utf-8")
    root = ElementTree.fromstring(text)
    assert root.tag == f"{SVG}svg" and len(root.get("viewBox", "").split()) == 4
    shapes = [e for e in root.iter() if e.tag in {f"{SVG}{t}" for t in ("path", "rect", "circle", "polygon", "ellipse")}]
    assert len(shapes) >= 2
    assert not [e for e in root.iter() if e.tag in (f"{SVG}script", f"{SVG}image", f"{SVG}foreignObject")]
    assert "href" not in text and "<!DOCTYPE" not in text and len(text) < 10_000


def test_one_version_and_image_tag_everywhere(metadata):
    tag = metadata["data"]["dockerImageTag"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag)
    assert setup_keywords()["version"] == tag
    labels = dict(args.split("=", 1) for name, args in dockerfile_instructions() if name == "LABEL")
    assert labels["io.airbyte.version"] == tag
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    docs = (PROJECT_ROOT / "docs" / "bitbucket.md").read_text(encoding="utf-8")
    for name, text in (("README.md", readme), ("docs/bitbucket.md", docs)):
        assert f"tag `{tag}`" in text, name
        assert set(re.findall(r"tag `([^`]+)`", text)) == {tag}, name
        assert set(re.findall(r"airbyte/source-bitbucket:([\w.-]+)", text)) <= {tag}, name
    assert f"airbyte/source-bitbucket:{tag}" in readme
    changelog = _markdown_table(docs, "| Version | Date |")
    assert changelog[0][0] == tag and all(re.fullmatch(r"\d{4}-\d\d-\d\d", row[1]) for row in changelog)
    assert len({row[0] for row in changelog}) == len(changelog)


def test_the_supported_python_versions_agree():
    keywords = setup_keywords()
    assert keywords["python_requires"] == ">=3.10,<3.14"
    listed = [c.rsplit(" ", 1)[1] for c in keywords["classifiers"] if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert listed == ["3.10", "3.11", "3.12", "3.13"]
    assert "Python 3.10–3.13" in (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def test_acceptance_test_config_is_at_the_root_and_every_path_it_names_exists():
    from integration_tests import test_standard_suite

    config_file = PROJECT_ROOT / "acceptance-test-config.yml"
    assert config_file.is_file() and not (PROJECT_ROOT / "integration_tests" / "acceptance-test-config.yml").exists()
    assert test_standard_suite.ACCEPTANCE_TEST_CONFIG == config_file
    config = load_yaml(config_file)
    assert config["connector_image"] == "airbyte/source-bitbucket:dev"  # the image airbyte-ci builds to test
    paths = set(re.findall(r"^\s*-?\s*\w+_path: \"?([^\"\s]+)", config_file.read_text(), flags=re.M))
    assert "integration_tests/configured_catalog.json" in paths
    for path in paths - {"secrets/config.json"}:
        assert (PROJECT_ROOT / path).is_file(), path
