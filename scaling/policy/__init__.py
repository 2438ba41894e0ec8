"""The video workers' scaling policy, room by room.

- ``aim``: the capacity target tracking drives the group towards (shared with
  the admin, ``scaling_status`` and the simulator);
- ``options``: the flags, checked; defaults and the target-from-wait rule;
- ``requests``: every write request, built from the metric spec;
- ``diff``: what AWS holds against what the requests would install;
- ``install``: reading AWS, then installing or removing, idempotently.
"""
