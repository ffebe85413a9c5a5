"""Typed asyncio clients of the platform's gRPC services: `oms.OmsClient` (aipx.v1.OmsService, x-api-key) and
`admin.AdminClient` (aipx.v1.AdminService, x-admin-token), both built on `base.GrpcClient` (the channel opened
on first use, the stub, the credential header, the default deadline, `async with`). One home for each: the
CLIs, the cognitive function and the tests all use these."""
