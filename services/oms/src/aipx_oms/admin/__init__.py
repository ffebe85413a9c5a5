"""The admin service (aipx.v1.AdminService) and the account queries of the OMS: operator credential scope
(`guard`), use cases (`actions`), the gRPC translation (`servicer`), the audit outbox relay to `admin-events`
(`relay`), cross-process invalidation over LISTEN/NOTIFY (`notify`), GetAccount/StreamAccount (`accounts`) and
their wiring into the OMS process (`component`)."""
