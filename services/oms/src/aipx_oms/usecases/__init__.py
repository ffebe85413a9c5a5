"""The OMS's use cases, one module each; `aipx_oms.service.OrderService` composes them.

books (account books and working orders in memory), coalescing (one run for concurrent identical requests),
committing (commit, then apply to memory), submit, cancel_replace, reports (execution reports), streaming.
Each is unit-tested without gRPC (tests/oms/test_usecases.py).
"""
