"""The hardened calculator behind the built-in ``calculator`` tool.

This module owns the path from an untrusted expression to a number as text or a
one-line ``CalculatorError``: static checks in the caller (length, syntax, node
types, count, depth, and a cost pass sizing every ``*``, ``**``, ``factorial``,
``comb`` and ``perm`` result from bit lengths); evaluation with simpleeval on
numbers only, through wrappers that repeat the cost checks on the real values;
and a forked worker with an address-space cap, SIGKILLed at the timeout (no
signals in the caller, so any thread works). No ``inf``/``nan`` constants exist
and float results must be finite; complex results are refused, not rendered.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any, cast

from simpleeval import SimpleEval

from ..errors import ToolError
from .isolate import run_isolated

__all__ = ["CalculatorError", "evaluate"]

Number = int | float

MAX_CHARS = 1_000
MAX_NODES = 600  # numbers, names and operations: a sum of 300 terms
MAX_DEPTH = 50  # nesting levels; a chain such as 1+2-3+... is one level
MAX_DIGITS = 10_000
MAX_BITS = 33_220  # the bit length of the largest 10,000-digit integer
SMALL_BITS = 4_096  # the cost pass computes integers up to this size exactly

NUMBERS_ONLY = "the calculator works on numbers only"
OVERFLOW = "the result is too large (overflows to infinity)"
_STRINGS = f"strings are not supported here: {NUMBERS_ONLY}"
_ASSIGN = "assignments (x = 1) are not supported: write one expression, such as 2*(3+4)"
_BITWISE = "bitwise operators (<<, >>, &, |, ^, ~) are not supported"
_LOGICAL = "logical operators (and, or, not) are not supported"


class CalculatorError(ToolError):
    """The expression was refused or failed; the message is one line for the model."""


class _Big(float):
    """A value the cost pass tracks by size: about its bit length as an integer (0: unknown)."""


def _clip(text: str, limit: int = 60) -> str:
    """Return ``text`` on one line, shortened to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _show(value: object) -> str:
    """Describe a value for a message without turning a huge integer into text."""
    if isinstance(value, _Big):
        return f"a number of about {value * math.log10(2):,.0f} digits"
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a {value.bit_length() * math.log10(2):,.0f}-digit integer"
    return repr(value)


def _check_bits(bits: float, what: str) -> float:
    """Refuse a result of about ``bits`` bits beyond the cap; otherwise return ``bits``."""
    if bits > MAX_BITS:
        digits = (f"about {math.ceil(bits * math.log10(2)):,}" if bits < 1e15
                  else "astronomically many")
        raise CalculatorError(f"too expensive: {what} would have {digits} digits "
                              f"(the limit is about {MAX_DIGITS:,})")
    return bits


def _checked(value: object) -> Number:
    """Return ``value`` if it is a finite real number of acceptable size, else refuse it."""
    if isinstance(value, complex):
        raise CalculatorError("the result is a complex number (such as a fractional power of a "
                              "negative number): the calculator works on real numbers only")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError(OVERFLOW if math.isinf(value) else
                              "the result is not a number (nan), which is not supported")
    if isinstance(value, int):
        _check_bits(value.bit_length(), "the result")
    elif not isinstance(value, float):
        raise CalculatorError(f"a {type(value).__name__} is not supported here: {NUMBERS_ONLY}")
    return value


def _cost_bits(op: type, a: Number, b: Number) -> float | None:
    """Estimate the bit length of the integer ``a op b`` (values or ``_Big`` sizes).

    ``a ** b`` has about ``b * log2(|a|)`` bits, ``a * b`` the sum of both. None:
    nothing to check (floats, other operators, exponents < 1, bases -1, 0 and 1).
    """
    if type(a) is float or type(b) is float or op not in (ast.Mult, ast.Pow):
        return None
    a_bits = float(a) if isinstance(a, _Big) else cast(int, a).bit_length()
    if op is ast.Mult:
        return a_bits + (float(b) if isinstance(b, _Big) else cast(int, b).bit_length()) - 1
    if isinstance(b, _Big):  # b is at least 2 ** (bits - 1)
        exponent = 2.0 ** min(b - 1.0, 1000.0) if b >= 1 else 0.0
    else:
        exponent = float(min(b, 1 << 1000))
    base = max(a - 1.0, 0.0) if isinstance(a, _Big) else math.log2(abs(a)) if abs(a) >= 2 else 0
    return math.floor(exponent * base) + 1.0 if exponent >= 1 and base > 0 else None


def _binary(op: type, compute: Callable[[Number, Number], Number],
            symbol: str) -> Callable[[Number, Number], Number]:
    """Wrap a binary operator with the cost check before and the result check after."""
    def apply(a: Number, b: Number) -> Number:
        bits = _cost_bits(op, a, b)
        if bits is not None:
            _check_bits(bits, f"{_show(a)} {symbol} {_show(b)}")
        return _checked(compute(a, b))
    return apply


_ARITHMETIC: dict[type, tuple[Callable[[Number, Number], Number], str]] = {
    ast.Add: (operator.add, "+"), ast.Sub: (operator.sub, "-"), ast.Mult: (operator.mul, "*"),
    ast.Div: (operator.truediv, "/"), ast.FloorDiv: (operator.floordiv, "//"),
    ast.Mod: (operator.mod, "%"), ast.Pow: (operator.pow, "**"),
}
_OPERATORS: dict[type, Callable[..., Number]] = {
    op: _binary(op, fn, symbol) for op, (fn, symbol) in _ARITHMETIC.items()}
_OPERATORS.update({
    ast.USub: lambda a: _checked(-a), ast.UAdd: lambda a: _checked(+a),
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
    ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
})


def _need_int(name: str, value: Number, minimum: int | None = None) -> int:
    """Return ``value`` as an int, refusing floats and values below ``minimum``."""
    if not isinstance(value, int):
        raise CalculatorError(f"{name} needs whole numbers (integers), not {_show(value)}")
    if minimum is not None and value < minimum:
        raise CalculatorError(f"{name} needs integers >= {minimum}, not {_show(value)}")
    return int(value)


def _falling_bits(n: int, k: int) -> float:
    """Return about log2(n * (n-1) * ... * (n-k+1)) for 0 <= k <= n."""
    if n < 1 << 40:  # lgamma is precise enough here
        return (math.lgamma(n + 1) - math.lgamma(n - k + 1)) / math.log(2)
    if k.bit_length() > 60:
        return math.inf
    m = min(k, n // 2)  # the top m factors are all at least n - m + 1
    return m * math.log2(n - m + 1)


def _count_bits(name: str, n: Number, k: Number | None = None) -> float:
    """Check the size of factorial(n), comb(n, k) or perm(n, k); return its bit length."""
    n = _need_int(name, n, 0)
    k = n if k is None else _need_int(name, k, 0)
    if k > n:
        return 0.0
    low = min(k, n - k)
    if name == "comb":
        bits = math.inf if low >> 60 else _falling_bits(n, low) - _falling_bits(low, low)
    else:
        bits = _falling_bits(n, k)
    what = f"factorial({_show(n)})" if name == "factorial" else f"{name}({_show(n)}, {_show(k)})"
    return _check_bits(bits + 1, what)


def _counting(name: str) -> Callable[..., int]:
    """Return math.factorial, math.comb or math.perm preceded by its size check."""
    def call(*args: Number) -> int:
        _count_bits(name, *args)
        return cast(int, getattr(math, name)(*args))
    return call


def _round(x: Number, ndigits: Number | None = None) -> Number:
    """round() with the digits capped (``round(5, -10**9)`` would build 10**10**9)."""
    if ndigits is None:
        return round(x)
    places = _need_int("round", ndigits)
    if abs(places) > MAX_DIGITS:
        raise CalculatorError(f"round takes at most {MAX_DIGITS:,} digits, not {_show(places)}")
    return round(x, places)


def _power(a: Number, b: Number, modulus: Number | None = None) -> Number:
    """pow(a, b) with the cost check of ``**``, or modular pow(a, b, m) on integers.

    The modular form is small in size but not always in time (a 10,000-digit
    exponent and modulus take about a minute): the worker's timeout bounds it.
    """
    if modulus is None:
        return _OPERATORS[ast.Pow](a, b)
    return pow(*(_need_int("pow with a modulus", v) for v in (a, b, modulus)))


_ONE_ARG = ("sqrt", "exp", "log10", "log2", "sin", "cos", "tan", "asin", "acos", "atan",
            "sinh", "cosh", "tanh", "floor", "ceil", "fabs", "degrees", "radians")
_FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int | None]] = {
    name: (lambda *args, fn=fn: _checked(fn(*args)), low, high)
    for name, (fn, low, high) in {
        **{name: (getattr(math, name), 1, 1) for name in _ONE_ARG},
        "log": (math.log, 1, 2), "atan2": (math.atan2, 2, 2), "hypot": (math.hypot, 1, None),
        "abs": (abs, 1, 1), "round": (_round, 1, 2), "pow": (_power, 2, 3),
        "min": (lambda *args: min(args), 1, None), "max": (lambda *args: max(args), 1, None),
        "factorial": (_counting("factorial"), 1, 1), "comb": (_counting("comb"), 2, 2),
        "perm": (_counting("perm"), 1, 2),
        "gcd": (lambda *args: math.gcd(*(_need_int("gcd", a) for a in args)), 1, None),
    }.items()}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}

_CONTAINERS = f"lists, tuples, sets and dicts are not supported: {NUMBERS_ONLY}"
_LOOPS = f"comprehensions are not supported: {NUMBERS_ONLY}"
_SUBSCRIPTS = f"subscripts (x[i]) are not supported: {NUMBERS_ONLY}"
_REFUSED: dict[type, str] = {
    ast.JoinedStr: _STRINGS, ast.FormattedValue: _STRINGS,
    ast.Attribute: f"attributes and methods (x.name) are not supported: {NUMBERS_ONLY}",
    ast.Subscript: _SUBSCRIPTS, ast.Slice: _SUBSCRIPTS,
    ast.List: _CONTAINERS, ast.Tuple: _CONTAINERS, ast.Set: _CONTAINERS, ast.Dict: _CONTAINERS,
    ast.ListComp: _LOOPS, ast.SetComp: _LOOPS, ast.DictComp: _LOOPS, ast.GeneratorExp: _LOOPS,
    ast.Lambda: f"lambda functions are not supported: {NUMBERS_ONLY}",
    ast.NamedExpr: _ASSIGN, ast.BoolOp: _LOGICAL,
    ast.IfExp: "conditional expressions (a if c else b) are not supported",
    ast.Starred: "unpacking with * is not supported: pass the numbers directly",
    ast.LShift: _BITWISE, ast.RShift: _BITWISE, ast.BitAnd: _BITWISE, ast.BitOr: _BITWISE,
    ast.BitXor: _BITWISE, ast.Invert: _BITWISE, ast.Not: _LOGICAL,
    ast.MatMult: "the matrix operator @ is not supported",
}


def _parse(expression: object) -> ast.Expression:
    """Check the length, then parse one expression without letting the parser blow up."""
    if not isinstance(expression, str):
        raise CalculatorError('the expression must be text, such as "2*(3+4)"')
    if len(expression) > MAX_CHARS:
        raise CalculatorError(f"the expression is too long ({len(expression):,} characters; "
                              f"the limit is {MAX_CHARS:,})")
    text = expression.strip()
    if not text:
        raise CalculatorError("the expression is empty")
    try:
        return ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(_syntax_message(text, exc)) from None
    except (RecursionError, MemoryError):
        raise CalculatorError("the expression is too deeply nested to parse") from None
    except ValueError as exc:
        raise CalculatorError(f"the expression cannot be parsed: {_clip(str(exc))}") from None


def _syntax_message(text: str, exc: SyntaxError) -> str:
    """Explain a syntax error, recognising statements and assignments."""
    if "nested" in (exc.msg or ""):
        return "the expression is too deeply nested (too many parentheses)"
    try:
        body = ast.parse(text, mode="exec").body
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        detail = "" if exc.msg in (None, "invalid syntax") else f" ({_clip(exc.msg)})"
        return f"invalid syntax{detail}: write one arithmetic expression, such as 2*(3+4)"
    if any(isinstance(s, (ast.Assign, ast.AugAssign, ast.AnnAssign)) for s in body):
        return _ASSIGN
    if len(body) > 1:
        return "only one expression is allowed: statements separated by ';' are not supported"
    return "statements are not supported: write one expression, such as 2*(3+4)"


def _operands(node: ast.AST) -> list[ast.expr]:
    """Return the sub-expressions of an allowed node."""
    if isinstance(node, ast.BinOp):
        return [node.left, node.right]
    if isinstance(node, ast.UnaryOp):
        return [node.operand]
    if isinstance(node, ast.Compare):
        return [node.left, *node.comparators]
    return list(node.args) if isinstance(node, ast.Call) else []


_GROUPS: dict[type, int] = {ast.Add: 1, ast.Sub: 1, ast.Mult: 2, ast.Div: 2,
                            ast.FloorDiv: 2, ast.Mod: 2}
"""Left-associative operators of one precedence level: a chain of them is one level."""


def _children(node: ast.AST, depth: int) -> list[tuple[ast.expr, int]]:
    """The sub-expressions of ``node`` with their nesting depth.

    Python parses ``1+2-3`` as ``(1+2)-3``; the left operand of a chain of
    operators of the same precedence stays on the chain's level, so a long sum
    is one level deep and only parentheses, calls and unary signs nest.
    """
    children = [(child, depth + 1) for child in _operands(node)]
    if (isinstance(node, ast.BinOp) and isinstance(node.left, ast.BinOp)
            and _GROUPS.get(type(node.op), 0) == _GROUPS.get(type(node.left.op), -1)):
        children[0] = (node.left, depth)
    return children


def _check_shape(tree: ast.Expression) -> None:
    """Walk the tree without recursion, capping node count and nesting, checking each node."""
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise CalculatorError(f"the expression is too long: at most {MAX_NODES} numbers, "
                                  f"names and operations (a sum of {MAX_NODES // 2} terms)")
        if depth > MAX_DEPTH:
            raise CalculatorError(f"the expression is too deeply nested (over {MAX_DEPTH} "
                                  "levels of parentheses, function calls or signs)")
        _check_node(node)
        stack.extend(_children(node, depth))


def _check_node(node: ast.AST) -> None:
    """Refuse ``node`` unless it is a number, a constant, arithmetic or a known function call."""
    if type(node) in _REFUSED:
        raise CalculatorError(_REFUSED[type(node)])
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (str, bytes)):
            raise CalculatorError(_STRINGS)
        if isinstance(node.value, complex):
            raise CalculatorError("imaginary numbers (such as 2j) are not supported: "
                                  "the calculator works on real numbers only")
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise CalculatorError(f"{node.value!r} is not supported here: {NUMBERS_ONLY}")
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise CalculatorError("a number in the expression is too large (overflows to infinity)")
    elif isinstance(node, ast.Name):
        if node.id in _FUNCTIONS:
            raise CalculatorError(f"{node.id} is a function: call it, such as {node.id}(2)")
        if node.id.lower() in ("inf", "infinity", "nan"):
            raise CalculatorError("infinity and nan are not supported: results are finite numbers")
        if node.id not in _CONSTANTS:
            raise CalculatorError(f"unknown name {_clip(node.id)!r}: "
                                  "the only constants are pi, e and tau")
    elif isinstance(node, ast.Call):
        _check_call(node)
    elif isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Compare)):
        for op in node.ops if isinstance(node, ast.Compare) else [node.op]:
            if type(op) not in _OPERATORS:
                raise CalculatorError(_REFUSED.get(
                    type(op), "only the comparisons <, <=, >, >=, == and != are supported"))
    else:
        raise CalculatorError(f"{type(node).__name__} is not supported: {NUMBERS_ONLY}")


def _check_call(node: ast.Call) -> None:
    """Allow calls of known functions, by name, with positional arguments of the right count."""
    if isinstance(node.func, ast.Attribute):
        raise CalculatorError(_REFUSED[ast.Attribute])
    if not isinstance(node.func, ast.Name):
        raise CalculatorError("only the calculator's functions can be called, by name: sqrt(2)")
    name = node.func.id
    if name not in _FUNCTIONS:
        raise CalculatorError(f"unknown function {_clip(name)!r}: the functions available are "
                              + ", ".join(sorted(_FUNCTIONS)))
    if node.keywords:
        raise CalculatorError("keyword arguments are not supported: pass arguments by position, "
                              "such as round(x, 2)")
    _, low, high = _FUNCTIONS[name]
    given = len(node.args)
    if given < low or (high is not None and given > high):
        count = f"at least {low}" if high is None else f"{low} or {high}" if high > low else low
        plural = "" if (high or low) == 1 else "s"
        raise CalculatorError(f"{name} takes {count} argument{plural} ({given} given)")


def _apply(function: Callable[..., Number], *args: Number) -> Number:
    """Call ``function`` for the cost pass, turning any failure into a CalculatorError."""
    try:
        return function(*args)
    except CalculatorError:
        raise
    except Exception as exc:
        raise CalculatorError(_describe(exc)) from None


def _left_spine(node: ast.BinOp) -> tuple[ast.expr, list[ast.BinOp]]:
    """The leftmost operand under ``node`` and the operations above it, innermost first.

    ``1+2+...+n`` is a left-deep tree as tall as it is long; walking its left
    spine in a loop keeps the stack flat however many terms it has.
    """
    chain: list[ast.BinOp] = []
    current: ast.expr = node
    while isinstance(current, ast.BinOp):
        chain.append(current)
        current = current.left
    chain.reverse()
    return current, chain


def _estimate(node: ast.expr) -> Number:
    """The cost pass: compute small values, track big ones as ``_Big``, refuse the too big."""
    if isinstance(node, ast.Constant):
        return cast(Number, node.value)
    if isinstance(node, ast.Name):
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp):
        value = _estimate(node.operand)
        return value if isinstance(value, _Big) else _apply(_OPERATORS[type(node.op)], value)
    if isinstance(node, ast.BinOp):
        first, chain = _left_spine(node)
        value = _estimate(first)
        for link in chain:
            value = _estimate_binop(type(link.op), value, _estimate(link.right))
        return value
    args = [_estimate(child) for child in _operands(node)]
    if not isinstance(node, ast.Call):  # a comparison: only its operands can be expensive
        return _Big(0)
    name = cast(ast.Name, node.func).id
    if name == "pow" and len(args) == 2:
        return _estimate_binop(ast.Pow, args[0], args[1])
    if name not in ("factorial", "comb", "perm") or any(isinstance(a, _Big) for a in args):
        return _Big(0)
    return _Big(_count_bits(name, *args))


def _estimate_binop(op: type, a: Number, b: Number) -> Number:
    """Compute ``a op b`` if it is small, else refuse it or return its size."""
    bits = _cost_bits(op, a, b)
    if not isinstance(a, _Big) and not isinstance(b, _Big) and (bits or 0) <= SMALL_BITS:
        return _apply(_OPERATORS[op], a, b)
    if bits is None:
        return _Big(0)
    return _Big(_check_bits(bits, f"{_show(a)} {_ARITHMETIC[op][1]} {_show(b)}"))


_EXCEPTIONS: tuple[tuple[type[BaseException], str, str], ...] = (
    (ZeroDivisionError, "", "division by zero"),
    (OverflowError, "float", "a number is too large for floating-point arithmetic (floats stop "
                             "near 1.8e308); use integer operations such as // instead"),
    (OverflowError, "", OVERFLOW),
    (ValueError, "domain", "math domain error: an argument is outside the function's domain "
                           "(such as sqrt or log of a negative number)"),
    (MemoryError, "", "the calculation ran out of memory"),
)


def _describe(exc: BaseException) -> str:
    """Turn an exception raised while evaluating into a one-line message."""
    text = _clip(str(exc), 200)
    if isinstance(exc, CalculatorError):
        return text
    for kind, needle, message in _EXCEPTIONS:
        if isinstance(exc, kind) and needle in text:
            return message
    if isinstance(exc, (ValueError, TypeError)):
        return f"invalid argument: {text}"
    return f"the calculation failed: {type(exc).__name__}: {text}"


class _NumberEval(SimpleEval):  # type: ignore[misc]
    """simpleeval with the capped operators, math wrappers and constants, and no other nodes."""

    def __init__(self) -> None:
        super().__init__(operators=dict(_OPERATORS), names=dict(_CONSTANTS),
                         functions={name: entry[0] for name, entry in _FUNCTIONS.items()})
        allowed = (ast.Constant, ast.Name, ast.UnaryOp, ast.BinOp, ast.Compare, ast.Call)
        self.nodes: dict[type[ast.AST], Any] = {kind: handler for kind, handler in self.nodes.items() if kind in allowed}
        self.nodes[ast.BinOp] = self._eval_chain

    def _eval_chain(self, node: ast.BinOp) -> Number:
        """A binary operation whose left-hand chain is evaluated in a loop (simpleeval's own
        handler recurses once per term, and fails near 500 terms)."""
        first, chain = _left_spine(node)
        value: Number = self._eval(first)
        for link in chain:
            value = self.operators[type(link.op)](value, self._eval(link.right))
        return value


def _evaluate_tree(tree: ast.Expression) -> str:
    """Evaluate a checked tree and render the result (runs in the worker)."""
    value = _checked(_NumberEval().eval("", previously_parsed=tree.body))
    return str(value) if isinstance(value, int) else repr(value)


def evaluate(expression: str, *, timeout: float = 2.0, memory_mb: int = 256) -> str:
    """Evaluate an arithmetic expression; return the result as text.

    Args:
        expression: Untrusted text such as ``"sqrt(2)**2"``.
        timeout: Wall-clock seconds the worker may run before it is killed.
        memory_mb: Address space the worker may add to what it inherits.

    Returns:
        The exact integer, the float's repr, or "True"/"False" for a comparison.

    Raises:
        CalculatorError: With a one-line message, for anything refused or failed.
    """
    if timeout <= 0 or memory_mb <= 0:
        raise ValueError("timeout and memory_mb must be positive")
    tree = _parse(expression)
    _check_shape(tree)
    _estimate(tree.body)
    return run_isolated(lambda: _evaluate_tree(tree), timeout=timeout, memory_mb=memory_mb,
                        error=CalculatorError, describe=_describe, what="calculation")
