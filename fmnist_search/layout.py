"""The old name of ``fmnist_search.store`` (issue 33): the same module object, so that code
not yet moved to the new name, and tests that patch ``layout.write_text``, keep working.

New code imports ``fmnist_search.store``.
"""

from __future__ import annotations

import sys

from fmnist_search import store

sys.modules[__name__] = store
