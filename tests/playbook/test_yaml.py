"""Both shells: YAML read with the 1.2 core schema, JSON values only, bounded aliases.

`noetl run` and `noetl validate` read playbook files, `--workload-file` and `--set` values
through `load_yaml`; the operator receives JSON from the API server (docs/dsl.md says what
`kubectl apply` makes of the same YAML).
"""

from __future__ import annotations

import math
import textwrap

import pytest

from noetl.playbook import PlaybookInvalid, load_playbook
from noetl.playbook.yaml_core import MAX_ALIAS_EXPANSION, YamlError, load_yaml


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2024-05-01", "2024-05-01"),
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"),
        ("02134", 2134),
        ("0o17", 15),
        ("0x1F", 31),
        ("-42", -42),
        ("12:30", "12:30"),
        ("1_000", "1_000"),
        ("0b101", "0b101"),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("-.inf", -math.inf),
        ("true", True),
        ("False", False),
        ("TRUE", True),
        ("NO", "NO"),
        ("no", "no"),
        ("yes", "yes"),
        ("on", "on"),
        ("Off", "Off"),
        ("y", "y"),
        ("null", None),
        ("~", None),
        ("=", "="),
        ("'02134'", "02134"),
    ],
)
def test_plain_scalars_follow_the_yaml_1_2_core_schema(text, value):
    assert load_yaml(f"v: {text}") == {"v": value}


def test_nan_is_a_float():
    assert math.isnan(load_yaml("v: .nan")["v"])


def test_merge_keys_still_merge():
    text = "base: &base {a: 1, b: 2}\nderived: {<<: *base, b: 3}\n"
    assert load_yaml(text)["derived"] == {"a": 1, "b": 3}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\nb: 2\na: 3\n", "line 3, column 1: duplicate key 'a' (first on line 1)"),
        ("{a: 1, a: 2}", "line 1, column 8: duplicate key 'a' (first on line 1)"),
        ("v: !!timestamp 2024-05-01", "tag:yaml.org,2002:timestamp is not a JSON value"),
        ("v: !!binary aGk=", "tag:yaml.org,2002:binary is not a JSON value"),
        ("v: !!set {a}", "tag:yaml.org,2002:set is not a JSON value"),
        ("v: [1, 2", "line 2, column 1: did not find expected ',' or ']'"),
    ],
)
def test_refused_yaml_says_why_and_where(text, message):
    with pytest.raises(YamlError) as caught:
        load_yaml(text)
    assert message in str(caught.value)


def billion_laughs(levels: int) -> str:
    text = 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for level in range(1, levels + 1):
        text += f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]\n"
    return text


def test_aliases_that_expand_past_the_bound_are_refused():
    with pytest.raises(YamlError) as caught:
        load_yaml(billion_laughs(9))
    assert f"(at most {MAX_ALIAS_EXPANSION:,})" in str(caught.value)
    assert load_yaml(billion_laughs(2))["a2"][0] == [["lol"] * 9] * 9  # a few aliases are fine


def test_a_playbook_file_keeps_dates_and_words_as_written(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            kind: Playbook
            name: p
            workload: {day: 2024-05-01, answer: NO, zip: 02134, at: 12:30}
            workflow:
              - step: start
            """
        )
    )
    workload = load_playbook(path).spec.workload
    assert workload == {"day": "2024-05-01", "answer": "NO", "zip": 2134, "at": "12:30"}


def test_a_duplicate_key_in_a_playbook_is_invalid_with_its_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("kind: Playbook\nname: p\nworkflow:\n  - step: start\nname: q\n")
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook(path)
    assert str(caught.value.errors[0]) == (
        "not valid YAML: line 5, column 1: duplicate key 'name' (first on line 2)"
    )
