"""The ``sessionfs`` command line: a front end.

May import anything in ``store``; nothing imports it but the console-script entry point
(``store.cli.main:main``, also ``python -m store.cli``).
"""
