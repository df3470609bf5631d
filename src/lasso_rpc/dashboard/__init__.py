"""The live dashboard (``GET /dashboard``): a summary feed on the event bus and a page that
follows it (``feed.py``, ``summary.py``, ``page.py``, ``assets/``)."""
