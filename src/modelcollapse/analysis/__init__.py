"""Analysis of finished (or partial) run directories: reports, figures, alarms, closed forms, error anatomy,
tracking. Everything here reads the run directory; nothing re-runs a loop.

Floor: analysis. May import every floor below it (ground to chains); reads run directories through rundir.
"""
