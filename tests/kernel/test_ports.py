"""The kernel's ports: an unwired port fails clearly, a bound one is built once, on use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meshops.kernel import ports
from meshops.kernel.errors import MeshopsError
from meshops.kernel.ports import NotWired, Port


@pytest.fixture
def scratch() -> Iterator[Port[list[str]]]:
    port: Port[list[str]] = Port("scratch", "a port of this test")
    yield port
    ports._factories.pop(port, None)
    ports._providers.pop(port, None)


def test_an_unwired_port_names_itself_and_the_fix(scratch: Port[list[str]]) -> None:
    assert not ports.is_wired(scratch)
    with pytest.raises(NotWired) as info:
        scratch.get()
    assert isinstance(info.value, MeshopsError)
    assert info.value.error == "not_wired"
    assert "scratch" in info.value.message
    assert "install()" in info.value.detail["fix"]


def test_wiring_binds_a_provider_built_once_on_first_use(scratch: Port[list[str]]) -> None:
    built: list[int] = []

    def factory() -> list[str]:
        built.append(1)
        return ["provided"]

    ports.provide(scratch, factory)
    assert ports.is_wired(scratch) and built == []  # binding builds nothing
    assert scratch.get() == ["provided"]
    assert scratch.get() is scratch.get() and built == [1]


def test_binding_again_replaces_the_provider(scratch: Port[list[str]]) -> None:
    ports.provide(scratch, lambda: ["first"])
    assert scratch.get() == ["first"]
    ports.provide(scratch, lambda: ["second"])
    assert scratch.get() == ["second"]
