"""Execution environments: functions poller runs as Lambda runs them (DESIGN §1.5.1, §2).

A child process per environment runs the runtime's own client against a Lambda Runtime API that
poller serves to it; the pool starts, reuses, kills and retires environments per function.
"""
