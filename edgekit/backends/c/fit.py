"""Does a compiled model fit the target's memories? Placement per region, and the error
that says what takes the space when it does not.

Placement rules (regions in the order of the target file; the first of a kind is the
default one):

- code (kernels and model.c) goes to the first flash region; weights and the other
  constants go with it when they fit there, else to the first other flash region with
  room;
- the stack goes to the first SRAM region; the arena goes with it when both fit, else to
  the first other SRAM region with room, else to a PSRAM region (a large arena in
  external RAM when the target has one).

``--flash`` / ``--sram`` replace the target's regions of that kind by one region of the
given size (PSRAM is kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgekit.errors import BadInputError
from edgekit.targets import MemoryRegion, Target


@dataclass
class Part:
    name: str        # "code", "weights", "arena", "stack", ...
    label: str       # what the table shows
    nbytes: int
    kind: str        # "flash" or "ram"
    region: str | None = None  # where it was placed (None: nowhere)


@dataclass
class RegionUse:
    name: str
    kind: str
    size: int
    used: int = 0
    parts: list[str] = field(default_factory=list)
    override: bool = False

    @property
    def free(self) -> int:
        return self.size - self.used


@dataclass
class FitReport:
    target: str
    parts: list[Part]
    regions: list[RegionUse]
    fits: bool
    over: dict[str, int]   # "flash" / "ram" -> bytes short in the default region
    overrides: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "target": self.target, "fits": self.fits, "over": self.over, "overrides": self.overrides,
            "parts": [p.__dict__ for p in self.parts],
            "regions": [{"name": r.name, "kind": r.kind, "size": r.size, "used": r.used,
                         "free": r.free, "parts": r.parts, "override": r.override}
                        for r in self.regions],
        }

    def table(self) -> str:
        """Plain-text tables: the parts and where they went, then the regions."""
        rows = [("part", "bytes", "placed in")]
        for p in self.parts:
            rows.append((p.label, f"{p.nbytes:,}", p.region or "-- does not fit"))
        lines = _columns(rows, right={1})
        rows = [("region", "kind", "size", "used", "free")]
        for r in self.regions:
            free = f"{r.free:,}" if r.free >= 0 else f"OVER by {-r.free:,}"
            name = r.name + (" (override)" if r.override else "")
            rows.append((name, r.kind, f"{r.size:,}", f"{r.used:,}", free))
        return "\n".join(lines + [""] + _columns(rows, right={2, 3, 4}))


def _columns(rows, right=()) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = []
    for k, r in enumerate(rows):
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(r, widths))]
        out.append("  " + "  ".join(cells).rstrip())
        if k == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return out


class FitError(BadInputError):
    """The model does not fit the target's memories (exit code 2)."""

    def __init__(self, model: str, report: FitReport):
        self.report = report
        short = ", ".join(f"{'flash' if k == 'flash' else 'RAM'} over by {v:,} bytes"
                          for k, v in report.over.items() if v > 0)
        msg = (f"model {model!r} does not fit target {report.target!r}: {short}\n\n"
               f"{report.table()}\n\nUse a target with more memory, a smaller model, or "
               "--flash / --sram if the target's sizes are wrong.")
        super().__init__(msg)


def _regions(target: Target, kind: str, override: int | None) -> list[RegionUse]:
    regs: list[MemoryRegion] = target.memory(kind)
    if override is not None:
        name = regs[0].name if regs else kind.upper()
        return [RegionUse(name, kind, int(override), override=True)]
    return [RegionUse(r.name, r.kind, r.size) for r in regs]


def _place(part: Part, candidates: list[RegionUse]) -> bool:
    for r in candidates:
        if r.used + part.nbytes <= r.size:
            r.used += part.nbytes
            r.parts.append(part.name)
            part.region = f"{r.name} ({r.kind})"
            return True
    return False


def check_fit(target: Target, *, code: int, weights: int, constants: int, arena: int, stack: int,
              flash: int | None = None, sram: int | None = None, scratch: int = 0) -> FitReport:
    """Place the parts in the target's regions (see the module docstring). ``scratch``: the
    work buffer of the packed kernels (static, beside the stack)."""
    if not target.is_mcu:
        raise BadInputError(f"target {target.name!r} is a {target.family} target; the C backend "
                            "compiles for microcontrollers (family mcu)")
    flash_regs = _regions(target, "flash", flash)
    sram_regs = _regions(target, "sram", sram)
    psram_regs = _regions(target, "psram", None)
    parts = [Part("code", "code (kernels + model.c)", code, "flash"),
             Part("weights", "weights and biases", weights, "flash"),
             Part("constants", "multipliers, shifts, op parameters", constants, "flash"),
             Part("stack", "stack (estimate)", stack, "ram"),
             Part("arena", "tensor arena", arena, "ram")]
    if scratch:
        parts.append(Part("scratch", "kernel work buffer (packed conv)", scratch, "ram"))
    by = {p.name: p for p in parts}
    over: dict[str, int] = {"flash": 0, "ram": 0}

    # flash: code in the first region; weights and constants with it, or elsewhere
    if not flash_regs:
        raise BadInputError(f"target {target.name!r} has no flash region")
    _place(by["code"], flash_regs[:1])
    for name in ("weights", "constants"):
        _place(by[name], flash_regs)
    # RAM: stack in the first SRAM region; the arena with it, or in another SRAM or PSRAM region
    if not sram_regs:
        raise BadInputError(f"target {target.name!r} has no SRAM region")
    _place(by["stack"], sram_regs[:1])
    if "scratch" in by:
        _place(by["scratch"], sram_regs[:1])
    _place(by["arena"], sram_regs + psram_regs)

    fits = all(p.region is not None for p in parts)
    if not fits:
        for kind, regs, names in (("flash", flash_regs, ("code", "weights", "constants")),
                                  ("ram", sram_regs, ("stack", "arena", "scratch"))):
            unplaced = [by[n] for n in names if n in by and by[n].region is None]
            if unplaced:
                first = regs[0]
                first.used += sum(p.nbytes for p in unplaced)
                over[kind] = max(first.used - first.size, 1)
    overrides = {k: v for k, v in (("flash", flash), ("sram", sram)) if v is not None}
    return FitReport(target.name, parts, flash_regs + sram_regs + psram_regs, fits, over, overrides)

