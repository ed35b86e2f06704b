"""Training curves of a fit: every per-step scalar against the step, or per epoch with the
remesh epochs marked (MRD)."""

from __future__ import annotations

from pathlib import Path

from lit3d.figures import pyplot, save_figure

#: Readable names of the recorded scalars.
LABELS = {"loss": "training loss", "response": "response", "normalized_response":
          "normalized response", "mean_response": "mean response over units"}


def save_curves(path: Path, history: dict[str, list[float]], steps: list[int]) -> Path:
    """Plots every recorded per-step scalar in its own titled panel against the step."""
    plt = pyplot()
    names = [k for k in history if len(history[k]) == len(steps)]
    fig, axes = plt.subplots(len(names), 1, figsize=(6.5, 2.3 * len(names) + 0.4), sharex=True,
                             squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        label = LABELS.get(name, name.replace("_", " "))
        ax.plot(steps, history[name], lw=1, label="per step")
        ax.set_title(label, fontsize=10)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if name == "normalized_response":
            ax.axhline(1.0, color="k", ls="--", lw=0.8, label="optimum")
            ax.legend(loc="lower right", fontsize=8)
    axes[-1, 0].set_xlabel("training step")
    fig.suptitle("Training curves", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def save_epoch_curves(path: Path, epochs: list[int], losses: list[float],
                      series: dict[str, list[tuple[int, float]]], remesh_epochs: list[int],
                      title: str = "") -> Path:
    """Per-epoch panels: the mean training loss of each epoch, then every ``series`` (name ->
    (epoch, value) points, e.g. the validation similarity and RSA τ), with the remesh epochs
    marked by dotted lines."""
    import numpy as np

    plt = pyplot()
    epoch_ids = sorted(set(epochs))
    mean_loss = [float(np.mean([x for e, x in zip(epochs, losses) if e == k])) for k in epoch_ids]
    panels = [("training loss (mean over the epoch)", list(zip(epoch_ids, mean_loss)))]
    panels += [(name, points) for name, points in series.items() if points]
    fig, axes = plt.subplots(len(panels), 1, figsize=(6.5, 2.3 * len(panels) + 0.5),
                             sharex=True, squeeze=False)
    for ax, (name, points) in zip(axes[:, 0], panels):
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, lw=1, label=name)
        for k, epoch in enumerate(remesh_epochs):
            ax.axvline(epoch, color="tab:red", ls=":", lw=1,
                       label="remesh" if k == 0 else None)
        ax.set_title(name, fontsize=10)
        ax.set_ylabel(name.split(" (")[0])
        ax.grid(alpha=0.3)
        if remesh_epochs:
            ax.legend(loc="best", fontsize=8)
    axes[-1, 0].set_xlabel("epoch")
    fig.suptitle(title or "Curves per epoch", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)
