"""Read models built from the event log, each writing its rows and tracking in one transaction."""
