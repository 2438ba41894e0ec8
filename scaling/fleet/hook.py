"""The termination lifecycle hook's name, shared by the installer and the reconciler.

``install_scaling_policy`` installs a hook of this name on the group
(``scaling.policy.hook``); the reconciler records heartbeats for, and completes,
the lifecycle actions of instances waiting in ``Terminating:Wait`` under it.
"""

LIFECYCLE_HOOK_NAME = "academy-drain-on-terminate"
