"""Typed asyncio clients of the platform's gRPC services: `oms.OmsClient` (aipx.v1.OmsService, x-api-key) and
`admin.AdminClient` (aipx.v1.AdminService, x-admin-token). One home for each: the CLIs, the cognitive
function and the tests all use these."""
