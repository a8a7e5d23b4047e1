"""The error of bad input data, in a module of its own so that every data module can raise it.

`artistsim.data.layout` re-exports it (its historical home); `ids`, `arrays` and `paths`
raise it without importing the layout they are used by.
"""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data: the message names the file or the meta row at fault."""
