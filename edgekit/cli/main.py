"""Entry point of the ``edgekit`` command.

Exit codes: 0 ok, 1 failure while working, 2 bad input (files, options, models).
Errors print one clear line; ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import sys
import traceback

import click

from edgekit.cli.common import make_console
from edgekit.errors import EdgekitError

err_console = make_console(stderr=True)


class EdgekitGroup(click.Group):
    """Turns edgekit errors into one line and the documented exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgekitError as exc:
            _report(ctx, exc, exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            err_console.print("[red]interrupted[/red]")
            sys.exit(130)
        except Exception as exc:  # a bug, not a user error: say so, keep exit 1
            _report(ctx, exc, 1, internal=True)


def _report(ctx: click.Context, exc: BaseException, code: int, internal: bool = False) -> None:
    verbose = bool(ctx.obj and ctx.obj.get("verbose"))
    if verbose:
        err_console.print(traceback.format_exc(), markup=False, highlight=False)
    prefix = "internal error" if internal else "error"
    msg = f"{type(exc).__name__}: {exc}" if internal else str(exc)
    err_console.print(f"[bold red]{prefix}:[/bold red] ", end="")
    err_console.print(msg, markup=False, highlight=False, soft_wrap=True)
    if internal and not verbose:
        err_console.print("(run with --verbose for the traceback)")
    sys.exit(code)


@click.group(cls=EdgekitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and extra detail.")
@click.version_option(package_name="edgekit")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """edgekit: compile trained models for microcontrollers, ARM Linux boards and Jetson."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


def _register() -> None:
    # Each command lives in its own module; importing them here keeps startup cheap
    # (heavy libraries are imported inside the commands).
    from edgekit.cli import (bundle_cmds, compile_cmd, compress_cmd, demo_cmd, device_cmds, firmware_cmd,
                             model_cmds, package_cmd, quantize_cmd, targets_cmd)

    for cmd in (model_cmds.inspect, model_cmds.run, model_cmds.convert, compress_cmd.compress,
                quantize_cmd.quantize, compile_cmd.compile_cmd, firmware_cmd.build_firmware_cmd,
                package_cmd.package_cmd, device_cmds.flash, device_cmds.device, device_cmds.hil,
                targets_cmd.targets, demo_cmd.demo, bundle_cmds.bench):
        cli.add_command(cmd)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # Warnings are for the user: one line, no source location.
    err_console.print("[yellow]warning:[/yellow] ", end="")
    err_console.print(str(message), markup=False, highlight=False, soft_wrap=True)


def main() -> None:
    import warnings

    warnings.showwarning = _show_warning
    _register()
    cli(prog_name="edgekit")


if __name__ == "__main__":
    main()
