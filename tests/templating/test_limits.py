"""Both shells (the engine renders the same way in `noetl run` and in the operator): what a
template may build and how much work it may do is bounded, and validation refuses a template
of constants that goes past the bounds."""

from __future__ import annotations

import pytest

from noetl.template_limits import MAX_OPERATIONS, MAX_SIZE
from noetl.templating import RenderError, check_template, render

CONTEXT = {"workload": {"n": 3, "text": "x" * 1000, "word": "ab"}}


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ (9 ** (9 ** 8)) % 7 }}", "an integer of more than 4,096 bits"),
        ("{{ 2 ** 5000 }}", "an integer of more than 4,096 bits"),
        ("{{ (2 ** 4000) * (2 ** 4000) }}", "an integer of more than 4,096 bits"),
        ("{{ ('x' * 600000000) | length }}", "a repeated value of at least 600,000,000"),
        ("{{ 600000000 * 'x' }}", "a repeated value of at least 600,000,000"),
        ("{{ [0] * 10 ** 7 }}", "a repeated value of at least 10,000,000"),
        ("{{ (['x' * 100000] * 20) * 1 }}", "a repeated value of at least 2,000,020"),
        ("{{ workload.text * 2000 }}", "a repeated value of at least 2,000,000"),
        ("{{ '%0999999999d' % 1 }}", "a formatted field of at least 999,999,999"),
        ("{{ '%*d' % (999999999, 1) }}", "a '%' format with a '*' width"),
        ("{{ '%0999999999d' | format(1) }}", "a formatted field of at least 999,999,999"),
        ("{{ '{:>999999999}'.format(1) }}", "a formatted field of at least 999,999,999"),
        ("{{ '{:{}}'.format(1, 999999999) }}", "a format field whose width is itself a field"),
        ("{{ 'x'.ljust(10 ** 9) }}", "the result of ljust of at least 1,000,000,000"),
        ("{{ 'x'.zfill(10 ** 9) }}", "the result of zfill of at least 1,000,000,000"),
        ("{{ 'x' | center(10 ** 9) }}", "the result of center of at least 1,000,000,000"),
        ("{{ 'a\nb' | indent(10 ** 9) }}", "the result of indent of at least 2,000,000,003"),
        ("{{ [1] | batch(10 ** 9) | list }}", "a batch of at least 1,000,000,000"),
        ("{{ [1] | slice(10 ** 9) | list }}", "a slice count of at least 1,000,000,000"),
        ("{{ range(100000) | join('x' * 100) }}", "a joined string of at least 10,100,000"),
        ("{{ ('y' * 1000).join(range(100000)) }}", "a joined string of at least 100,100,000"),
        (
            "{{ workload.text | replace('x', 'y' * 10000) }}",
            "replaced string of at least 10,000,000",
        ),
        ("{{ workload.text.replace('x', 'y' * 10000) }}", "replaced string of at least 10,000,000"),
        ("{{ [[1]] * 3 | sum(start=[]) }}", "sum adds numbers"),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
            "a concatenation of at least 1,048,576",
        ),
        (
            "{% set ns = namespace(s=['x']) %}{% for i in range(40) %}"
            "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}",
            "a concatenation of at least 1,048,576",
        ),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            f"more than {MAX_OPERATIONS:,} units of work",
        ),
        (
            "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
            "{{ f(40) }}",
            f"more than {MAX_OPERATIONS:,} units of work",
        ),
        (
            "{% for i in range(20) %}{{ 'x' * 999999 }}{% endfor %}",
            "renders to more than 10,000,000 characters",
        ),
    ],
)
def test_what_would_exhaust_the_process_is_a_template_error(template, reason):
    with pytest.raises(RenderError) as caught:
        render(template, CONTEXT)
    assert caught.value.expression == template
    assert caught.value.reason.startswith("over the template limits: ")
    assert reason in caught.value.reason


BIG = "{% set s = 'x' * 999999 %}"


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        (BIG + "{{ [" + "s, " * 11 + "s] | string | length }}", "a value of more than 10,000,000"),
        (BIG + "{{ {'a': s, 'b': [" + "s, " * 11 + "]} }}", "a value of more than 10,000,000"),
        (BIG + "{{ (" + "s, " * 11 + "s) }}", "a value of more than 10,000,000"),
        (
            "{{ dict.fromkeys(range(100000), 'x' * 999999) | length }}",
            "more than 20,000,000 characters and items built",
        ),
        (
            "{{ range(1000) | map('replace', '0', 'x' * 499999) | list | length }}",
            "more than 20,000,000 characters and items built",
        ),
        (
            BIG + "{% for i in range(30) %}{% set t = s | upper %}{% endfor %}",
            "more than 20,000,000 characters and items built",
        ),
        (BIG + "{{ '%s%s' % (s, s) }}", "the values formatted of at least 1,000,001"),
        (BIG + "{{ '{}'.format([" + "s, " * 11 + "]) }}", "a value of more than 10,000,000"),
    ],
)
def test_many_values_within_bounds_do_not_add_up_past_them(template, reason):
    with pytest.raises(RenderError) as caught:
        render(template, CONTEXT)
    assert reason in caught.value.reason


def test_tuple_targets_still_unpack():
    template = (
        "{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }},{% endfor %}{% set x, y = 5, 6 %}{{ y }}"
    )
    assert render(template, CONTEXT) == "3,7,6"


def test_lipsum_is_not_offered():
    with pytest.raises(RenderError, match="'lipsum' is undefined"):
        render("{{ lipsum(n=10 ** 9) }}", CONTEXT)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ 2 ** 100 }}", 2**100),
        ("{{ 2 ** -1 }}", 0.5),
        ("{{ 1.5 ** 2 }}", 2.25),
        ("{{ 'ab' * 3 }}", "ababab"),
        ("{{ [1, 2] * 2 }}", [1, 2, 1, 2]),
        ("{{ 'x' * -1 }}", ""),
        ("{{ 'a' + 'b' }}", "ab"),
        ("{{ [1] + [2] }}", [1, 2]),
        ("{{ 7 % 3 }}", 1),
        ("{{ '%s-%05d' % ('a', 7) }}", "a-00007"),
        ("{{ '%s' | format('x') }}", "x"),
        ("{{ '{:>4}'.format(1) }}", "   1"),
        ("{{ 'x'.ljust(3) }}", "x  "),
        ("{{ 'x' ~ workload.n ~ 'y' }}", "x3y"),
        ("{{ range(3) | join(',') }}", "0,1,2"),
        ("{{ (range(100000) | join(',')) | length }}", 588889),
        ("{{ [1, 2, 3] | sum }}", 6),
        ("{{ 'a\nb' | indent(2, first=true) }}", "  a\n  b"),
        ("{{ 'ab' | center(6) }}", "  ab  "),
        ("{{ workload.word | replace('a', 'zz') }}", "zzb"),
        ("{% for i in range(3) %}{{ loop.index }}{% endfor %}", "123"),
        ("{{ ('x' * (MAX - 1)) | length }}".replace("MAX", str(MAX_SIZE)), MAX_SIZE - 1),
    ],
)
def test_ordinary_arithmetic_and_filters_still_work(template, expected):
    assert render(template, CONTEXT) == expected


def test_the_operation_budget_is_per_render():
    spin = "{% for i in range(100000) %}{% endfor %}done"
    for _ in range(20):  # 2,000,000 iterations in all, 100,000 in each render
        assert render(spin, CONTEXT) == "done"


@pytest.mark.parametrize(
    "template",
    [
        "{{ (9 ** (9 ** 8)) % 7 }}",
        "echo {{ ('x' * 600000000) | length }}",
        "{{ range(10) | join('x' * 10 ** 6) }}",
    ],
)
def test_validation_refuses_constant_templates_past_the_limits(template):
    problem = check_template(template)
    assert problem is not None
    assert problem.startswith("template error: over the template limits: ")


def test_validation_leaves_templates_that_read_data_to_run_time():
    assert check_template("{{ workload.n ** 9999 }}") is None
    assert check_template("{{ 2 ** 10 }}") is None


RESULT = {  # a large result of an earlier step
    "fetch": {
        "result": list(range(10_000)),
        "text": "y" * MAX_SIZE,
        "by_id": {str(n): n for n in range(10_000)},
    }
}


@pytest.mark.parametrize(
    "template",
    [
        "{% for a in fetch.result %}{% for b in fetch.result %}{% for c in fetch.result %}"
        "{% endfor %}{% endfor %}{% endfor %}",
        "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}",
        "{% for a in fetch.result recursive %}{% if loop.depth < 3 %}{{ loop(fetch.result) }}"
        "{% endif %}{% endfor %}",
        "{% for a in fetch.result %}{{ fetch.result | sort | first }}{% endfor %}",
        "{% for a in fetch.result %}{{ fetch.result | select('odd') | list | length }}{% endfor %}",
        "{% for a in fetch.result %}{{ fetch.result | unique | list | length }}{% endfor %}",
        "{% for a in fetch.result %}{% for b in range(99) %}{{ a in fetch.result }}"
        "{% endfor %}{% endfor %}",
        "{% for a in range(100000) %}{{ 'z' not in fetch.text }}{% endfor %}",
    ],
    ids=[
        "nested-for",
        "nested-range",
        "recursive-loop",
        "sort",
        "select",
        "unique",
        "in",
        "in-text",
    ],
)
def test_loops_over_a_large_result_spend_one_budget_of_work(template):
    with pytest.raises(RenderError) as caught:
        render(template, RESULT)
    assert caught.value.expression == template
    assert caught.value.reason.startswith(
        f"over the template limits: more than {MAX_OPERATIONS:,} units of work"
    )


def test_reading_a_large_result_once_or_a_mapping_or_length_per_item_is_within_the_budget():
    template = (
        "{% for a in fetch.result %}{{ loop.index }}/{{ fetch.result | length }} {% endfor %}"
        "{{ fetch.result | sort | unique | list | length }}"
        "{% for a in fetch.result if a | string in fetch.by_id and a not in [1, 2] %}"
        "{% if loop.last %} {{ loop.length }}{% endif %}{% endfor %}"
    )
    rendered = render(template, RESULT)
    assert rendered.startswith("1/10000 2/10000") and rendered.endswith("10000/10000 10000 9998")
