"""For test suites: the pytest plugin (markers, ``mock_fleet``, ``lasso_router``; registered
through the ``pytest11`` entry point) and helpers for setup hooks and tests."""
