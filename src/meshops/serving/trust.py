"""Where a pickled (python-flavor) model may be loaded, which runs code from its file.

Two keys must both turn:

1. the endpoint (or the batch call) says `trust_model_code=True`: whoever configures it
   accepts the model's code (audited as `serving.trust_model_code`);
2. the process may run it:
   - the API server (`meshops server`): only models an admin named in the server's
     `meshops.toml`, `[serving] trusted_code_models = ["name", ...]`; any other is refused
     (403) and stays out of the process;
   - the standalone data plane (`meshops serve ENDPOINT`): only when the admin started it
     with `--trust-model-code`, or the model is named as above;
   - an embedded SDK (the user's own process, e.g. a notebook or `meshops worker`): the
     endpoint's setting is enough, since the code runs with that user's own rights.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

from meshops.kernel.codetrust import is_api_server, named_in_setting
from meshops.kernel.errors import Forbidden
from meshops.serving.models import CODE_FLAVORS, check_trusted, model_name_of

SETTING = "trusted_code_models"
SERVE_TRUST_ENV = "MESHOPS_SERVE_TRUST_MODEL_CODE"
_STANDALONE: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def mark_standalone(home: Any, trust_model_code: bool) -> None:
    """`home` is served by `meshops serve`; `trust_model_code` is the admin's flag."""
    _STANDALONE[home] = trust_model_code


def standalone_trust_from_env() -> bool:
    return os.environ.get(SERVE_TRUST_ENV, "") == "1"


def check_may_load(home: Any, uri: str, version: Any, trust: bool) -> None:
    """Raise unless the model version `uri` resolves to may be loaded here (see module)."""
    check_trusted(uri, version, trust)
    if version.flavor not in CODE_FLAVORS:
        return
    name = model_name_of(uri)
    if named_in_setting(home.settings, "serving", SETTING, name):
        return
    if is_api_server(home):
        raise Forbidden(
            f"{uri} is a pickled {version.flavor!r} model: its code does not run in the API "
            "server unless an admin names it",
            {
                "model": uri,
                "where": "api server",
                "fix": "serve the endpoint with `meshops serve <endpoint> --trust-model-code` "
                f"(started by an admin), or an admin adds {name!r} to [serving] {SETTING} "
                "in the server's meshops.toml; or register it as sklearn (skops) or onnx",
            },
        )
    if home in _STANDALONE and not _STANDALONE[home]:
        raise Forbidden(
            f"{uri} is a pickled {version.flavor!r} model: this `meshops serve` was not "
            "started with --trust-model-code",
            {
                "model": uri,
                "where": "meshops serve",
                "fix": "an admin restarts it with `meshops serve <endpoint> "
                f"--trust-model-code`, or adds {name!r} to [serving] {SETTING}",
            },
        )
