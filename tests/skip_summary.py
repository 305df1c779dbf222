"""The end of every test run: the groups of tests it skipped and why."""


def pytest_terminal_summary(terminalreporter):
    """Which groups of tests were skipped and why, one line per reason, so a green run hides none."""
    groups: dict[str, list[str]] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        groups.setdefault(reason.removeprefix("Skipped: "), []).append(report.nodeid)
    terminalreporter.section("skipped test groups")
    if not groups:
        terminalreporter.write_line("none: every selected test ran")
    for reason, tests in sorted(groups.items(), key=lambda group: (-len(group[1]), group[0])):
        files = sorted({test.split("::")[0] for test in tests})
        terminalreporter.write_line(f"{len(tests)} skipped: {reason} ({', '.join(files)})")
