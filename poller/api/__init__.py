"""The ways teams already manage Lambda, made poller's: the event-source-mapping API (DESIGN §1.9,
`esm_*`) and SAM/CloudFormation templates (§1.10, `template_*`).

Both produce the same mapping documents the YAML loader reads, judged by the one resolver of
`poller.config`, and the same frozen definitions.
"""
