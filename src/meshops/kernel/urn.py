"""URNs name every object: `meshops:<kind>:<part>[:<part>...]`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from meshops.kernel.errors import InvalidInput

PREFIX = "meshops"
_PART = re.compile(r"^[A-Za-z0-9_.\-@/^~<>=*+]+$")

KINDS = frozenset(
    {
        "run",
        "experiment",
        "dataset",
        "artifact",
        "model",
        "domain",
        "dataproduct",
        "port",
        "featureview",
        "featureservice",
        "trainingset",
        "pipeline",
        "pipelinerun",
        "step",
        "steprun",
        "endpoint",
        "deployment",
        "predictionlog",
        "monitor",
        "monitorresult",
        "alert",
        "policy",
        "user",
        "source",
        # OpenLineage events received (POST /api/v1/lineage): a job, a run, a dataset
        "job",
        "olrun",
        "oldataset",
        # project (objects a repository applies that have no URN kind of their own)
        "entity",
        "feature",
        "schedule",
        "trigger",
    }
)


@dataclass(frozen=True, order=True)
class Urn:
    kind: str
    parts: tuple[str, ...]

    def __str__(self) -> str:
        return ":".join((PREFIX, self.kind, *self.parts))

    @classmethod
    def of(cls, kind: str, *parts: str | int) -> Urn:
        if kind not in KINDS:
            raise InvalidInput(f"unknown URN kind {kind!r}", {"known": sorted(KINDS)})
        text_parts = tuple(str(p) for p in parts)
        for part in text_parts:
            if not part or not _PART.match(part):
                raise InvalidInput(
                    f"invalid URN part {part!r} for kind {kind!r}",
                    {"fix": "use letters, digits and . _ - @ / only"},
                )
        return cls(kind, text_parts)

    @classmethod
    def parse(cls, text: str) -> Urn:
        pieces = text.split(":")
        if len(pieces) < 3 or pieces[0] != PREFIX:
            raise InvalidInput(
                f"not a meshops URN: {text!r}",
                {"fix": "URNs look like meshops:<kind>:<id>, e.g. meshops:run:1f2e..."},
            )
        return cls.of(pieces[1], *pieces[2:])


def run_urn(run_id: str) -> str:
    return str(Urn.of("run", run_id))


def model_version_urn(name: str, version: int) -> str:
    return str(Urn.of("model", name, version))


def dataproduct_urn(domain: str, name: str, version: str) -> str:
    return str(Urn.of("dataproduct", f"{domain}.{name}", version))
