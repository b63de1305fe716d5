"""Where `make demo`'s DAG spends its time: each rule's wall-clock span, from Snakemake's own log.

Snakemake prints `[date]` before every job it starts and every job it finishes; this reads those
lines from the saved output of `make demo` (or of `snakemake`) and prints, per run, the DAG's span
(first start to last finish, the issue's "DAG time") and each rule's, side by side, with the ratio
of each run to the first. Rules that ran at once (resynth_reference beside train) overlap, so the
spans do not add up to the DAG's. Compare revisions on one machine, one after the other, alternated:

    git clone REPO old && git -C old checkout REV && make -C old setup
    (cd old && make demo > ../old.log 2>&1); (cd new && make demo > ../new.log 2>&1)   # and again
    python benchmarks/demo_dag.py old.log new.log [--json]
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
STARTED = re.compile(r"^(?:local)?rule (\w+):$")
FINISHED = re.compile(r"^Finished jobid: \d+ \(Rule: (\w+)\)$")


def rule_spans(log_text: str) -> dict:
    """{"dag_s": first start to last finish, "rules": {rule: seconds}} of one Snakemake log."""
    stamp, started, spans, first, last = None, {}, {}, None, None
    for line in log_text.splitlines():
        line = line.strip()
        if match := STAMP.match(line):
            stamp = datetime.strptime(" ".join(match.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif (match := STARTED.match(line)) and stamp is not None:
            started[match.group(1)] = stamp
            first = first or stamp
        elif (match := FINISHED.match(line)) and match.group(1) in started:
            spans[match.group(1)] = (stamp - started[match.group(1)]).total_seconds()
            last = stamp
    if first is None or last is None:
        raise ValueError("no Snakemake job start and finish lines found")
    return {"dag_s": (last - first).total_seconds(), "rules": {k: v for k, v in spans.items() if k != "all"}}


def table(runs: dict[str, dict]) -> str:
    names, first = list(runs), next(iter(runs.values()))
    rules = list(dict.fromkeys(rule for run in runs.values() for rule in run["rules"]))
    lines = ["| span (s) | " + " | ".join(names) + " | " + " | ".join(f"{n} / {names[0]}" for n in names[1:]) + " |",
             "| --- |" + " --- |" * (2 * len(names) - 1)]

    def row(label: str, values: list[float | None], base: float | None) -> str:
        shown = [f"{v:.0f}" if v is not None else "-" for v in values]
        ratios = [f"{v / base:.2f}" if v is not None and base else "-" for v in values[1:]]
        return f"| {label} | " + " | ".join(shown + ratios) + " |"

    lines.append(row("**DAG**", [run["dag_s"] for run in runs.values()], first["dag_s"]))
    for rule in rules:
        lines.append(row(rule, [run["rules"].get(rule) for run in runs.values()], first["rules"].get(rule)))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="+", help="saved output of `make demo` or `snakemake`, one per run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs = {}
    for path in args.logs:
        try:
            name = Path(path).stem
            runs[name if name not in runs else f"{name}#{len(runs) + 1}"] = rule_spans(Path(path).read_text())
        except ValueError as err:
            parser.error(f"{path}: {err}")
    print(json.dumps(runs, indent=1) if args.json else table(runs))


if __name__ == "__main__":
    main()
