"""Bounds on what a request may ask for: every number of the API and every nested document.

An integer that does not fit the database, a look-back of 10^30 days or a JSON document
nested 900 levels deep is the caller's mistake, and the answer to it is a 422 that names
the field, never a 500 from deep inside SQLite, `datetime` or the recursion limit. The
annotated types below carry the bounds into the OpenAPI document (`minimum`/`maximum`), so
clients and Schemathesis see them too; `check_nesting` bounds documents without recursing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, Field

from meshops.kernel.errors import InvalidInput

if TYPE_CHECKING:
    import yaml

MAX_PAGE = 10_000  # rows of one page of any list
MAX_SEARCH_PAGE = 1_000  # catalog search hits of one page (what the search service accepts)
MAX_OFFSET = 10_000_000
MAX_DAYS = 3_650  # look-back windows and lifetimes of tokens, grants and requests
MAX_VERSION = 2**31 - 1  # model versions
MAX_ROW_ID = 2**63 - 1  # integer ids of the metadata database (alerts, results)
MAX_BYTES = 2**63 - 1  # file sizes
MAX_LEASE_SECONDS = 86_400.0  # a worker's lease on a pipeline run: at most a day
MAX_LINEAGE_DEPTH = 50  # kernel.lineage.MAX_DEPTH
MAX_TTL_SECONDS = 100 * 365 * 86_400  # a feature's time to live: a century is "forever"
MAX_CONCURRENCY = 10_000  # runs of one trigger at once
MAX_PENDING = 1_000_000  # events a trigger may hold back
MAX_NESTING = 64  # levels of a JSON/YAML document (descriptors, contracts, params ...)
MAX_YAML_NODES = 200_000  # nodes of one YAML document, aliases expanded

# Batch run creation (tracking `create_runs`): one request is one transaction.
MAX_RUNS_PER_BATCH = 10_000  # runs of one request
MAX_PARAMS_PER_RUN = 1_000  # params (and, separately, tags) of one run
MAX_METRIC_VALUES_PER_RUN = 100_000  # metric values of one run
MAX_METRIC_VALUES_PER_BATCH = 1_000_000  # metric values of one request

Limit = Annotated[int, Field(ge=1, le=MAX_PAGE)]
SearchLimit = Annotated[int, Field(ge=1, le=MAX_SEARCH_PAGE)]
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET)]
Days = Annotated[int, Field(ge=1, le=MAX_DAYS)]
Version = Annotated[int, Field(ge=1, le=MAX_VERSION)]
RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]
Size = Annotated[int, Field(ge=0, le=MAX_BYTES)]
Count = Annotated[int, Field(ge=0, le=MAX_ROW_ID)]
LeaseSeconds = Annotated[float, Field(gt=0, le=MAX_LEASE_SECONDS)]
Percent = Annotated[float, Field(ge=0, le=100)]
LineageDepth = Annotated[int, Field(ge=1, le=MAX_LINEAGE_DEPTH)]
TtlSeconds = Annotated[int, Field(ge=0, le=MAX_TTL_SECONDS)]
Concurrency = Annotated[int, Field(ge=1, le=MAX_CONCURRENCY)]
Pending = Annotated[int, Field(ge=0, le=MAX_PENDING)]
Dimension = Annotated[int, Field(ge=-1, le=MAX_VERSION)]  # of a tensor shape; -1: any


def nesting_depth(value: Any, limit: int = MAX_NESTING) -> int:
    """The depth of `value` (a scalar is 0, `{}` is 1), counted without recursion and
    given up as soon as it passes `limit` (then `limit + 1`)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return depth
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_nesting(value: Any, field: str, limit: int = MAX_NESTING) -> Any:
    """`value`, or InvalidInput naming `field` when it nests deeper than `limit` levels."""
    if nesting_depth(value, limit) > limit:
        raise InvalidInput(
            f"{field} nests deeper than {limit} levels",
            {"field": field, "fix": f"flatten the document to at most {limit} levels"},
        )
    return value


def _shallow(value: Any) -> Any:
    # A pydantic validator: a ValueError becomes the standard 422 naming the field.
    if nesting_depth(value) > MAX_NESTING:
        raise ValueError(f"nests deeper than {MAX_NESTING} levels; flatten the document")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_shallow)]
JsonValue = Annotated[Any, AfterValidator(_shallow)]


MAX_EXPRESSION = 4_000  # characters of a CEL expression (policies, trigger filters)
MAX_EXPRESSION_NESTING = 32  # levels of ( [ { in one


def check_expression(text: str, field: str = "expression") -> str:
    """`text`, or InvalidInput when it is longer or nests deeper than an expression a
    person writes: the parsers of such languages recurse per level, and a 1,500-level
    expression costs seconds of CPU before it fails. Brackets inside string literals are
    counted too (an over-estimate that no real expression reaches)."""
    if len(text) > MAX_EXPRESSION:
        raise InvalidInput(
            f"{field} is {len(text)} characters long; the limit is {MAX_EXPRESSION}",
            {"field": field, "fix": "split the rule into several policies"},
        )
    depth = deepest = 0
    for char in text:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    if deepest > MAX_EXPRESSION_NESTING:
        raise InvalidInput(
            f"{field} nests brackets {deepest} levels deep; the limit is {MAX_EXPRESSION_NESTING}",
            {"field": field, "fix": "drop redundant parentheses"},
        )
    return text


def yaml_too_large(path: str, problem: str) -> InvalidInput:
    return InvalidInput(
        f"{path}: {problem}",
        {"file": path, "fix": f"keep documents within {MAX_NESTING} levels, without alias bombs"},
    )


def check_yaml_node(node: yaml.Node | None, path: str) -> None:
    """Refuse a composed YAML document deeper than MAX_NESTING levels or whose aliases
    expand past MAX_YAML_NODES nodes (a "billion laughs" file), before anything builds or
    walks its data: the composed graph shares an aliased node; this walk counts each use."""
    import yaml

    stack: list[tuple[yaml.Node, int]] = [(node, 1)] if node is not None else []
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > MAX_YAML_NODES:
            raise yaml_too_large(path, f"the document expands to more than {MAX_YAML_NODES} nodes")
        if isinstance(item, yaml.MappingNode):
            children = [child for pair in item.value for child in pair]
        elif isinstance(item, yaml.SequenceNode):
            children = list(item.value)
        else:
            continue
        if depth > MAX_NESTING:
            raise yaml_too_large(path, f"the document nests deeper than {MAX_NESTING} levels")
        stack.extend((child, depth + 1) for child in children)


def load_bounded_yaml(text: str, path: str) -> Any:
    """`yaml.safe_load` for files that may come from someone else (a project checkout the
    server plans): bounded by `check_yaml_node` first. Raises yaml.YAMLError for bad
    syntax (as safe_load does) and InvalidInput for a document that is too large."""
    import yaml

    try:
        check_yaml_node(yaml.compose(text, Loader=yaml.SafeLoader), path)
        return yaml.safe_load(text)
    except RecursionError as exc:
        raise yaml_too_large(path, "the document nests too deeply") from exc
