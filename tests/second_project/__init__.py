"""A second Django project that installs ``scaling`` from its wheel (tests/packaging/).

It shares nothing with the academy project: its own settings (``lecturehall``), its
own app and model (``lectures``: lecture encodes with integer status codes in a table
of its own), its own backlog source, no ``video`` app. Its files import each other
relatively or by the names its own manage.py puts on sys.path.
"""
