"""``edgekit package``: an int8 model -> the model package file `edgekit flash` uploads."""

from __future__ import annotations

import json

import click

from edgekit.cli.common import (human_bytes, input_shape_option, load_model_cli, make_console, output_file,
                                write_atomic)
from edgekit.errors import BadInputError

console = make_console()

NAME_BYTES = 24  # the name field of a package header and of a device slot


@click.command("package")
@click.argument("model")
@click.option("--target", "-t", "target", required=True, metavar="NAME",
              help="The microcontroller target the package is for (see `edgekit targets`).")
@click.option("--out", "-o", "out_path", required=True, metavar="FILE.ekpkg", help="The package file to write.")
@click.option("--name", help=f"Model name stored in the package (at most {NAME_BYTES} bytes; default: the model's).")
@click.option("--json", "as_json", is_flag=True, help="Print the package header as JSON.")
@input_shape_option
def package_cmd(model: str, target: str, out_path: str, name: str | None, as_json: bool,
                input_shapes: tuple[str, ...]) -> None:
    """Pack an int8 MODEL for TARGET into a model package (docs/model-package.md), the
    file `edgekit flash FILE --port PORT` uploads to the model-slot firmware."""
    from edgekit.bundle import pack_model, read_package_header
    from edgekit.targets import load_target

    out = output_file(out_path, "--out", (".ekpkg",))
    if name is not None and len(name.encode()) > NAME_BYTES:
        raise BadInputError(f"--name {name!r} is {len(name.encode())} bytes; a package name holds at most "
                            f"{NAME_BYTES}")
    tgt = load_target(target)
    graph, _ = load_model_cli(model, input_shapes)
    label = name if name is not None else graph.name.encode()[:NAME_BYTES].decode("utf-8", "ignore")
    data = pack_model(graph, tgt, name=label)
    write_atomic(out, lambda f: f.write(data))
    header = read_package_header(data)
    if as_json:
        click.echo(json.dumps(header.to_dict() | {"file": str(out)}, indent=1))
        return
    console.print(f"wrote {out}: package {header.name!r} for {header.target}, {human_bytes(len(data))}, "
                  f"{header.num_ops} ops, {header.macs:,} MACs, arena {human_bytes(header.arena_size)}, "
                  f"SHA-256 {header.model_hash.hex()}", highlight=False)
