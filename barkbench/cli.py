"""The barkbench command line: train, generate, inspect, runs, validate, configs, compare, report.

torch (a second or more to import) and matplotlib are imported inside the commands that train,
sample or draw, and pydantic inside those that read configs, so that --help and `runs` answer
at once.
"""

from __future__ import annotations

import functools

import typer
from rich.markup import escape

from barkbench import __version__
from barkbench.commands import info, runs, studies
from barkbench.display import err, out
from barkbench.errors import BarkError, exit_code

app = typer.Typer(
    help="Train tiny language models on the bark language and watch recurrence forget what attention remembers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def show_version(value: bool):
    if value:
        out.print(f"barkbench {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def options(
    version: bool = typer.Option(
        False, "--version", callback=show_version, is_eager=True, help="Print barkbench's version and exit."
    ),
):
    """Train tiny language models on the bark language and watch recurrence forget what attention remembers.

    Start with: barkbench configs (the shipped configs), then barkbench train --config baby.
    """


def friendly(command):
    """Turn a BarkError into its message on stderr and its exit status, with no traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except BarkError as e:
            err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exit_code(e)) from None
        except KeyboardInterrupt:
            err.print("interrupted", highlight=False)
            raise typer.Exit(130) from None

    return wrapper


# Every command, with the module that holds it; `friendly` turns their BarkErrors into exit statuses.
app.command()(friendly(runs.train))
app.command()(friendly(runs.generate))
app.command("inspect")(friendly(runs.inspect_run))
app.command("runs")(friendly(info.list_runs))
app.command()(friendly(info.validate))
app.command("configs")(friendly(info.list_configs))
app.command("compare")(friendly(studies.compare_models))
app.command("report")(friendly(studies.report_study))


def main():
    app()
