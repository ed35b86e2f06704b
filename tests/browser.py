"""Headless Chromium for the browser tests: the distribution's ``chromium`` package driven by
Playwright for Python (Playwright's own browser download is not used). Tests that need it take
the ``browser`` fixture of tests/conftest.py, which skips with the reason when it is absent."""

from __future__ import annotations

import shutil
import socket

#: Software WebGL (SwiftShader), so the 3D view renders without a GPU.
ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _row(label: str) -> str:
    """XPath of the row of the viser control labelled ``label``."""
    return (f"//label[normalize-space()='{label}']"
            "/ancestor::div[contains(@class, 'mantine-Flex-root')][1]")


def field_value(page, label: str) -> str | None:
    """The value of the viser control labelled ``label`` (text field, number or slider)."""
    field = page.locator(f"xpath={_row(label)}//*[self::textarea or self::input"
                         "[not(@type='hidden')]]")
    if field.count() == 0:
        return None
    return field.first.input_value()


def slider_thumb(page, label: str):
    """The thumb of the viser slider labelled ``label`` (takes arrow keys)."""
    return page.locator(f"xpath={_row(label)}//*[@role='slider']")


def wait_for_field(page, label: str, text: str, timeout_s: float = 60.0) -> str:
    """Waits until the field ``label`` contains ``text``; returns its value."""
    import time

    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = field_value(page, label)
        if value is not None and text in value:
            return value
        page.wait_for_timeout(100)
    raise AssertionError(f"field {label!r} never showed {text!r} (last: {value!r})")
