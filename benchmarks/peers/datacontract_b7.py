"""B7 peer: `datacontract test` (datacontract-cli's Python API, the same code the command
runs) on an ODCS contract with a local Parquet server. Prints one JSON line: the wall time,
the process's peak RSS and every check with its verdict. The timed span starts after the
entry module is imported and covers reading the contract and the test, with the first-use
work inside it (DuckDB's connection, Soda's checks)."""

from __future__ import annotations

import json
import resource
import sys
import time

from datacontract.data_contract import DataContract


def main() -> None:
    contract = sys.argv[1]
    started = time.perf_counter()
    run = DataContract(data_contract_file=contract).test()
    seconds = time.perf_counter() - started
    checks = [
        {
            "type": str(getattr(c, "type", "") or ""),
            "name": str(getattr(c, "name", "") or ""),
            "field": str(getattr(c, "field", "") or ""),
            "model": str(getattr(c, "model", "") or ""),
            "result": str(getattr(getattr(c, "result", ""), "value", getattr(c, "result", ""))),
            "reason": str(getattr(c, "reason", "") or "")[:300],
        }
        for c in run.checks
    ]
    result = str(getattr(run.result, "value", run.result))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"seconds": seconds, "result": result, "checks": checks, "peak_mb": peak_mb}))


if __name__ == "__main__":
    main()
