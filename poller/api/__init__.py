"""The ways teams already manage Lambda, made poller's (DESIGN §1.9, §1.10).

Each produces the same frozen mapping and function definitions the YAML loader does.
"""
