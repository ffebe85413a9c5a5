"""Root test configuration: the stack fixtures (kafka_bootstrap, new_topic, ...) for every test."""

pytest_plugins = ["aipx_stack.pytest_plugin"]
