"""A run directory, the unit of work: what a fit leaves behind and how commands read it back.

``python -m lit3d fit`` writes every run into ``<save_dir>/<name>/version_<n>/``: the resolved
``config.yaml`` (every option, defaults included), the final stimulus (``mesh.ply``, or
``mesh_neuron_<n>.ply`` per unit of a population), ``metrics.json`` / ``summary.json`` and
``checkpoints/`` (``last.ckpt`` every epoch, the best by the monitored metric). :class:`Run`
reads that back, so an analysis of the run uses exactly the fitted unit, renderer and scene.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lit3d.errors import InputError

CONFIG = "config.yaml"


@dataclass(frozen=True)
class Run:
    """A fit's log directory (``runs/<name>/version_<n>``)."""

    path: Path

    @staticmethod
    def open(path: str | Path) -> "Run":
        """The run at ``path``; raises :class:`InputError` if it is not a run directory."""
        path = Path(path)
        if not path.is_dir():
            raise InputError(f"run directory not found: {path}")
        if not (path / CONFIG).is_file():
            raise InputError(f"{path} is not a run directory: it has no {CONFIG} "
                             "(pass runs/<name>/version_<n>)")
        return Run(path)

    @staticmethod
    def containing(file: str | Path) -> "Run | None":
        """The run whose directory holds ``file`` (a mesh or checkpoint it wrote), if any."""
        for folder in Path(file).resolve().parents[:2]:
            if (folder / CONFIG).is_file():
                return Run(folder)
        return None

    @property
    def config_file(self) -> Path:
        """The run's resolved ``config.yaml`` (usable as ``--config`` by every command)."""
        return self.path / CONFIG

    def meshes(self) -> dict[str, Path]:
        """The final stimulus meshes: ``{"mesh": mesh.ply}`` for a single unit, else
        ``{"neuron_<n>": mesh_neuron_<n>.ply}`` ordered by unit."""
        single = self.path / "mesh.ply"
        if single.is_file():
            return {"mesh": single}
        found = {}
        for file in self.path.glob("mesh_neuron_*.ply"):
            match = re.fullmatch(r"mesh_(neuron_(\d+))\.ply", file.name)
            if match:
                found[int(match.group(2))] = (match.group(1), file)
        return {name: file for _, (name, file) in sorted(found.items())}

    def stages(self) -> dict[str, Path]:
        """The meshes a shape reconstruction's remeshes replaced (``stages/stage_<k>_epoch_<e>
        .ply``, :class:`callbacks.Remesh`), named ``stage <k> (epoch <e>)`` in order."""
        found = []
        for file in (self.path / "stages").glob("stage_*_epoch_*.ply"):
            match = re.fullmatch(r"stage_(\d+)_epoch_(\d+)\.ply", file.name)
            if match:
                found.append((int(match.group(1)), int(match.group(2)), file))
        return {f"stage {k} (epoch {e})": file for k, e, file in sorted(found)}

    def checkpoint(self) -> Path | None:
        """``checkpoints/last.ckpt`` of this run, if it wrote one."""
        path = self.path / "checkpoints" / "last.ckpt"
        return path if path.is_file() else None
