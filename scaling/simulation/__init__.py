"""The capacity simulator, room by room (see docs/simulator.md).

- ``model``: the simulation itself, pure; it follows ``scaling.policy``'s rules;
- ``workloads``: upload times and processing times (patterns, CSV, history);
- ``report``: the table, the printed install command, the chart;
- ``study``: one run of ``simulate_scaling``, from its flags to its result.
"""
