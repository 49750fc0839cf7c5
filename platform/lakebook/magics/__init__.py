"""IPython magics: ``%load_ext lakebook`` registers ``%lake`` and ``%%lake``."""

from .lake_magic import LakeMagics


def load_ipython_extension(ipython) -> None:
    ipython.register_magics(LakeMagics)


__all__ = ["LakeMagics", "load_ipython_extension"]
