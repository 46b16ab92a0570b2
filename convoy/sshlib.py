"""asyncssh, imported here so that importing it prints nothing.

asyncssh names cryptography's DSA classes at import, and cryptography warns about each (about
fifteen lines on a user's console, at every `convoy up`). convoy neither offers nor accepts
DSA keys (OpenSSH dropped them too), so that warning, and only that one, is silenced. Import
asyncssh (and its submodules) from here only.
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"asyncssh(\.|$)")

import asyncssh  # noqa: E402 - after the filter, which must see the import's warnings
import asyncssh.encryption  # noqa: E402

__all__ = ["asyncssh"]
