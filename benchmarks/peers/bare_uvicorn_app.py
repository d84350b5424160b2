"""The limit for B5: a bare ASGI app on uvicorn that parses the JSON records and calls the
scikit-learn model, nothing else (no validation, logging, metrics or auth)."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from typing import Any

import numpy as np

# The model was fitted on a DataFrame; the bare app feeds it arrays on purpose (the limit).
warnings.filterwarnings("ignore", message="X does not have valid feature names")

with open(os.environ["B5_MODEL_PICKLE"], "rb") as fh:
    MODEL = pickle.load(fh)  # written by b5_serving.py
COLUMNS = json.loads(os.environ["B5_COLUMNS"])


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] != "POST":  # the health check
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    records = json.loads(body)["records"]
    rows = np.array([[r[c] for c in COLUMNS] for r in records], dtype=np.float64)
    out = json.dumps({"predictions": MODEL.predict(rows).tolist()}).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": out})
