"""The benchmark's optional dependencies (timm, mmpretrain, matplotlib): imported where they are used.

``import swin_dense.benchmark`` needs none of them; each peer or the plot imports its own through
:func:`require`, whose error names the extra that installs them.
"""
import importlib
from types import ModuleType

INSTALL_HINT = "pip install swin_dense[bench] (from a checkout: pip install -e '.[bench]')"


class MissingExtra(ImportError):
    """An optional dependency of the benchmark is not installed or does not import."""


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` for ``purpose`` (e.g. 'the timm peer').

    Raises:
        MissingExtra: (an ImportError) saying what failed to import, for what, and how to install it.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtra(f'{purpose} needs {module.split(".")[0]}, which does not import ({err}); '
                           f'the benchmark\'s peers and plot are optional: {INSTALL_HINT}') from err
