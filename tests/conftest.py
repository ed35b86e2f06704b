"""Shared test setup: offline, headless, small deterministic meshes."""

import gc
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("WANDB_MODE", "offline")

import pytest  # noqa: E402
import torch  # noqa: E402

from lit3d.geometry.mesh import Mesh  # noqa: E402
from lit3d.geometry.primitives import IcoSphere  # noqa: E402


@pytest.fixture
def random_mesh() -> Mesh:
    """A 42-vertex ico-sphere with random vertex noise (irregular edges, areas, degrees 5 and 6)."""
    g = torch.Generator().manual_seed(1)
    mesh = IcoSphere(subdivisions=1, radius=1.0).build()
    return Mesh(mesh.vertices + 0.1 * torch.randn(mesh.vertices.shape, generator=g), mesh.faces)


@pytest.fixture(autouse=True)
def no_leaked_deterministic_mode():
    """``Trainer(deterministic=True)`` switches torch's deterministic mode on for the whole
    process and never off (Lightning's behaviour); it would make later tests run Mitsuba on one
    thread."""
    yield
    torch.use_deterministic_algorithms(False)


@pytest.fixture(autouse=True)
def no_leaked_console_logger():
    """A command run in the test process gives lit3d's logger its own handler and stops it
    propagating (``lit3d.console.quiet``); put it back so that later tests see its records
    through pytest's ``caplog``, whatever ran before them."""
    import logging

    log = logging.getLogger("lit3d")
    state = (list(log.handlers), log.propagate, log.level)
    yield
    log.handlers[:], log.propagate, log.level = state[0], state[1], state[2]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (tests/browser.py), one per test module; skips where the
    distribution's ``chromium`` or Playwright is absent (``scripts/setup.sh --dev`` installs
    both)."""
    from tests.browser import ARGS, chromium_path

    path = chromium_path()
    if path is None:
        pytest.skip("no chromium on PATH (scripts/setup.sh --dev installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (scripts/setup.sh --dev installs it)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(autouse=True)
def no_leaked_mitsuba_objects():
    """Dr.Jit traces a virtual call over every registered instance of a class (emitters,
    BSDFs, shapes), so Mitsuba objects an earlier test left to the cyclic garbage collector
    change the kernels of later renders, and each test compiled kernels of its own (CHANGELOG).
    Collecting after every test lets tests share compiled kernels; freezing what survives keeps
    each collection to one test's objects."""
    yield
    if "mitsuba" in sys.modules:
        gc.collect()
        gc.freeze()
