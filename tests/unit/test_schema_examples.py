"""The message contracts are well-formed and their examples say what they claim.

Valid examples pin down what the schemas must accept, invalid ones (each wrong
in the way its file name says) what they must reject; the README examples are
what other engineers code against, so they must validate too.
"""

from __future__ import annotations

import json
import re

import pytest
from jsonschema import Draft202012Validator

import schemas

ALL_SCHEMAS = sorted(p.stem for p in schemas.SCHEMA_DIR.glob("*.json"))
README = (schemas.SCHEMA_DIR / "README.md").read_text(encoding="utf-8")


def _ids(cases: list) -> list[str]:
    return [f"{p.parent.parent.name}/{p.stem}" for p, _ in cases]


def _all(kind: int) -> list[tuple]:
    return [case for name in schemas.MESSAGES for case in schemas.examples(name)[kind]]


VALID, INVALID = _all(0), _all(1)


def _readme_examples() -> list[tuple[str | None, object]]:
    """(schema, example) for each ```json block of the README.

    A block belongs to the first backticked name in the heading above it: a
    schema name, or a topic that the README's table gives to exactly one schema.
    """
    by_topic: dict[str, list[str]] = {}
    for schema, topic in re.findall(r"^\| `(\w+)\.json` \| `([^`]+)`", README, re.M):
        by_topic.setdefault(topic, []).append(schema)

    def owner(heading: str) -> str | None:
        token = re.search(r"`([^`]+)`", heading)
        if token is None:
            return None
        if token.group(1) in schemas.MESSAGES:
            return token.group(1)
        owners = by_topic.get(token.group(1), [])
        return owners[0] if len(owners) == 1 else None

    found: list[tuple[str | None, object]] = []
    current = None
    for heading, block in re.findall(r"^(#+ [^\n]*)$|^```json\n(.*?)^```", README, re.M | re.S):
        if heading:
            current = owner(heading)
        else:
            found.append((current, json.loads(block)))
    return found


README_EXAMPLES = _readme_examples()


@pytest.mark.parametrize("name", ALL_SCHEMAS)
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = schemas.load(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/{name}.json")


def test_every_message_schema_is_listed() -> None:
    assert sorted(schemas.MESSAGES) == sorted(n for n in ALL_SCHEMAS if n != "common")


@pytest.mark.parametrize("name", schemas.MESSAGES)
def test_enough_examples(name: str) -> None:
    valid, invalid = schemas.examples(name)
    assert len(valid) >= 2 and len(invalid) >= 2


@pytest.mark.parametrize(("path", "example"), VALID, ids=_ids(VALID))
def test_valid_example_validates(path, example) -> None:
    errors = [e.message for e in schemas.validator(path.parent.parent.name).iter_errors(example)]
    assert errors == []


@pytest.mark.parametrize(("path", "example"), INVALID, ids=_ids(INVALID))
def test_invalid_example_fails(path, example) -> None:
    assert not schemas.validator(path.parent.parent.name).is_valid(example)


def test_readme_has_an_example_of_every_message() -> None:
    assert sorted({name for name, _ in README_EXAMPLES}, key=str) == sorted(schemas.MESSAGES)


@pytest.mark.parametrize(("name", "example"), README_EXAMPLES, ids=[n or "?" for n, _ in README_EXAMPLES])
def test_readme_example_validates(name: str | None, example: object) -> None:
    assert name is not None, "README json block under a heading that names no schema"
    assert [e.message for e in schemas.validator(name).iter_errors(example)] == []


def test_fragment_validates_one_upload_item() -> None:
    item = schemas.validator("common#/$defs/reading")
    assert item.is_valid({"meter_id": "M0001-0007", "energy": 0.42})
    assert not item.is_valid({"meter_id": "M0001-0007", "energy": -0.42})


def test_examples_reject_nan(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "examples" / "x" / "valid"
    folder.mkdir(parents=True)
    (folder / "nan.json").write_text('{"energy": NaN}')
    monkeypatch.setattr(schemas, "SCHEMA_DIR", tmp_path)
    with pytest.raises(ValueError, match="NaN"):
        schemas.examples("x")
