"""Mitsuba / Dr.Jit set-up shared by every Mitsuba renderer: the variant for a device, the
thread count, bitmap I/O threads, and tensors crossing between torch and Dr.Jit."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import torch
from torch import Tensor

from lit3d.render.llvm import check_libllvm, configure_libllvm

#: Guards Mitsuba's process-wide variant while it is chosen.
VARIANT_LOCK = threading.Lock()


def mitsuba_variant_for(device: torch.device) -> str:
    """``cuda_ad_rgb`` for CUDA tensors, ``llvm_ad_rgb`` otherwise."""
    return "cuda_ad_rgb" if device.type == "cuda" else "llvm_ad_rgb"


def import_mitsuba(variant: str):
    """Imports Mitsuba with ``variant`` active (a process-wide setting) and returns ``(mi, dr)``.

    Raises ``RuntimeError`` if another AD variant is already active or libLLVM is too old.
    """
    with VARIANT_LOCK:
        if variant.startswith("llvm"):
            configure_libllvm()
        import drjit as dr
        import mitsuba as mi

        current = mi.variant()
        if current is None or current.startswith("scalar"):
            mi.set_variant(variant)
        elif current != variant:
            raise RuntimeError(
                f"Mitsuba variant {current!r} is already active in this process; cannot switch "
                f"to {variant!r} (keep all tensors of a run on one device)"
            )
        if variant.startswith("llvm"):
            check_libllvm()
        return mi, dr


def match_threads(dr, variant: str) -> None:
    """Gives Dr.Jit's LLVM back-end torch's thread count (``torch.get_num_threads()``), and one
    thread while torch is in deterministic mode (``Trainer(deterministic=True)``).

    Threads: torch and Dr.Jit take turns in a step (render, then network), so each may use all
    the cores torch is given; following torch means one setting governs both, and the thread
    count Lightning gives each DDP process on one machine (cores / processes) holds for the
    renderer too instead of every rank running a pool as large as the machine
    (``bench/threads.py`` measures the alternatives). Determinism: Mitsuba accumulates
    gradients with atomic float adds whose order varies between threads, so two
    multi-threaded runs differ by ~1e-6 after a few steps (measured, and more after remeshing
    amplifies it); on one thread they are bit-identical. The CUDA back-end's atomics stay
    unordered."""
    if not variant.startswith("llvm"):
        return
    wanted = 1 if torch.are_deterministic_algorithms_enabled() else torch.get_num_threads()
    if dr.thread_count() != wanted:
        dr.set_thread_count(wanted)


@contextmanager
def bitmap_io_threads():
    """Mitsuba's OpenEXR reader and writer wait on Dr.Jit's thread pool and hang forever when it
    has one thread (as in deterministic mode; measured): bitmap file I/O gets two threads for
    its duration."""
    import drjit as dr

    count = dr.thread_count()
    if count < 2:
        dr.set_thread_count(2)
    try:
        yield
    finally:
        if dr.thread_count() != count:
            dr.set_thread_count(count)


def to_drjit(dr, mi, tensor: Tensor):
    """A torch tensor as a ``mi.TensorXf`` that owns its memory. Dr.Jit maps a torch tensor's
    memory without owning it (DLPack; measured: replayed kernels read freed memory), so the
    mapped values are copied by a kernel while the tensor is alive."""
    tensor = tensor.detach().float().contiguous()
    if tensor.is_cuda:
        torch.cuda.synchronize(tensor.device)
    mapped = mi.TensorXf(tensor)
    owned = mi.TensorXf(mapped.array * dr.opaque(mi.Float, 1.0), mapped.shape)
    dr.eval(owned)
    dr.sync_thread()
    return owned


def to_torch(dr, array) -> Tensor:
    """A Dr.Jit array or tensor as a torch tensor of its own (evaluated, synchronized, copied
    out of Dr.Jit's memory, which Dr.Jit may reuse)."""
    dr.eval(array)
    dr.sync_thread()
    return array.torch().clone()
