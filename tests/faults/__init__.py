"""Fault injection: kill -9, an AWS endpoint that goes away, unwritable destinations, functions that
answer garbage, a soak run for leaks, and fuzzed mapping files (DESIGN §3)."""
