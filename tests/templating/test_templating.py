"""Templates: types kept, the filters users expect, errors that say what is wrong, a sandbox."""

from __future__ import annotations

import pytest

from noetl.templating import RenderError, check_template, render, render_workload, truthy

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


LOOKUP_CONTEXT = {
    "workload": {"items": [1, 2], "keys": "k", "values": "v", "get": "g", "copy": "c"},
    "fetch": {"items": [{"id": 1}], "update": "u", "pop": "p"},
    "plain": {"a": 1},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ workload.items }}", [1, 2]),
        ("{{ workload.keys }}", "k"),
        ("{{ workload.values }}", "v"),
        ("{{ workload.get }}", "g"),
        ("{{ workload.copy }}", "c"),
        ("{{ fetch.items[0].id }}", 1),
        ("{{ fetch.update }}", "u"),
        ("{{ fetch.pop }}", "p"),
        ("{% for row in fetch.items %}{{ row.id }}{% endfor %}", "1"),
        ("{{ workload['items'] }}", [1, 2]),
        # Without such a key the method is still there, and filters work as ever.
        ("{{ plain.get('a') }}", 1),
        ("{{ plain.get('b', 0) }}", 0),
        ("{{ plain.items() | list }}", [("a", 1)]),
        ("{{ plain | dictsort }}", [("a", 1)]),
        ("{{ workload | length }}", 5),
    ],
)
def test_a_mapping_key_comes_before_a_method_of_the_same_name(template, expected):
    assert render(template, LOOKUP_CONTEXT) == expected


def test_mutating_methods_stay_refused_when_no_key_hides_them():
    with pytest.raises(RenderError, match="unsafe"):
        render("{{ plain.update({'a': 2}) }}", LOOKUP_CONTEXT)
    assert LOOKUP_CONTEXT["plain"] == {"a": 1}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('n=${#arr[@]}; echo "{{ workload.n }} $n"', 'n=${#arr[@]}; echo "3 $n"'),
        ("{# not a comment #}{{ workload.n }}", "{# not a comment #}3"),
        ("echo ${#x} {{ workload.n }} ${#y}", "echo ${#x} 3 ${#y}"),
    ],
)
def test_hash_brace_is_text_not_a_comment(template, expected):
    assert render(template, CONTEXT) == expected


def test_workload_templates_render_once_with_the_execution():
    workload = {"run": "run-{{ execution.id }}", "nested": [{"at": "{{ execution.name }}"}], "n": 1}
    assert render_workload(workload, {"id": "42", "name": "ex"}) == {
        "run": "run-42",
        "nested": [{"at": "ex"}],
        "n": 1,
    }


def test_a_workload_template_that_fails_names_its_key():
    with pytest.raises(RenderError) as caught:
        render_workload({"a": {"b": ["ok", "{{ nope }}"]}}, {"id": "42"})
    assert str(caught.value) == ("workload.a.b[1]: template '{{ nope }}': 'nope' is undefined")
