"""What the demo says, at the end, about the functions its mappings ran in execution environments
(`Functions:` in a mapping file, DESIGN §1.5.1), read from the service's own `function_*` metrics
(DESIGN §1.7), as the progress lines are read from the mapping metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from poller.demo.examples import plural

MIB = 1024 * 1024


def function_lines(registry: CollectorRegistry) -> list[str]:
    """One line per declared function that was invoked; none if no mapping names one."""
    names: set[str] = set()
    errors: dict[str, dict[str, int]] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "poller_function_cold_starts_total":
                names.add(sample.labels["function"])
            elif sample.name == "poller_function_errors_total" and sample.value:
                by_type = errors.setdefault(sample.labels["function"], {})
                by_type[sample.labels["error_type"]] = int(sample.value)
    lines = []
    for name in sorted(names):

        def value(metric: str, name: str = name) -> float:
            return float(registry.get_sample_value(metric, {"function": name}) or 0.0)

        invocations = int(value("poller_function_duration_seconds_count"))
        cold_starts = int(value("poller_function_cold_starts_total"))
        if not invocations and not cold_starts:
            continue
        inits = value("poller_function_init_duration_seconds_count")
        init = f" (init {value('poller_function_init_duration_seconds_sum') / inits:.2f} s)" if inits else ""
        failed = errors.get(name, {})
        kinds = ", ".join(f"{error_type} {count}" for error_type, count in sorted(failed.items()))
        lines.append(
            f"  {name}  {plural(invocations, 'invocation')}, {plural(cold_starts, 'cold start')}{init},"
            f" {plural(sum(failed.values()), 'function error')}{f' ({kinds})' if kinds else ''},"
            f" max memory used {value('poller_function_max_memory_bytes') / MIB:.0f} MB"
        )
    return lines
