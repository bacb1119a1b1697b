"""Entry point of the ``edgekit`` command.

Exit codes: 0 ok, 1 failure while working, 2 bad input (files, options, models).
Errors print one clear line; ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import NamedTuple, Optional

import click

from edgekit.cli.common import make_console
from edgekit.cli.compiler_check import (COMPILER_PYTHON, INSTALL_HINT, CompilerMissingError,
                                       compiler_message, missing_for_compiler)
from edgekit.errors import EdgekitError

err_console = make_console(stderr=True)


class CommandSpec(NamedTuple):
    module: str          # under edgekit.cli
    attribute: str
    needs: str           # "device": any Python edgekit installs on; "python311"; "compiler"


# Every command, loaded only when it runs or help lists it: a device with the base install
# (Python 3.8+, numpy, one engine) never imports a compiler command's module.
COMMANDS = {
    "inspect": CommandSpec("model_cmds", "inspect", "compiler"),
    "run": CommandSpec("model_cmds", "run", "device"),        # a model file asks for the compiler itself
    "convert": CommandSpec("model_cmds", "convert", "compiler"),
    "compress": CommandSpec("compress_cmd", "compress", "compiler"),
    "quantize": CommandSpec("quantize_cmd", "quantize", "compiler"),
    "compile": CommandSpec("compile_cmd", "compile_cmd", "compiler"),
    "build-firmware": CommandSpec("firmware_cmd", "build_firmware_cmd", "compiler"),
    "package": CommandSpec("package_cmd", "package_cmd", "compiler"),
    "flash": CommandSpec("device_cmds", "flash", "device"),   # a model file asks for the compiler itself
    "device": CommandSpec("device_cmds", "device", "device"),
    "hil": CommandSpec("device_cmds", "hil", "compiler"),
    "targets": CommandSpec("targets_cmd", "targets", "python311"),
    "demo": CommandSpec("demo_cmd", "demo", "compiler"),
    "bench": CommandSpec("bundle_cmds", "bench", "device"),
    "serve": CommandSpec("serve_cmd", "serve", "device"),     # checks Python 3.10+ and [serve] itself
    "hub": CommandSpec("hub_cmd", "hub", "device"),            # checks Python 3.10+ and [hub] itself
    "keys": CommandSpec("keys_cmd", "keys", "device"),        # update signing keys; needs [sync] (cryptography)
    "sync": CommandSpec("sync_cmd", "sync", "device"),        # the device's queue and forwarder; MQTT needs [sync]
}


def _missing(spec: CommandSpec) -> Optional[str]:
    if spec.needs == "device":
        return None
    return missing_for_compiler(needs_packages=spec.needs == "compiler")


def _unavailable(name: str, spec: CommandSpec, missing: str) -> click.Command:
    """What `edgekit NAME` is where it cannot run: a command that takes any arguments
    (--help included) and stops with exit code 2, saying what to install."""
    needs_packages = spec.needs == "compiler"
    message = compiler_message(f"edgekit {name}", missing, needs_packages=needs_packages)
    if missing.startswith("Python"):
        short = "(needs Python {}.{}+".format(*COMPILER_PYTHON) + (f" and {INSTALL_HINT})" if needs_packages else ")")
    else:
        short = f"(needs {INSTALL_HINT})"

    def refuse(args) -> None:
        raise CompilerMissingError(message)

    return click.Command(name, callback=refuse, params=[click.Argument(["args"], nargs=-1)],
                         help=message, short_help=short,
                         add_help_option=False, context_settings={"ignore_unknown_options": True})


class EdgekitGroup(click.Group):
    """Loads each command's module when needed, and turns edgekit errors into one line
    and the documented exit code."""

    def list_commands(self, ctx: click.Context) -> list:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str):
        spec = COMMANDS.get(name)
        if spec is None:
            return super().get_command(ctx, name)
        missing = _missing(spec)
        if missing is not None:
            return _unavailable(name, spec, missing)
        return getattr(importlib.import_module(f"edgekit.cli.{spec.module}"), spec.attribute)

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
    """Load every command this installation can run into the group at once (tests call it
    before using ``cli`` directly); ``edgekit`` itself loads each command when it runs."""
    for name in COMMANDS:
        cli.add_command(cli.get_command(click.Context(cli), name), name)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # Warnings are for the user: one line, no source location.
    err_console.print("[yellow]warning:[/yellow] ", end="")
    err_console.print(str(message), markup=False, highlight=False, soft_wrap=True)


def main() -> None:
    import warnings

    warnings.showwarning = _show_warning
    cli(prog_name="edgekit")


if __name__ == "__main__":
    main()
