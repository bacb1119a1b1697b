"""``edgekit keys``: Ed25519 signing keys for model updates (docs/updates.md)."""

from __future__ import annotations

import json
from pathlib import Path

import click

DEFAULT_DIR = Path.home() / ".edgekit" / "keys"

_dir_option = click.option("--dir", "key_dir", type=click.Path(file_okay=False, path_type=Path),
                           envvar="EDGEKIT_KEYS_DIR", default=DEFAULT_DIR, show_default=True,
                           help="Key folder (or $EDGEKIT_KEYS_DIR).")


@click.group()
def keys() -> None:
    """Create, list and rotate the Ed25519 keys that sign model updates."""


@keys.command("create")
@click.argument("name")
@_dir_option
def create(name: str, key_dir: Path) -> None:
    """Create key NAME: NAME.key (private, mode 0600) and NAME.pub (copy it into each
    device's trust folder)."""
    from edgekit.sync.signing import create_key

    info = create_key(key_dir, name)
    click.echo(f"created key {name} (key id {info['key_id']}): {info['private']}, {info['public']}")


@keys.command("list")
@_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(key_dir: Path, as_json: bool) -> None:
    """List the keys in the key folder."""
    from edgekit.sync.signing import list_keys

    found = list_keys(key_dir)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo(f"no keys in {key_dir} (edgekit keys create NAME)")
        return
    for k in found:
        extra = "" if k["has_private"] else "  (public only)"
        if k["rotated_from"]:
            extra += f"  rotated from {k['rotated_from']}"
        click.echo(f"{k['name']:<24} {k['key_id']}{extra}")


@keys.command("rotate")
@click.argument("old")
@click.argument("new")
@_dir_option
def rotate(old: str, new: str, key_dir: Path) -> None:
    """Create key NEW and a rotation certificate signed by OLD. Updates signed by NEW carry
    the certificate; a device that trusts OLD accepts them and retires OLD."""
    from edgekit.sync.signing import rotate_key

    info = rotate_key(key_dir, old, new)
    click.echo(f"created key {new} (key id {info['key_id']}), certified by {old} "
               f"({info['rotation']['old_key_id']}): {key_dir / (new + '.rotation.json')}")
