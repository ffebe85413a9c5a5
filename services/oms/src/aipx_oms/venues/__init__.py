"""Execution venues behind one interface (venues.base.ExecutionVenue); PaperVenue is the reference one."""
