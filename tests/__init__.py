"""Trainyard's tests, laid out like the tree: ``tests/<service>/``, ``tests/shared/``, ``tests/flows/``
(cross-service flows), ``tests/drills/`` (fault and security drills), ``tests/support/`` (helpers, no tests)."""
