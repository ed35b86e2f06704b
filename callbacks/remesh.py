"""Remeshing during shape reconstruction, and the learning-rate decay that follows it (MRD).

:class:`Remesh` runs Botsch-Kobbelt isotropic remeshing (:func:`lit3d.geometry.remesh.remesh`)
at the start of the given epochs, hands the new mesh to the module (``set_mesh``: a new Large
Steps parameterization), re-wraps it for DDP when training on several ranks (:func:`rewrap_ddp`)
and rebuilds the optimizer (its moments belong to the old vertices).
Callbacks that follow remeshes (:class:`FollowsRemeshes`: ``on_remesh(trainer, pl_module)``)
are then told, e.g. :class:`DecayLROnRemesh`.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import lightning.pytorch as pl

from lit3d.console import info


@runtime_checkable
class FollowsRemeshes(Protocol):
    """A callback told after every remesh (after the optimizer was rebuilt)."""

    def on_remesh(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None: ...


def check_epochs(epochs: list[int], name: str = "remesh epochs") -> list[int]:
    """Returns ``epochs`` as ints after checking they are >= 0 and strictly increasing."""
    epochs = [int(e) for e in epochs]
    if any(e < 0 for e in epochs):
        raise ValueError(f"{name} must be >= 0, got {epochs}")
    if any(b <= a for a, b in zip(epochs, epochs[1:])):
        raise ValueError(f"{name} must be strictly increasing (sorted, no repeats), got {epochs}")
    return epochs


def rewrap_ddp(trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
    """After the module's parameters were replaced (new shapes), wraps it in a fresh
    ``DistributedDataParallel`` so its gradients are all-reduced again (the old wrapper's
    reducer still holds the old parameters and would wait for their gradients forever). The
    new wrapper also broadcasts rank 0's parameters and buffers, so every rank continues from
    the same mesh. Returns whether it re-wrapped (only under a DDP strategy)."""
    from lightning.pytorch.strategies import DDPStrategy
    from torch.nn.parallel import DistributedDataParallel

    strategy = trainer.strategy
    if not isinstance(strategy, DDPStrategy) or not isinstance(strategy.model,
                                                               DistributedDataParallel):
        return False
    from lit3d.compat import rewrap_ddp_model

    rewrap_ddp_model(strategy, pl_module)
    return True


class Remesh(pl.Callback):
    """Remesh the reconstruction at the start of the given epochs.

    Args:
        epochs: strictly increasing epoch numbers (MRD's dragon: 5, 25, 50, 100, 150, 250,
            350, 450).
        edge_length_factor: target edge length as a fraction of the current mean edge length
            (Large Steps: 0.5, i.e. about 4x the vertices per remesh).
        max_vertices: cap on the remeshed vertex count: the target edge length is raised so the
            mesh keeps at most about this many vertices (later remeshes then only regularize).
        iterations: remeshing passes.
        keep_stages: write the mesh each remesh replaces into the run's
            ``stages/stage_<k>_epoch_<e>.ply`` (``lit3d explore`` shows them); only runs with
            a logger have a run directory.
    """

    def __init__(self, epochs: list[int], edge_length_factor: float = 0.5,
                 max_vertices: int = 50_000, iterations: int = 10, keep_stages: bool = True):
        if not edge_length_factor > 0:
            raise ValueError(f"edge_length_factor must be > 0, got {edge_length_factor}")
        if max_vertices < 4:
            raise ValueError(f"max_vertices must be >= 4, got {max_vertices}")
        self.epochs = check_epochs(epochs)
        self.edge_length_factor = float(edge_length_factor)
        self.max_vertices = int(max_vertices)
        self.iterations = int(iterations)
        self.keep_stages = bool(keep_stages)

    def target_edge_length(self, mean_edge: float, num_vertices: int) -> float:
        """``factor × mean_edge``, raised so that the vertex count (which scales with the
        inverse square of the edge length) stays below ``max_vertices``."""
        h = self.edge_length_factor * mean_edge
        floor = mean_edge * math.sqrt(num_vertices / self.max_vertices)
        return max(h, floor)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch not in self.epochs:
            return
        from lit3d.geometry.remesh import mean_edge_length, remesh
        from lit3d.modules.protocols import Remeshable

        if not isinstance(pl_module, Remeshable):
            raise TypeError(f"Remesh needs a module that can take a new mesh "
                            f"(lit3d.modules.protocols.Remeshable, e.g. MRDShape); "
                            f"{type(pl_module).__name__} is not one")

        vertices, faces = pl_module.current_mesh()
        log_dir = trainer.log_dir  # a broadcast under DDP: every rank must ask
        if self.keep_stages and trainer.loggers and log_dir and trainer.is_global_zero:
            from pathlib import Path

            from lit3d.geometry.io import save_mesh

            stages = Path(log_dir) / "stages"
            stages.mkdir(parents=True, exist_ok=True)
            save_mesh(stages / f"stage_{pl_module.remesh_count}_epoch_{trainer.current_epoch}"
                      ".ply", vertices.detach().cpu(), faces.cpu())
        h = self.target_edge_length(mean_edge_length(vertices, faces), int(vertices.shape[0]))
        new_vertices, new_faces = remesh(vertices, faces, h, self.iterations)
        pl_module.set_mesh(new_vertices, new_faces)
        pl_module.remesh_count += 1
        rewrap_ddp(trainer, pl_module)
        trainer.strategy.setup_optimizers(trainer)
        info(f"epoch {trainer.current_epoch}: remeshed {vertices.shape[0]} -> "
                       f"{new_vertices.shape[0]} vertices (edge length {h:.4g})")
        for callback in trainer.callbacks:
            if isinstance(callback, FollowsRemeshes):
                callback.on_remesh(trainer, pl_module)


class DecayLROnRemesh(pl.Callback):
    """Multiplies the learning rate by ``factor`` after every remesh (MRD: 0.8).

    The decay is kept in the module's ``lr_scale`` buffer (so ``configure_optimizers`` and a
    resumed run see it) and applied to the freshly built optimizer."""

    def __init__(self, factor: float = 0.8):
        if not 0 < factor <= 1:
            raise ValueError(f"factor must be in (0, 1], got {factor}")
        self.factor = float(factor)

    def on_remesh(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.lr_scale.mul_(self.factor)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] *= self.factor
