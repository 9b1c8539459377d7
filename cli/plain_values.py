"""Option and argument values the CLI reads without pydantic.

Typer 0.29 coerces every parameter's value through a pydantic `TypeAdapter` that it builds at
the first value: importing pydantic and building the adapters cost `shipyard ps` ~70 ms, to
turn "web" into "web". Here a str, bool, int or float, or a list of str, that Python reads
exactly as that adapter would is taken as it is; any other value (a malformed number, one out of
its bounds, a path, a choice) goes to Typer's own coercion, so its results and its error messages
stay Typer's.

This leans on two attributes of Typer's parameters (`type_descriptor` and `_runtime_param`, the
coercion it builds lazily): a Typer without them is left to coerce every value itself.
"""

from __future__ import annotations

import re
from typing import Any

# What pydantic's lax int and float read from a string the way Python's int() and float() do
# (a sign, at most 18 digits, a decimal point); exponents, "inf", "1_000" and spaces go to Typer.
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_DECIMAL = re.compile(r"[+-]?[0-9]{1,18}(\.[0-9]{1,18})?")

# Returned by `plain_value` for a value it leaves to Typer.
NOT_PLAIN: Any = object()


def plain_value(annotation: Any, value: Any) -> Any:
    """`value` as a parameter of type `annotation` (str, bool, int, float or list[str]) reads it
    when Python and pydantic agree on it, else NOT_PLAIN."""
    if (annotation is str and type(value) is str) or (annotation is bool and type(value) is bool):
        return value
    if annotation is int:
        if type(value) is int:
            return value
        if type(value) is str and _INTEGER.fullmatch(value):
            return int(value)
    if annotation is float:
        if type(value) in (int, float):
            return float(value)
        if type(value) is str and _DECIMAL.fullmatch(value):
            return float(value)
    if annotation == list[str] and type(value) in (list, tuple):
        if all(type(item) is str for item in value):
            return list(value)
    return NOT_PLAIN


class PlainCoercion:
    """A parameter's coercion (Typer's `RuntimeParam` contract) that takes plain values as they
    are and hands any other to the pydantic coercion Typer would have built."""

    def __init__(self, annotation: Any, low: float | None, high: float | None) -> None:
        self.annotation = annotation
        self.low, self.high = low, high  # a number's min and max: Typer's beyond them

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        """What Typer's `RuntimeParam.coerce` returns for `value`."""
        if value is None:  # as Typer: no value, or an empty tuple for a repeated option
            return () if param.multiple or param.nargs == -1 else None
        plain = plain_value(self.annotation, value)
        if plain is not NOT_PLAIN and self._within_bounds(plain):
            return plain
        param._runtime_param = None  # Typer builds its own, and keeps it for the next value
        return param.get_runtime_param().coerce(value, param=param, ctx=ctx)

    def _within_bounds(self, plain: Any) -> bool:
        return (self.low is None or plain >= self.low) and (self.high is None or plain <= self.high)


def skip_pydantic_for_plain_values(command: Any, parent: Any = None) -> None:
    """Give each parameter of the click `command` (and of its subcommands) whose type is str,
    bool, int, float or list[str], and that has no parser, the plain coercion."""
    # The context click would make for the command (`Command.make_context`), so that the help
    # option, which click makes for the first context and keeps, is made here and has the same
    # names.
    ctx = command.context_class(command, parent=parent, **command.context_settings)
    params: list[Any] = [*command.params, command.get_help_option(ctx)]
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", False) is not None:
            continue  # not a Typer parameter (or none at all), or its coercion is built already
        annotation, info = descriptor.annotation, descriptor.parameter_info
        if info.parser is not None:
            continue  # the parser reads its values
        if annotation in (int, float):
            param._runtime_param = PlainCoercion(annotation, info.min, info.max)
        elif annotation in (str, bool, list[str]):
            param._runtime_param = PlainCoercion(annotation, None, None)
    for subcommand in getattr(command, "commands", {}).values():
        skip_pydantic_for_plain_values(subcommand, ctx)
