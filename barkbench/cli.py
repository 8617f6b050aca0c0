"""The barkbench command line: train, generate, inspect, runs, validate, configs, compare, report.

torch (a second or more to import) and matplotlib are imported inside the commands that train,
sample or draw, and pydantic inside those that read configs, so that --help and `runs` answer
at once.
"""

from __future__ import annotations

import functools

import typer
from rich.text import Text

from barkbench import __version__
from barkbench.commands import info, runs, studies
from barkbench.display import err, out
from barkbench.errors import BarkError, exit_code

app = typer.Typer(
    help="Train tiny language models on the bark language and watch recurrence forget what attention remembers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: typer's rich panels import a markdown parser, a tenth of a second before `--help`
    # answers; the commands' own tables and progress still come through rich.
    rich_markup_mode=None,
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
            err.print(Text("error:", style="red"), Text(str(e)), highlight=False, soft_wrap=True)  # never markup
            raise typer.Exit(exit_code(e)) from None
        except KeyboardInterrupt:
            err.print("interrupted", highlight=False)
            raise typer.Exit(130) from None
        except OSError as e:  # the machine's, not the user's: a full disk, a file taken away
            where = f": {e.filename}" if e.filename else ""
            # where a run or study was under way, running `--config` again would start another
            then = getattr(e, "resume", None) or "run the command again"
            err.print(
                Text("error:", style="red"),
                Text(f"{e.strerror or e}{where}; once that is fixed, {then}"),
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper


def command(name: str, function) -> None:
    """Register a command: its whole first docstring line is its one-line help, and `friendly`
    turns its BarkErrors into exit statuses."""
    app.command(name, short_help=function.__doc__.split("\n")[0].rstrip("."))(friendly(function))


# Every command, with the module that holds it.
command("train", runs.train)
command("generate", runs.generate)
command("inspect", runs.inspect_run)
command("runs", info.list_runs)
command("validate", info.validate)
command("configs", info.list_configs)
command("compare", studies.compare_models)
command("report", studies.report_study)


def main():
    app()
