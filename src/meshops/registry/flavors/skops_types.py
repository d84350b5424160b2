"""What a skops model file may name: an explicit list of exact names, never a prefix.

A skops file is a zip with a `schema.json` tree; every node names the Python object it
rebuilds (`__module__` + `__class__`) and how (`__loader__`). Loading a node whose name is
a function calls that function later (`FunctionTransformer(func=...)`), so a prefix list
like "numpy." let `numpy.testing._private.utils.runstring` through, which executes a
string. Here every name in the tree is checked against one of three exact sets:

- callables (function, partial, method and operator nodes): `SAFE_FUNCTIONS`, a short list
  of pure NumPy ufuncs and the scikit-learn scoring functions feature selectors keep;
- types used as values (`TypeNode`, e.g. a dtype argument): `SAFE_TYPE_VALUES`;
- everything else (objects, arrays, trees, containers): `allowed_types()`, which is the
  scikit-learn estimators skops itself lists by exact name, their internal types (trees,
  losses, binners, distance metrics), NumPy arrays/dtypes/random states and SciPy sparse
  matrices.

`refused_names` also asks skops' own `get_untrusted_types` and checks its answer against
the same sets, so a node kind this walk does not know cannot slip past.
"""

from __future__ import annotations

import io
import json
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

FUNCTION_LOADERS = frozenset({"FunctionNode", "PartialNode", "MethodNode", "OperatorFuncNode"})
TYPE_VALUE_LOADERS = frozenset({"TypeNode"})
# Containers and leaves that skops rebuilds itself (no name of ours is called).
DATA_LOADERS = frozenset({"JsonNode", "BytesNode", "BytearrayNode", "CachedNode"})
MAX_SCHEMA_NODES = 1_000_000

_UFUNCS = (
    "abs absolute arcsinh arctan cbrt ceil clip cos cosh exp exp2 expm1 fabs floor log log10 "
    "log1p log2 negative reciprocal rint sign sin sinh sqrt square tan tanh trunc"
)
SAFE_FUNCTIONS = frozenset(
    {f"numpy.{name}" for name in _UFUNCS.split()}
    | {
        f"sklearn.feature_selection._univariate_selection.{name}"
        for name in ("f_classif", "f_regression", "chi2", "r_regression")
    }
    | {
        "sklearn.feature_selection._mutual_info.mutual_info_classif",
        "sklearn.feature_selection._mutual_info.mutual_info_regression",
    }
)

_NUMPY_SCALARS = (
    "bool bool_ bytes_ complex64 complex128 datetime64 float16 float32 float64 int8 int16 "
    "int32 int64 longlong object_ str_ timedelta64 uint8 uint16 uint32 uint64 ulonglong void"
)
NUMPY_SCALAR_TYPES = frozenset(f"numpy.{name}" for name in _NUMPY_SCALARS.split())
SAFE_TYPE_VALUES = NUMPY_SCALAR_TYPES | {
    f"builtins.{name}" for name in ("int", "float", "str", "bool", "bytes", "object")
}

_CY_LOSSES = (
    "HalfSquaredError AbsoluteError PinballLoss HuberLoss HalfPoissonLoss HalfGammaLoss "
    "HalfTweedieLoss HalfTweedieLossIdentity HalfBinomialLoss ExponentialLoss "
    "HalfMultinomialLoss"
)
_DISTANCES = (
    "Euclidean SEuclidean Manhattan Chebyshev Minkowski Mahalanobis Hamming Canberra "
    "BrayCurtis Jaccard Matching Dice RogersTanimoto RussellRao SokalMichener SokalSneath "
    "Haversine"
)
_SPARSE = ("csr", "csc", "coo", "bsr", "dia", "dok", "lil")
EXTRA_TYPES = frozenset(
    {f"builtins.{name}" for name in ("dict", "list", "tuple", "set", "slice", "str", "int")}
    | {f"builtins.{name}" for name in ("float", "bool", "bytes", "bytearray", "complex")}
    | {"collections.OrderedDict", "collections.defaultdict"}
    | {"numpy.ndarray", "numpy.dtype", "numpy.ma.core.MaskedArray"}
    | {"numpy.random.mtrand.RandomState", "numpy.random._generator.Generator"}
    | {f"scipy.sparse._{kind}.{kind}_matrix" for kind in _SPARSE}
    | {f"scipy.sparse._{kind}.{kind}_array" for kind in _SPARSE}
    # Fitted internals of the estimators users train (forests, boosting, neighbours).
    | {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.preprocessing._label.LabelEncoder",
        "sklearn.preprocessing._label.LabelBinarizer",
        "sklearn.dummy.DummyClassifier",
        "sklearn.dummy.DummyRegressor",
    }
    # The column converters of the training template's pipelines (pure, plain-data state;
    # `flavors/tabular.py`, whose TRUSTED_TYPES a test compares with these names).
    | {
        f"meshops.registry.flavors.tabular.{name}"
        for name in ("AsNumbers", "AsCategories", "DatetimeParts")
    }
    | {f"sklearn._loss._loss.Cy{name}" for name in _CY_LOSSES.split()}
    | {f"sklearn.metrics._dist_metrics.{name}Distance64" for name in _DISTANCES.split()}
)


@cache
def allowed_types() -> frozenset[str]:
    """Every type name a skops model file may rebuild (exact names)."""
    from skops.io import _trusted_types as skops_lists

    from_skops = (
        set(skops_lists.SKLEARN_ESTIMATOR_TYPE_NAMES)
        | set(skops_lists.SKLEARN_INTERNAL_TYPE_NAMES)
        | set(skops_lists.NUMPY_DTYPE_TYPE_NAMES)
        | set(skops_lists.NUMPY_RANDOM_BIT_GENERATOR_TYPE_NAMES)
    )
    # skops lists estimators by module walk; keep only scikit-learn's own exact names.
    return frozenset(n for n in from_skops if n.startswith(("sklearn.", "numpy."))) | EXTRA_TYPES


def schema_names(path: Path | bytes) -> list[tuple[str, str]]:
    """(loader, module.name) of every node of the file's (or bytes') schema. Raises
    ValueError when it is not a skops archive."""
    source = io.BytesIO(path) if isinstance(path, bytes) else path
    try:
        with zipfile.ZipFile(source) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, RecursionError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a skops file: {type(exc).__name__}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"its schema.json is not JSON: {exc}") from exc
    return _walk(schema)


def _walk(schema: Any) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    stack = [schema]
    seen = 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_SCHEMA_NODES:
            raise ValueError(f"its schema has more than {MAX_SCHEMA_NODES} nodes")
        if isinstance(node, dict):
            if "__class__" in node or "__module__" in node:
                name = f"{node.get('__module__')}.{node.get('__class__')}"
                found.append((str(node.get("__loader__")), name))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def is_allowed(loader: str, name: str, extra: frozenset[str]) -> bool:
    if name in extra:
        return True
    if loader in FUNCTION_LOADERS:
        # Only a plain function reference: a bound method, partial or operator node is
        # refused even when its name happens to read like a safe ufunc ("numpy.clip").
        return loader == "FunctionNode" and name in SAFE_FUNCTIONS
    if loader in TYPE_VALUE_LOADERS:
        return name in SAFE_TYPE_VALUES
    if loader in DATA_LOADERS:  # rebuilt from data (or a node seen before): nothing called
        return name in allowed_types() | SAFE_FUNCTIONS | SAFE_TYPE_VALUES
    return name in allowed_types()


def refused_names(path: Path | bytes, untrusted: list[str], extra: frozenset[str]) -> list[str]:
    """The names in the file that are not allowed (sorted, unique); [] when it may load.

    `untrusted` is skops' `get_untrusted_types` for the file: each of its names must be in
    the explicit sets too (callable or type), whatever node this walk saw it in."""
    refused = {name for loader, name in schema_names(path) if not is_allowed(loader, name, extra)}
    permitted = allowed_types() | SAFE_FUNCTIONS | SAFE_TYPE_VALUES | extra
    refused.update(name for name in untrusted if name not in permitted)
    return sorted(refused)
