"""Load a function the user names as ``module:function`` or ``path/file.py:function``
(data loaders, model factories)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Callable

from edgekit.errors import BadInputError


def load_callable(spec: str, what: str) -> Callable:
    """The function ``spec`` names; every failure is a BadInputError starting with ``what``."""
    target, _, fname = spec.rpartition(":")
    if not target or not fname.isidentifier():
        raise BadInputError(f"{what}: {spec!r} is not 'module:function' or 'path/file.py:function'")
    try:
        if target.endswith(".py") or "/" in target or "\\" in target:
            file = Path(target)
            if not file.is_file():
                raise BadInputError(f"{what}: {file}: no such file")
            name = f"_edgekit_user_{hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:12]}"
            mod_spec = importlib.util.spec_from_file_location(name, file)
            if mod_spec is None or mod_spec.loader is None:
                raise BadInputError(f"{what}: cannot import {file}")
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[name] = module
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except BadInputError:
        raise
    except Exception as exc:  # the user's code: report whatever it raised
        raise BadInputError(f"{what}: importing {target} failed: {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, fname, None)
    if not callable(fn):
        raise BadInputError(f"{what}: {target} has no function {fname!r}")
    return fn
