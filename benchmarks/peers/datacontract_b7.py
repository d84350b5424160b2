"""B7 peer: `datacontract test` (datacontract-cli's Python API, the same code the command
runs) on an ODCS contract with a local Parquet server. Prints one JSON line: the wall time
and every check with its verdict."""

from __future__ import annotations

import json
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
    print(json.dumps({"seconds": seconds, "result": result, "checks": checks}))


if __name__ == "__main__":
    main()
