"""Generated from proto/aipx/v1 by scripts/gen_proto.py. Do not edit."""
