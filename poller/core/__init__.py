"""The pure core: values and decisions with no I/O and the clock passed in (DESIGN §2)."""
