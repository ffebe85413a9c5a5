"""The OMS's decisions as plain code (no I/O): order model, state machine, validation, risk, positions."""
