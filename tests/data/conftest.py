"""A small task suite built once per session (jsonl), shared by the data tests."""

from __future__ import annotations

import pytest
from datahelpers import SMALL, read_jsonl

from rlsys.data.tasks.suite import build_task_suite


@pytest.fixture(scope="session")
def small_suite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return build_task_suite(str(tmp_path_factory.mktemp("suite")), SMALL)


@pytest.fixture(scope="session")
def suite_rows(small_suite: dict[str, str]) -> dict[str, list[dict]]:
    return {name: read_jsonl(path) for name, path in small_suite.items()}
