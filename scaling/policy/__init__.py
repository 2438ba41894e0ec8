"""The video workers' scaling policy, room by room.

- ``aim``: the capacity target tracking drives the group towards (shared with
  the admin, ``scaling_status`` and the simulator);
- ``options``: the flags, checked; defaults and the target-from-wait rule;
- ``requests``: every write request, built from the metric spec;
- ``diff``: what AWS holds against what the requests would install;
- ``alarms``, ``dashboard``: the alarms that say when scaling breaks, and the
  dashboard's body, both built from the metric spec;
- ``current``: what AWS holds now, read before any write;
- ``install``: reading AWS, then installing or removing, idempotently.
"""
