"""The python plugin: user code in a fresh namespace, `main(**args)` or an assigned `result`."""

from __future__ import annotations

from dataclasses import replace

from noetl.plugins import python
from noetl.plugins.runtime import Outcome, execute
from tests.plugins import step


def run_code(code: str, **args: object) -> Outcome:
    return execute(python.run, step("python", dict(args), code=code))


def test_main_gets_the_args_as_keywords() -> None:
    outcome = run_code("def main(a, b=10):\n    return {'sum': a + b}\n", a=1, b=2)
    assert outcome == Outcome(ok=True, result={"sum": 3})


def test_async_main_is_awaited() -> None:
    code = "import asyncio\nasync def main(n):\n    await asyncio.sleep(0)\n    return n * 2\n"
    assert run_code(code, n=21).result == 42


def test_assigned_result_without_main() -> None:
    assert run_code("result = [x * x for x in args['xs']]", xs=[1, 2, 3]).result == [1, 4, 9]


def test_neither_main_nor_result_gives_none() -> None:
    assert run_code("x = 1") == Outcome(ok=True, result=None)


def test_an_exception_names_its_type_message_and_line() -> None:
    code = "def main():\n    values = {}\n    return values['missing']\n"
    outcome = run_code(code)
    assert replace(outcome, log=None) == Outcome(ok=False, error="KeyError: 'missing' (line 3)")
    assert outcome.log is not None and outcome.log.endswith("KeyError: 'missing'")  # traceback


def test_an_exception_at_module_level() -> None:
    assert run_code("x = 1\ny = x / 0\n").error == "ZeroDivisionError: division by zero (line 2)"


def test_a_syntax_error_names_its_line() -> None:
    assert run_code("x = 1\nif x\n    pass\n").error == "SyntaxError: expected ':' (line 2)"


def test_sys_exit_fails_the_step() -> None:
    assert run_code("import sys\nsys.exit(4)\n").error == "SystemExit: 4 (line 2)"


def test_wrong_arguments_to_main() -> None:
    outcome = run_code("def main(a):\n    return a\n", b=1)
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error.startswith("TypeError: main() got an unexpected keyword argument 'b'")


def test_each_run_gets_a_fresh_namespace() -> None:
    run_code("leftover = 1")
    assert run_code("result = 'leftover' in globals()").result is False


def test_a_result_that_is_not_json_fails_clearly() -> None:
    outcome = run_code("result = {1, 2}")
    assert not outcome.ok
    assert outcome.error == (
        "the step's result is not JSON-serialisable: Object of type set is not JSON serializable"
    )


def test_code_is_required() -> None:
    assert run_code("").error == "a python step needs its source in the step's `code` field"
