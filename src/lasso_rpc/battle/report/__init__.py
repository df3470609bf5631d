"""Reports, all rendered from the result JSON alone (schema ``lasso-rpc.battle/1``).

- ``schema``: the result's schema, ``validate_result``, ``load_result``, ``dump_result``;
- ``formatting``: numbers, operators, chaos and breaker labels;
- ``markdown``, ``junit``, ``html``: the renderers (plotly, for HTML, is imported on use);
- ``console``: the SLO table on a terminal;
- ``files``: ``write_reports``, every file of a run.

A new format: a ``render_x(result) -> str`` module here, added to ``files.write_reports``.
"""
