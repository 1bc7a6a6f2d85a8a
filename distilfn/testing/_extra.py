"""The ImportError a testing helper raises when the ``test`` extra is not installed."""

from __future__ import annotations

__all__ = ["missing_test_extra"]


def missing_test_extra(module: str, package: str) -> ImportError:
    """The error for ``module``, which needs ``package`` from ``pip install 'distilfn[test]'``.

    >>> print(missing_test_extra("distilfn.testing.strategies", "hypothesis"))
    distilfn.testing.strategies needs hypothesis: pip install 'distilfn[test]'
    """
    return ImportError(f"{module} needs {package}: pip install 'distilfn[test]'", name=package)
