"""The public surface of both packages is exactly what ``__all__`` says (after trio's test)."""

from __future__ import annotations

import inspect
import types
from importlib import resources

import pytest

import trio_conpool
import trio_requests
import trio_requests.testing

PACKAGES = [trio_conpool, trio_requests, trio_requests.testing]

parametrize_packages = pytest.mark.parametrize("package", PACKAGES, ids=lambda m: m.__name__)


def _defined_in(value: object, package: types.ModuleType) -> bool:
    module = getattr(value, "__module__", None)
    return isinstance(module, str) and (
        module == package.__name__ or module.startswith(package.__name__ + ".")
    )


@parametrize_packages
def test_all_is_sorted_and_unique(package: types.ModuleType) -> None:
    names = list(package.__all__)
    assert all(isinstance(name, str) for name in names)
    assert len(set(names)) == len(names), "duplicates in __all__"
    assert names == sorted(names), "__all__ is not sorted"


@parametrize_packages
def test_exported_names_exist_and_are_public(package: types.ModuleType) -> None:
    for name in package.__all__:
        assert not name.startswith("_"), f"{package.__name__}.__all__ exports private {name!r}"
        assert hasattr(package, name), f"{package.__name__}.__all__ names missing {name!r}"
        value = getattr(package, name)
        assert not isinstance(value, types.ModuleType), f"{name!r} is a module, not an API"


@parametrize_packages
def test_public_definitions_are_exported(package: types.ModuleType) -> None:
    exported = set(package.__all__)
    unexported = [
        name
        for name, value in vars(package).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)  # submodules such as `testing`
        and name != "annotations"  # `from __future__ import annotations`
        and (inspect.isclass(value) or inspect.isfunction(value))
        and _defined_in(value, package)
        and name not in exported
    ]
    assert unexported == [], f"public in {package.__name__} but missing from __all__"


@pytest.mark.parametrize("package", [trio_conpool, trio_requests], ids=lambda m: m.__name__)
def test_ships_py_typed(package: types.ModuleType) -> None:
    # One py.typed at the top of a distribution's package covers its subpackages.
    assert resources.files(package).joinpath("py.typed").is_file()
