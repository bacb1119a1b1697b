"""The packaging configuration against the source tree, and where edgekit.resources looks.

pyproject.toml lists edgekit's packages by hand (discovery cannot map the top-level
resource folders into the wheel), so a package added under edgekit/ must be listed there
or the wheel silently lacks it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edgekit import resources
from edgekit.errors import EdgekitError

REPO = Path(__file__).resolve().parents[2]
RESOURCE_FOLDERS = ("targets", "runtimes", "firmware")


def setuptools_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


# Folders of data files only, listed as packages so setuptools ships them as such.
DATA_PACKAGES = {"edgekit.data"}


def packages_on_disk() -> set[str]:
    """Every folder under edgekit/ holding Python modules, as a dotted name."""
    folders = {p.parent for p in (REPO / "edgekit").rglob("*.py") if "__pycache__" not in p.parts}
    return {".".join(f.relative_to(REPO).parts) for f in folders}


def test_data_packages_hold_their_files():
    config = setuptools_config()
    for name in DATA_PACKAGES:
        folder = REPO.joinpath(*name.split("."))
        assert name in config["packages"]
        patterns = config["package-data"][name]
        shipped = {f for pattern in patterns for f in folder.glob(pattern)}
        assert shipped == {f for f in folder.iterdir() if f.is_file()}, f"{name}: files not matched by {patterns}"


def test_every_python_package_is_listed():
    listed = {p for p in setuptools_config()["packages"]
              if not p.startswith("edgekit._bundled.") and p not in DATA_PACKAGES}
    on_disk = packages_on_disk()
    assert "edgekit.backends.c" in on_disk  # the walk itself found the nested packages
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - on_disk == set(), "these listed packages have no modules any more"


def test_each_resource_folder_is_mapped_into_the_package_with_its_files():
    config = setuptools_config()
    for folder in RESOURCE_FOLDERS:
        package = f"edgekit._bundled.{folder}"
        assert package in config["packages"]
        assert config["package-dir"][package] == folder
        assert (REPO / folder).is_dir()
        assert config["package-data"][package]


def test_checkout_resources_are_the_top_level_folders():
    # Tests run from the checkout (or its editable install): no _bundled/ copy there.
    assert not (REPO / "edgekit" / resources.BUNDLE).exists()
    assert resources.targets_dir() == REPO / "targets"
    assert resources.runtimes_dir() == REPO / "runtimes"
    assert resources.micro_runtime_dir() == REPO / "runtimes" / "micro"
    assert resources.firmware_dir() == REPO / "firmware"
    assert (resources.targets_dir() / "cortex-m4.toml").is_file()
    assert (resources.micro_runtime_dir() / "kernels.json").is_file()


def test_bundled_copy_is_preferred_to_a_checkout(tmp_path, monkeypatch):
    package = tmp_path / "site" / "edgekit"
    bundled = package / resources.BUNDLE / "targets"
    bundled.mkdir(parents=True)
    (tmp_path / "site" / "targets").mkdir()  # a stray folder beside an installed package
    monkeypatch.setattr(resources, "files", lambda name: package)
    assert resources.targets_dir() == bundled


def test_missing_folder_names_both_places_it_looked(tmp_path, monkeypatch):
    package = tmp_path / "site" / "edgekit"
    package.mkdir(parents=True)
    monkeypatch.setattr(resources, "files", lambda name: package)
    with pytest.raises(resources.ResourceMissingError) as err:
        resources.firmware_dir()
    msg = str(err.value)
    assert str(package / resources.BUNDLE / "firmware") in msg
    assert str(tmp_path / "site" / "firmware") in msg
    assert isinstance(err.value, EdgekitError) and err.value.exit_code == 1
