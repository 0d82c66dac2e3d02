"""Which target domains a search runs against, from the data streams a run declares.

A target domain ``T`` is two named streams (``conf/targets/*.yaml``): ``T_unlabeled``, its
unlabelled text for the ATE (declared ``labels: false``, so no target label can reach a
feature), and ``T_test``, its labelled split, scored only after every feature is computed.
Domain names are shared by sources and targets (``books`` is the source of one run and a target
of another), which the leave-one-target-domain-out regression relies on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ATE_SUFFIX = "_unlabeled"
TEST_SUFFIX = "_test"
DOMAIN_ATTRIBUTES = ("domain", "genre", "domains")


@dataclass(frozen=True)
class StreamInfo:
    """What the search needs to know about a declared stream."""

    domain: str | None
    """The domain its source reads (:func:`domain_name`), None if unknown."""
    labels: bool
    """Whether the stream is served with labels."""


@dataclass(frozen=True)
class TargetStreams:
    """The two streams of one target domain."""

    ate: str
    test: str


def domain_name(source: Any) -> str | None:
    """A data source's domain: its ``domain`` / ``genre``, or ``+``-joined ``domains``."""
    for attr in DOMAIN_ATTRIBUTES:
        value = getattr(source, attr, None)
        if value:
            return value if isinstance(value, str) else "+".join(map(str, value))
    return None


def resolve_targets(source: str | None, streams: Mapping[str, StreamInfo],
                    targets: Sequence[str] | None = None) -> dict[str, TargetStreams]:
    """``{T: streams}`` for the requested targets (None: every declared one but the source's).

    Raises:
        ValueError: a target equal to the source domain, an undeclared target, a missing or
            unlabelled test stream, a labelled ATE stream, or no target at all.
    """
    declared = sorted(n[:-len(ATE_SUFFIX)] for n in streams if n.endswith(ATE_SUFFIX))
    if targets is None:
        chosen = [t for t in declared if source is None or streams[t + ATE_SUFFIX].domain != source]
    else:
        chosen = list(dict.fromkeys(targets))
    out = {}
    for target in chosen:
        ate, test = target + ATE_SUFFIX, target + TEST_SUFFIX
        if ate not in streams:
            raise ValueError(f"AMoC target '{target}': no stream '{ate}' in data.streams "
                             f"(declared targets: {declared})")
        if source is not None and streams[ate].domain == source:
            raise ValueError(f"AMoC target '{target}' is the source domain '{source}' (the task "
                             "trains on it); remove it from callbacks.amoc.targets")
        if streams[ate].labels:
            raise ValueError(f"stream '{ate}' must be declared labels: false: target labels are "
                             "never read before every feature is computed")
        if test not in streams or not streams[test].labels:
            raise ValueError(f"AMoC target '{target}': needs a labelled stream '{test}' "
                             "(labels: true) to score the candidates")
        out[target] = TargetStreams(ate, test)
    if not out:
        raise ValueError(f"AMoC has no target domain besides the source '{source}': declare "
                         f"streams <T>{ATE_SUFFIX} and <T>{TEST_SUFFIX} (conf/targets/)")
    return out
