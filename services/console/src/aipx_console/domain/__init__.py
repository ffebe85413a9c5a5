"""The console's plain logic (no I/O): market board, feed health, activity, key figures, the page model."""
