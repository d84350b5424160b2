"""The kernel's ports: an unwired port fails clearly, a bound one is built once, on use."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pytest

from meshops.governance.authorizer import RoleAuthorizer
from meshops.governance.guard import GovernedReadGuard
from meshops.kernel import ports
from meshops.kernel.access import ReadGuard
from meshops.kernel.auth import Actor, Authorizer, LocalOwnerAuthorizer
from meshops.kernel.config import load_settings
from meshops.kernel.errors import Forbidden, MeshopsError
from meshops.kernel.home import Context, Home
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


def test_importing_meshops_wires_every_port() -> None:
    import meshops  # noqa: F401  (its import runs assembly.install())

    assert [p.name for p in ports.ALL_PORTS if not ports.is_wired(p)] == []


class _Refuser:
    def check(self, actor: Actor, action: str, domain: str | None = None) -> None:
        raise Forbidden(f"{actor.name} may not {action}")


class _Hooks:
    def authorizer(self, home: Home) -> Authorizer:
        return _Refuser()

    def read_guard(self, home: Home) -> ReadGuard:
        return GovernedReadGuard(home)


def test_a_home_opens_with_the_wired_authorizer_unless_settings_name_one(
    tmp_path: Path,
) -> None:
    settings = load_settings(home=tmp_path, env={})
    assert isinstance(Home(settings).authorizer, RoleAuthorizer)  # governance's, wired
    wired = ports.ACCESS_HOOKS.get()
    ports.provide(ports.ACCESS_HOOKS, _Hooks)
    try:
        swapped = Home(settings)
        assert isinstance(swapped.authorizer, _Refuser)
        with pytest.raises(Forbidden):
            swapped.context().authorize("dataproduct.read_metadata")
        named = Home(replace(settings, authorizer="meshops.kernel.auth:LocalOwnerAuthorizer"))
        assert isinstance(named.authorizer, LocalOwnerAuthorizer)
    finally:
        ports.provide(ports.ACCESS_HOOKS, lambda: wired)


def test_the_layers_contract_holds() -> None:
    """`make lint` runs it too; here it fails where the wiring is changed (no cycles between
    areas, the kernel imports no area, areas import no api/cli/ui/client/assembly)."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 broken" in proc.stdout


class _RecordingGate:
    moves: ClassVar[list[str]] = []

    def __init__(self, home: Home) -> None:
        self.home = home

    def check(self, ctx: Context, version: Any, alias: str, current: int | None) -> None:
        self.moves.append(alias)


@pytest.mark.parametrize("setting", [None, "meshops.project.promotion:PromotionGate"])
def test_the_registry_asks_the_wired_promotion_gate(tmp_path: Path, setting: str | None) -> None:
    """No `[registry] promotion_gate`, or the path homes were initialised with before the
    default gate was wired: the gate bound to the port decides."""
    from meshops.registry.service import configured_gate

    extra = {} if setting is None else {"registry": {"promotion_gate": setting}}
    home = Home(replace(load_settings(home=tmp_path, env={}), extra=extra))
    wired = ports.PROMOTION_GATE.get()
    ports.provide(ports.PROMOTION_GATE, lambda: _RecordingGate)
    _RecordingGate.moves.clear()
    try:
        configured_gate(home.context()).check(home.context(), None, "production", None)
        assert _RecordingGate.moves == ["production"]
    finally:
        ports.provide(ports.PROMOTION_GATE, lambda: wired)
        home.close()
