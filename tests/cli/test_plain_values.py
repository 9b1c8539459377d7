"""Values the CLI reads without pydantic come out as Typer's own coercion makes them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from typer._adapters import build_adapter
from typer.main import get_command
from typer.models import OptionInfo

from shipyard.cli.plain_values import NOT_PLAIN, plain_value, skip_pydantic_for_plain_values

PLAIN = [
    (str, "web"),
    (str, ""),
    (bool, True),
    (bool, False),
    (int, "007"),
    (int, "-3"),
    (int, "+5"),
    (int, 5),
    (float, "1.5"),
    (float, "+2"),
    (float, "-0"),
    (float, "0.1"),
    (float, 1800),
    (float, 2.5),
    (list[str], ("a", "b")),
    (list[str], []),
]
LEFT_TO_TYPER = [
    (str, b"web"),
    (bool, "yes"),
    (int, "1e3"),
    (int, " 5"),
    (int, "1_000"),
    (int, "1.0"),
    (int, "1" * 19),
    (int, True),
    (float, "inf"),
    (float, "1e3"),
    (float, ".5"),
    (float, "abc"),
    (list[str], "a"),
    (list[str], (b"a",)),
    (Path, "/srv"),
]


@pytest.mark.parametrize(("annotation", "value"), PLAIN)
def test_a_plain_value_is_what_typers_coercion_makes_of_it(annotation: Any, value: Any) -> None:
    typers = build_adapter(annotation, OptionInfo()).validate_python(value)

    plain = plain_value(annotation, value)

    assert plain == typers and type(plain) is type(typers)


@pytest.mark.parametrize(("annotation", "value"), LEFT_TO_TYPER)
def test_any_other_value_is_left_to_typer(annotation: Any, value: Any) -> None:
    assert plain_value(annotation, value) is NOT_PLAIN


def _command(*, plainly: bool) -> Any:
    """A command that returns what it was given, its plain values read plainly or by Typer."""
    app = typer.Typer()

    @app.command()
    def given(
        name: str,
        count: Annotated[int, typer.Option("--count", "-c")] = 1,
        bounded: Annotated[int, typer.Option(min=1, max=3)] = 2,
        clamped: Annotated[float, typer.Option(min=0, max=1, clamp=True)] = 0,
        timeout: float = 600,
        tag: Annotated[list[str] | None, typer.Option()] = None,
        where: Path | None = None,
        json: bool = False,
    ) -> dict[str, Any]:
        return dict(locals())

    command = get_command(app)
    if plainly:
        skip_pydantic_for_plain_values(command)
    return command


@pytest.mark.parametrize(
    "args",
    [
        ["web"],
        ["web", "-c", "07", "--bounded", "3", "--timeout", "1.5", "--tag", "a", "--tag", "b"],
        ["web", "--timeout", "1e3", "--where", "/srv", "--json", "--clamped", "0.5"],
        ["web", "--clamped", "7", "--bounded", "1"],
    ],
)
def test_a_command_gets_the_values_typer_would_give_it(args: list[str]) -> None:
    plainly = _command(plainly=True).main(args, standalone_mode=False)
    by_typer = _command(plainly=False).main(args, standalone_mode=False)

    assert [(v, type(v)) for v in plainly.values()] == [(v, type(v)) for v in by_typer.values()]


@pytest.mark.parametrize(
    "args", [["web", "-c", "abc"], ["web", "--bounded", "9"], ["web", "--timeout", "soon"]]
)
def test_a_bad_value_gets_typers_own_error(args: list[str]) -> None:
    with pytest.raises(typer.BadParameter) as plainly:
        _command(plainly=True).main(args, standalone_mode=False)
    with pytest.raises(typer.BadParameter) as by_typer:
        _command(plainly=False).main(args, standalone_mode=False)

    assert plainly.value.format_message() == by_typer.value.format_message()
