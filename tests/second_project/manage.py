#!/usr/bin/env python
"""The second project's manage.py (run from this folder by tests/packaging/)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lecturehall.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
