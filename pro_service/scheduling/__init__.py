"""Study schedules: when each time point is due, opens and closes, relative to its anchor."""
