"""Region reports for the regulator's dashboard: local share of compute, utilization, queue and waits."""
