"""Templates: types kept, the filters users expect, errors that say what is wrong, a sandbox."""

from __future__ import annotations

import pytest

from noetl.templating import RenderError, check_template, render, truthy

CONTEXT = {
    "workload": {"cities": ["Paris", "Oslo"], "n": 3},
    "fetch": {"results": [{"a": 1}, {"a": 2}]},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ workload.cities }}", ["Paris", "Oslo"]),
        ("  {{ workload.n + 1 }} ", 4),
        ("{{ fetch.results | map(attribute='a') | list }}", [1, 2]),
        ("{{ workload.n > 2 }}", True),
        ("n={{ workload.n }}", "n=3"),
        ("{{ workload.cities | tojson }}", '["Paris", "Oslo"]'),
        ("{{ '<&>' | tojson }}", '"<&>"'),
        ("{{ 'hello' | b64encode }}", "aGVsbG8="),
        ("{{ 'aGVsbG8=' | b64decode }}", "hello"),
        ("{{ '{\"a\": [1]}' | fromjson }}", {"a": [1]}),
        ("{{ workload.cities[0] }}-{{ workload.cities[1] }}", "Paris-Oslo"),
        ("plain text", "plain text"),
        ("{{ range(3) | list }}", [0, 1, 2]),
        ("{{ '%}' }}", "%}"),
    ],
)
def test_render(template, expected):
    assert render(template, CONTEXT) == expected


def test_render_walks_nested_values():
    assert render(
        {"x": ["{{ workload.n }}", {"{{ 'k' }}": "v{{ workload.n }}"}], "y": 1}, CONTEXT
    ) == {
        "x": [3, {"k": "v3"}],
        "y": 1,
    }


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ missing }}", "'missing' is undefined"),
        ("{{ workload.nope }}", "has no attribute 'nope'"),
        ("x {{ missing.deeper }}", "'missing' is undefined"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
    ],
)
def test_errors_name_the_expression_and_why(template, reason):
    with pytest.raises(RenderError) as caught:
        render(template, CONTEXT)
    assert caught.value.expression == template
    assert reason in caught.value.reason


ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ workload.__class__ }}",
    "{{ workload['__class__'] }}",
    "{{ cycler.__init__.__globals__.os.system('id') }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ range.__self__ }}",
    "{{ (0).__class__.__base__.__subclasses__() }}",
    "{{ fetch.results.append(1) }}",
    "{{ fetch.results.pop() }}",
    "{{ workload.update({'x': 1}) }}",
    "{{ self.__init__.__globals__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ config.__class__.__init__.__globals__ }}",
    "{{ request.application.__globals__.__builtins__ }}",
]


@pytest.mark.parametrize("payload", ESCAPES)
def test_known_sandbox_escapes_are_refused(payload):
    with pytest.raises(RenderError) as caught:
        render(payload, CONTEXT)
    assert any(
        word in caught.value.reason
        for word in ("unsafe", "sandbox", "undefined", "has no attribute")
    ), caught.value.reason
    assert CONTEXT["fetch"]["results"] == [{"a": 1}, {"a": 2}]


def test_syntax_errors_are_found_before_running():
    assert check_template("{{ a }}") is None
    assert "syntax error" in check_template("{{ a ")
    assert "syntax error" in check_template("{{ }}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("false", False),
        ("False", False),
        ("0", False),
        ("", False),
        ("no", False),
        ("yes", True),
        ([], False),
        ([0], True),
        (1, True),
    ],
)
def test_truthy(value, expected):
    assert truthy(value) is expected
