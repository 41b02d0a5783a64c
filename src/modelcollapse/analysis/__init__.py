"""Analysis of finished (or partial) run directories: reports, figures, alarms, closed forms, error anatomy,
tracking. Everything here reads the run directory; nothing re-runs a loop."""
