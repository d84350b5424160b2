"""The HTTP transport shared by every area's remote client.

One keep-alive `httpx.Client` per platform; errors come back as the same `MeshopsError`
subclasses the embedded services raise, so callers cannot tell the transports apart.
Inside a pipeline step every request carries the step (`kernel.steps`, header
`x-meshops-step`), so what the server creates for it is linked to the step run once the
server has verified the claim against the run (`api/deps.py`).
Request bodies are written like the server's answers (`meshops.kernel.jsontext`): a NaN or
infinite float is the string "NaN"/"Infinity"/"-Infinity", which the server's typed models
and the SDK's read back as floats (never a bare literal that strict JSON readers refuse).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from meshops.kernel import jsontext, steps
from meshops.kernel.errors import MeshopsError, error_from_json

if TYPE_CHECKING:
    import pyarrow as pa

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


class HttpTransport:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"user-agent": "meshops-sdk"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=DEFAULT_TIMEOUT,
            transport=transport,
            # Idle connections are dropped well before the server's keep-alive timeout
            # (uvicorn: 5 s): at equal timeouts a request sent on a connection the server is
            # closing that instant fails with "Server disconnected", and a POST is not retried.
            limits=httpx.Limits(
                max_keepalive_connections=20, max_connections=50, keepalive_expiry=2.0
            ),
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send a request; returns decoded JSON (or bytes for non-JSON bodies)."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        if json is not None:
            content = jsontext.dumps(json)
            headers = {"content-type": "application/json", **(headers or {})}
        here = steps.current_step()
        if here is not None and here.step_run_id:
            headers = {steps.HEADER: here.header(), **(headers or {})}
        try:
            response = self.client.request(
                method, path, params=clean, content=content, headers=headers
            )
        except httpx.TransportError as exc:
            raise MeshopsError(
                f"cannot reach the meshops server at {self.base_url}: {exc}",
                {"fix": "start it with `meshops server` or check MESHOPS_URI"},
            ) from exc
        if response.status_code >= 400:
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text
            raise error_from_json(response.status_code, body)
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        multipart: tuple[dict[str, str], dict[str, pa.Table]] | None = None,
    ) -> Any:
        """One call of the RPC layer (`meshops.kernel.rpc`): JSON, or form fields and
        tables (each a file part in the kernel's wire codec)."""
        if multipart is None:
            return self.request(method, path, params=params, json=json)
        fields, tables = multipart
        if not fields and not tables:
            return self.request(method, path, params=params)
        from meshops.kernel.wire import ARROW_STREAM, encode_table

        files = {
            name: (f"{name}.arrows", encode_table(table), ARROW_STREAM)
            for name, table in tables.items()
        }
        encoded = httpx.Request("POST", self.base_url, data=fields, files=files or None)
        headers = {"content-type": encoded.headers["content-type"]}
        return self.request(method, path, params=params, content=encoded.read(), headers=headers)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None, **params: Any) -> Any:
        return self.request("POST", path, json=json, params=params)

    def put(self, path: str, json: Any = None, **params: Any) -> Any:
        return self.request("PUT", path, json=json, params=params)

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, params=params)

    def close(self) -> None:
        self.client.close()
