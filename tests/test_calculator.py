"""Tests for the hardened calculator: arithmetic, refusals, parse safety, cost, isolation."""

from __future__ import annotations

import ast
import contextlib
import inspect
import math
import os
import signal
import sys
import threading
import time

import pytest

from agentcli.errors import ToolError
from agentcli.tools import calculator, isolate
from agentcli.tools.calculator import CalculatorError, evaluate


def refusal(expression: str, **kwargs: float) -> str:
    """Evaluate ``expression``, expecting a CalculatorError; return its message."""
    with pytest.raises(CalculatorError) as caught:
        evaluate(expression, **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message and "\n" not in message and "Traceback" not in message
    return message


def isolated(job, **limits: float) -> str:
    return isolate.run_isolated(job, error=CalculatorError, **limits)  # type: ignore[arg-type]


@pytest.fixture
def no_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the calculator forks a worker."""
    def forbidden() -> int:
        raise AssertionError("this refusal should not need a worker process")
    monkeypatch.setattr(isolate.os, "fork", forbidden)


# --- ordinary arithmetic --------------------------------------------------------------------

@pytest.mark.parametrize(("expression", "expected"), [
    ("1+2*3", "7"), ("(1+2)*3", "9"), ("2**10", "1024"), ("-2**2", "-4"), ("2**3**2", "512"),
    ("2**-1", "0.5"), ("7/2", "3.5"), ("7//2", "3"), ("-7//2", "-4"), ("7%3", "1"),
    ("-7 % 3", "2"), ("17*23", "391"), ("+5", "5"), ("--5", "5"), ("1_000 + 0x10", "1016"),
    ("2**100", "1267650600228229401496703205376"), ("0.1+0.2", "0.30000000000000004"),
    ("1e3", "1000.0"), ("1/3", "0.3333333333333333"), ("10**-400", "0.0"), ("  6*7  ", "42"),
    ("(((((1+2)))))", "3"), ("2.5*4", "10.0"), ("7.5 // 2", "3.0"), ("5.5 % 2", "1.5"),
])
def test_arithmetic(expression: str, expected: str) -> None:
    assert evaluate(expression) == expected


@pytest.mark.parametrize(("expression", "expected"), [
    ("sqrt(16)", "4.0"), ("sqrt(2)**2", "2.0000000000000004"), ("exp(0)", "1.0"),
    ("log(e)", "1.0"), ("log(8, 2)", "3.0"), ("log10(1000)", "3.0"), ("log2(1024)", "10.0"),
    ("sin(0)", "0.0"), ("cos(pi)", "-1.0"), ("tan(0)", "0.0"), ("asin(1)", repr(math.pi / 2)),
    ("acos(1)", "0.0"), ("atan(0)", "0.0"), ("atan2(1, 1)*4", repr(math.pi)),
    ("sinh(0)", "0.0"), ("cosh(0)", "1.0"), ("tanh(0)", "0.0"), ("floor(2.7)", "2"),
    ("ceil(2.1)", "3"), ("floor(-2.5)", "-3"), ("fabs(-3)", "3.0"), ("abs(-3)", "3"),
    ("round(2.675, 2)", "2.67"), ("round(2.5)", "2"), ("round(1234, -2)", "1200"),
    ("min(3, 1, 2)", "1"), ("max(3, 1.5)", "3"), ("min(4)", "4"), ("hypot(3, 4)", "5.0"),
    ("hypot(3, 4, 12)", "13.0"), ("degrees(pi)", "180.0"), ("radians(180)", repr(math.pi)),
    ("factorial(20)", "2432902008176640000"), ("factorial(0)", "1"), ("gcd(12, 18)", "6"),
    ("gcd(12, 18, 8)", "2"), ("comb(5, 2)", "10"), ("comb(5, 7)", "0"), ("comb(100, 99)", "100"),
    ("perm(5, 2)", "20"), ("perm(5)", "120"), ("pow(2, 10)", "1024"), ("pow(2, 0.5)", repr(2**0.5)),
    ("pow(2, 10, 1000)", "24"), ("pow(3, -1, 7)", "5"),
    ("pi", repr(math.pi)), ("e", repr(math.e)), ("tau", repr(math.tau)), ("2*pi", repr(math.tau)),
])
def test_functions_and_constants(expression: str, expected: str) -> None:
    assert evaluate(expression) == expected


@pytest.mark.parametrize(("expression", "expected"), [
    ("1 < 2", "True"), ("2 == 3", "False"), ("1 < 2 < 3", "True"), ("3 >= 3 != 4", "True"),
    ("0.1 + 0.2 == 0.3", "False"), ("10**400 > 1e308", "True"), ("(1 < 2) + 1", "2"),
])
def test_comparisons(expression: str, expected: str) -> None:
    assert evaluate(expression) == expected


def test_error_type() -> None:
    assert issubclass(CalculatorError, ToolError)


# --- numbers only ---------------------------------------------------------------------------

@pytest.mark.parametrize(("expression", "phrase"), [
    ('"abc"', "strings are not supported"), ("'a' * 3", "strings are not supported"),
    ('b"x"', "strings are not supported"), ('f"{1}"', "strings are not supported"),
    ('"%0999999999d" % 1', "strings are not supported"),
    ('"".__class__', "attributes"), ('"a".ljust(10**9)', "attributes"), ("(1).real", "attributes"),
    ("pi.__class__.__mro__", "attributes"),
    ("[1, 2]", "lists, tuples"), ("(1, 2)", "lists, tuples"), ("1, 2", "lists, tuples"),
    ("{1: 2}", "dicts"), ("{1}", "sets"), ("[x for x in (1,)]", "comprehensions"),
    ("(x for x in (1,))", "comprehensions"), ("{x: 1 for x in (1,)}", "comprehensions"),
    ("lambda: 1", "lambda"), ("(lambda: 1)()", "can be called"), ("1[0]", "subscripts"),
    ("x = 1", "assignments"), ("x += 1", "assignments"), ("(x := 1)", "assignments"),
    ('1; __import__("os")', "only one expression"), ("1\n2", "only one expression"),
    ("import os", "statements are not supported"), ("del x", "statements are not supported"),
    ('__import__("os")', "unknown function '__import__'"),
    ("str(10**5000)", "unknown function 'str'"),
    ("eval('1')", "unknown function"), ("print(1)", "unknown function"), ("x", "unknown name 'x'"),
    ("__builtins__", "unknown name"), ("sqrt", "is a function"), ("inf", "infinity and nan"),
    ("nan", "infinity and nan"), ("True", "numbers only"), ("None", "numbers only"),
    ("...", "numbers only"), ("2j", "imaginary"), ("1e999", "too large"),
    ("1 << 10", "bitwise"), ("1 >> 1", "bitwise"), ("1 & 1", "bitwise"), ("1 | 1", "bitwise"),
    ("1 ^ 1", "bitwise"), ("~1", "bitwise"), ("1 and 2", "logical"), ("not 1", "logical"),
    ("1 if 1 else 2", "conditional"), ("1 @ 2", "@"), ("1 in 2", "comparisons"),
    ("1 is 1", "comparisons"), ("sqrt(x=4)", "keyword"), ("sqrt(*[4])", "unpacking"),
    ("sqrt(1, 2)", "sqrt takes 1 argument (2 given)"), ("min()", "at least 1 argument (0 given)"),
    ("log(1, 2, 3)", "1 or 2 arguments"), ("await x", "not supported"),
    ("(yield)", "not supported"),
    ("", "empty"), ("   ", "empty"), ("1 +", "invalid syntax"), ("a\x00", "null"),
])
def test_refused_with_a_clear_message(expression: str, phrase: str, no_fork: None) -> None:
    assert phrase in refusal(expression)


def test_non_text_is_refused() -> None:
    with pytest.raises(CalculatorError, match="must be text"):
        evaluate(12)  # type: ignore[arg-type]


@pytest.mark.parametrize(("expression", "phrase"), [
    ("factorial(2.5)", "whole numbers"), ("factorial(-1)", ">= 0"),
    ("gcd(1.5, 3)", "whole numbers"), ("comb(-1, 2)", ">= 0"),
    ("pow(2.0, 3, 5)", "whole numbers"), ("round(1.5, 0.5)", "whole numbers"),
    ("round(5, -10**9)", "at most 10,000 digits"), ("pow(2, 3, 0)", "invalid argument"),
])
def test_bad_arguments(expression: str, phrase: str) -> None:
    assert phrase in refusal(expression)


# --- parse safety ---------------------------------------------------------------------------

@pytest.mark.parametrize(("expression", "phrase"), [
    ("-" * 100_000 + "1", "too long"),
    ("+" * 2_000 + "1", "too long"),
    ("1+" * 2_000 + "1", "too long"),
    ("(" * 300 + "1" + ")" * 300, "too deeply nested"),
    ("(" * 10_000 + "1" + ")" * 10_000, "too long"),
    ("-" * 999 + "1", "too deeply nested"),
    ("(1+" * 100 + "1" + ")" * 100, "too deeply nested"),
    ("sqrt(" * 100 + "1" + ")" * 100, "too deeply nested"),
    ("1+" * 300 + "1", "too long: at most 600"),
    ("min(" + ",".join(["(1+2*3)"] * 124) + ")", "too long: at most 600"),
])
def test_parse_safety(expression: str, phrase: str, no_fork: None) -> None:
    assert phrase in refusal(expression)


@pytest.mark.parametrize(("expression", "expected"), [
    ("1+" * 299 + "1", "300"),
    ("1-" * 299 + "1", "-298"),
    ("+".join(["2*3"] * 120), "720"),
    ("2*" * 200 + "1", str(2 ** 200)),
    ("max(" + ",".join(["1"] * 300) + ")", "1"),
])
def test_long_flat_chains_are_not_nesting(expression: str, expected: str) -> None:
    """A chain of terms is one level deep, and is evaluated without one stack frame per term."""
    assert evaluate(expression) == expected


def test_long_chain_with_little_stack_left() -> None:
    """Even called deep in a stack, a 300-term sum evaluates (no RecursionError)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 120)
    try:
        assert evaluate("1+" * 299 + "1") == "300"
    finally:
        sys.setrecursionlimit(limit)


def test_long_literals() -> None:
    assert evaluate("9" * 1000) == "9" * 1000
    assert evaluate("9" * 996 + "**2") == digits(int("9" * 996) ** 2)
    assert "too long" in refusal("9" * 1001)


def test_nesting_below_the_caps_is_fine() -> None:
    assert evaluate("-" * 40 + "7") == "7"
    assert evaluate("(" * 150 + "7" + ")" * 150) == "7"
    assert evaluate("+".join(["1"] * 45)) == "45"


@pytest.mark.parametrize("error", [RecursionError, MemoryError, ValueError])
def test_parser_blowups_become_clean_errors(error: type[Exception],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def exploding_parse(*args: object, **kwargs: object) -> ast.AST:
        raise error("boom")
    monkeypatch.setattr(calculator.ast, "parse", exploding_parse)
    assert "parse" in refusal("1+1")


# --- cost estimation ------------------------------------------------------------------------

@pytest.mark.parametrize("expression", [
    "4000000**4000000", "10**4000000 * 10**4000000", "9**9**9**9", "2**33220", "10**10001",
    "(10**5000)**3", "10**6000 * 10**6000", "factorial(10**7)", "factorial(3300)",
    "factorial(3000) * factorial(3000)", "comb(10**6, 5*10**5)", "perm(10**6)",
    "perm(2**50, 2**49)", "comb(10**100, 10**99)", "pow(10, 10**6)", "2**factorial(20)",
    "(-3)**(10**9)", "2**2**2**2**2**2", "99999**99999 + 1",
])
def test_too_expensive_refused_fast_without_a_worker(expression: str, no_fork: None) -> None:
    start = time.perf_counter()
    message = refusal(expression)
    assert time.perf_counter() - start < 0.05
    assert "too expensive" in message and "digits" in message


def test_big_power_refusal_is_fast_in_real_use() -> None:
    start = time.perf_counter()
    for expression in ("4000000**4000000", "10**4000000 * 10**4000000", "9**9**9**9"):
        assert "too expensive" in refusal(expression)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("expression", [
    "floor(3.5) ** 10**6", "(10**6000 + 1) * (10**6000 + 1)", "abs(-10)**20000",
    "factorial(floor(3300.5))", "comb(floor(10**6 + 0.5), 500000)", "pow(floor(9.5), 10**6)",
])
def test_too_expensive_refused_by_the_worker(expression: str) -> None:
    start = time.perf_counter()
    assert "too expensive" in refusal(expression)
    assert time.perf_counter() - start < 0.5


def digits(n: int) -> str:
    """``str(n)`` past the interpreter's int-to-str limit."""
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return str(n)
    finally:
        sys.set_int_max_str_digits(old)


def test_results_up_to_the_cap_are_exact() -> None:
    assert evaluate("2**33219") == digits(2**33219)
    assert evaluate("10**5000 * 10**5000") == "1" + "0" * 10_000
    assert evaluate("factorial(3000)") == digits(math.factorial(3000))
    assert evaluate("comb(30000, 15000) % 1000000007") == str(math.comb(30000, 15000) % 1000000007)
    assert evaluate("10**999 // 7 % 1000") == str(10**999 // 7 % 1000)


def test_int_to_str_limit_never_surfaces() -> None:
    assert len(evaluate("10**4400")) == 4401  # above the default limit of 4300 digits
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        assert evaluate("10**1000 + 1") == "1" + "0" * 999 + "1"
        assert "too expensive" in refusal("10**20000")
    finally:
        sys.set_int_max_str_digits(old)


# --- results --------------------------------------------------------------------------------

@pytest.mark.parametrize(("expression", "phrase"), [
    ("1/0", "division by zero"), ("1//0", "division by zero"), ("1%0", "division by zero"),
    ("1.0/0.0", "division by zero"), ("0**-1", "division by zero"),
    ("log(2, 1)", "division by zero"),
    ("(-8)**0.5", "complex number"), ("pow(-8, 0.5)", "complex number"),
    ("1e308*10", "too large (overflows to infinity)"), ("1e308+1e308", "overflows to infinity"),
    ("exp(1000)", "overflows to infinity"), ("10.0**400", "overflows to infinity"),
    ("cosh(1000)", "overflows to infinity"), ("1e308 // 1e-10", "overflows to infinity"),
    ("10**400 / 3", "too large for floating-point"), ("sqrt(10**400)", "too large for floating"),
    ("(10**400)**-1", "too large for floating"), ("sqrt(-1)", "math domain error"),
    ("log(0)", "math domain error"), ("asin(2)", "math domain error"),
])
def test_failed_results(expression: str, phrase: str) -> None:
    assert phrase in refusal(expression)


def test_never_infinity_or_nan() -> None:
    with pytest.raises(CalculatorError, match="not a number"):
        calculator._checked(float("nan"))
    with pytest.raises(CalculatorError, match="overflows to infinity"):
        calculator._checked(float("-inf"))
    for expression in ("1e308*10", "-1e308*10", "exp(1000)", "1e308**2"):
        assert "inf" not in refusal(expression).replace("infinity", "")


# --- the worker -----------------------------------------------------------------------------

def test_slow_input_that_passes_the_static_checks_is_killed() -> None:
    start = time.perf_counter()
    message = refusal("pow(3, 10**9999, 10**9999 + 7)", timeout=0.3)
    assert "took too long" in message
    assert time.perf_counter() - start < 2


def test_timeout_kills_a_hung_job() -> None:
    start = time.perf_counter()
    with pytest.raises(CalculatorError, match="took too long"):
        isolated(lambda: str(time.sleep(30)), timeout=0.2, memory_mb=64)
    assert time.perf_counter() - start < 2


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="the cap needs Linux /proc")
def test_memory_limit_in_the_worker() -> None:
    with pytest.raises(CalculatorError, match="ran out of memory"):
        isolated(lambda: str(len(bytearray(4 << 30))), timeout=10, memory_mb=64)


def test_worker_that_dies_without_answering() -> None:
    def die() -> str:
        os.kill(os.getpid(), signal.SIGKILL)
        return "unreachable"
    with pytest.raises(CalculatorError, match="killed by signal 9"):
        isolated(die, timeout=5, memory_mb=64)


def test_worker_leaves_no_zombie() -> None:
    refusal("pow(3, 10**9999, 10**9999 + 7)", timeout=0.1)
    evaluate("1+1")
    with contextlib.suppress(ChildProcessError):  # raised when there are no children at all
        assert os.waitpid(-1, os.WNOHANG) == (0, 0)  # other children may run, none has exited


def test_evaluate_works_from_threads() -> None:
    results: dict[int, str] = {}

    def work(i: int) -> None:
        results[i] = evaluate(f"{i}**2 + sqrt(16)")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == {i: repr(i**2 + 4.0) for i in range(8)}


def test_timeout_works_from_a_thread() -> None:
    outcome: list[str] = []

    def work() -> None:
        try:
            evaluate("pow(3, 10**9999, 10**9999 + 7)", timeout=0.2)
        except CalculatorError as exc:
            outcome.append(str(exc))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(5)
    assert outcome and "took too long" in outcome[0]


def test_invalid_limits() -> None:
    with pytest.raises(ValueError):
        evaluate("1", timeout=0)
    with pytest.raises(ValueError):
        evaluate("1", memory_mb=0)
