"""The kernel and modules of the end-to-end tests, built once per session."""

from __future__ import annotations

import pytest

from tests.e2e.guest import Kit, build_kit


@pytest.fixture(scope="session")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    """The Debian 6.1 kernel image and mlt.ko/leaky.ko built for it."""
    return build_kit(tmp_path_factory.mktemp("kmod-build"))
