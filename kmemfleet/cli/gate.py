"""`kmemfleet gate`: may a candidate firmware roll out further?

Compares the canary cohort on --candidate with the fleet on --base through the
server's Diff (the same rules as `kmemfleet diff`, no second copy of them) and
answers with the exit code, for a CI/CD pipeline or a rollout controller:

    0  pass: no new leak beyond the limits, and enough evidence
    1  fail: new leaks on the candidate (which stacks, on how many devices, how fast)
    3  not enough evidence yet: which minimums the candidate cohort does not meet
    2  no answer: bad arguments, server unreachable, not authorized

A regression fails the gate even on a cohort below the minimums: a leak the
detector reported (on as few as one device in a small cohort, by the rules of
`leaks`) does not become safe by waiting. Only a clean diff needs the minimums,
and an analysis that covers everything the server acknowledged, to pass. A base
firmware no device has reported is an error (2), not a comparison against
nothing; a candidate no device has reported yet is "not enough evidence" (3).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import grpc

from kmemfleet.errors import CliError
from kmemfleet.transport import (
    add_client_arguments,
    call_metadata,
    config_from_args,
    describe_rpc_error,
    sync_channel,
)
from kmemfleet.v1 import query_pb2

PASS, FAIL, ERROR, NOT_ENOUGH_EVIDENCE = 0, 1, 2, 3
VERDICTS = {
    PASS: "pass",
    FAIL: "fail",
    ERROR: "no_answer",
    NOT_ENOUGH_EVIDENCE: "not_enough_evidence",
}


@dataclass(frozen=True)
class Limits:
    max_new_leaks: int = 0  # regressions tolerated
    max_rate_kib_h: float = 0.0  # regressions slower than this are tolerated (0: none)
    min_devices: int = 3
    min_hours: float = 12.0


@dataclass
class Verdict:
    code: int
    regressions: list[query_pb2.DiffEntry] = field(default_factory=list)
    tolerated: list[query_pb2.DiffEntry] = field(default_factory=list)
    unmet: list[str] = field(default_factory=list)  # minimums not met, as sentences


def judge(resp: query_pb2.DiffResponse, limits: Limits) -> Verdict:
    """The gate's rule on a Diff answer (pure: tested without a server)."""
    if resp.base_cohort.devices == 0:
        # A typo or a firmware the server never saw: every leak of the candidate
        # would look new. No verdict rather than a wrong one.
        return Verdict(ERROR, unmet=[f"no device has reported base firmware {resp.base_firmware}"])
    verdict = Verdict(PASS)
    for d in resp.entries:
        if d.change != query_pb2.DiffEntry.REGRESSION:
            continue
        rate = d.target.median_slope_bytes_per_hour / 1024
        slow = limits.max_rate_kib_h > 0 and rate < limits.max_rate_kib_h
        (verdict.tolerated if slow else verdict.regressions).append(d)
    c = resp.target_cohort
    if c.devices < limits.min_devices:
        verdict.unmet.append(
            f"{c.devices} devices on {resp.target_firmware}, at least {limits.min_devices} needed"
        )
    if c.median_hours < limits.min_hours:
        verdict.unmet.append(
            f"median observed boot {c.median_hours:.1f} h on {resp.target_firmware}, "
            f"at least {limits.min_hours:g} h needed"
        )
    f = resp.freshness
    if f.pending_snapshots and f.analysed_through_ns < f.answered_at_ns:
        verdict.unmet.append(
            f"analysis is behind: {f.pending_snapshots} stored snapshots not analysed yet"
        )
    if len(verdict.regressions) > limits.max_new_leaks:
        verdict.code = FAIL
    elif verdict.unmet:
        verdict.code = NOT_ENOUGH_EVIDENCE
    return verdict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    parser.add_argument("--base", required=True, help="the firmware the fleet runs now")
    parser.add_argument("--candidate", required=True, help="the canary cohort's firmware")
    d = Limits()
    parser.add_argument(
        "--max-new-leaks",
        type=int,
        default=d.max_new_leaks,
        metavar="N",
        help=f"new leaking stacks or caches tolerated (default {d.max_new_leaks})",
    )
    parser.add_argument(
        "--max-rate",
        type=float,
        default=d.max_rate_kib_h,
        metavar="KiB/h",
        help="tolerate new leaks whose median rate is below this (default 0: none)",
    )
    parser.add_argument(
        "--min-devices",
        type=int,
        default=d.min_devices,
        metavar="N",
        help=f"canary devices needed before a pass (default {d.min_devices})",
    )
    parser.add_argument(
        "--min-hours",
        type=float,
        default=d.min_hours,
        metavar="H",
        help="median observed boot needed on the candidate before a pass "
        f"(default {d.min_hours:g})",
    )
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    from kmemfleet.cli.leaks import add_wait_argument

    add_wait_argument(parser)


def _limits(args: argparse.Namespace) -> Limits:
    if args.max_new_leaks < 0 or args.min_devices < 0:
        raise CliError("--max-new-leaks and --min-devices must be >= 0", ERROR)
    if not (args.max_rate >= 0 and args.min_hours >= 0):  # also refuses NaN
        raise CliError("--max-rate and --min-hours must be >= 0", ERROR)
    return Limits(args.max_new_leaks, args.max_rate, args.min_devices, args.min_hours)


def run(args: argparse.Namespace) -> int:
    from kmemfleet.cli.leaks import MAX_TOP, freshness_json, freshness_note, until_fresh
    from kmemfleet.cli.output import print_json
    from kmemfleet.v1 import query_pb2_grpc

    limits = _limits(args)
    if args.base == args.candidate:
        raise CliError("--base and --candidate name the same firmware", ERROR)
    cfg = config_from_args(args)
    with sync_channel(cfg) as channel:
        stub = query_pb2_grpc.QueryStub(channel)
        request = query_pb2.DiffRequest(
            base_firmware=args.base, target_firmware=args.candidate, top=MAX_TOP
        )
        try:
            resp = until_fresh(
                lambda: stub.Diff(request, metadata=call_metadata(cfg), timeout=300), args.wait
            )
        except grpc.RpcError as err:
            raise CliError(describe_rpc_error(err, cfg.server), ERROR) from None
    verdict = judge(resp, limits)
    if verdict.code == ERROR:
        raise CliError("; ".join(verdict.unmet), ERROR)
    if args.json:
        print_json(to_json(resp, verdict, limits) | {"freshness": freshness_json(resp.freshness)})
    else:
        print(render(resp, verdict))
        note = freshness_note(resp.freshness)
        if note:
            print(note)
    return verdict.code


def _regression_json(d: query_pb2.DiffEntry) -> dict[str, Any]:
    from kmemfleet.cli.leaks import entry_json

    return entry_json(d.target)


def to_json(resp: query_pb2.DiffResponse, verdict: Verdict, limits: Limits) -> dict[str, Any]:
    def cohort(c: query_pb2.Cohort) -> dict[str, Any]:
        return {"devices": c.devices, "median_hours": round(c.median_hours, 2)}

    return {
        "verdict": VERDICTS[verdict.code],
        "exit_code": verdict.code,
        "base_firmware": resp.base_firmware,
        "candidate_firmware": resp.target_firmware,
        "cohorts": {"base": cohort(resp.base_cohort), "candidate": cohort(resp.target_cohort)},
        "limits": {
            "max_new_leaks": limits.max_new_leaks,
            "max_rate_kib_h": limits.max_rate_kib_h,
            "min_devices": limits.min_devices,
            "min_hours": limits.min_hours,
        },
        "new_leaks": [_regression_json(d) for d in verdict.regressions],
        "tolerated": [_regression_json(d) for d in verdict.tolerated],
        "unmet": verdict.unmet,
    }


def render(resp: query_pb2.DiffResponse, verdict: Verdict) -> str:
    from kmemfleet.cli.leaks import kib_h, what

    c = resp.target_cohort
    lines = [
        f"gate {resp.base_firmware} -> {resp.target_firmware}: "
        f"{VERDICTS[verdict.code].upper().replace('_', ' ')} "
        f"({c.devices} canary devices, median boot watched {c.median_hours:.1f} h)"
    ]
    for d in verdict.regressions:
        t = d.target
        lines.append(
            f"  new leak: {what(t, 70)} on {t.devices_leaking}/{t.devices_observed} devices, "
            f"{kib_h(t.median_slope_bytes_per_hour)} KiB/h"
        )
    for d in verdict.tolerated:
        t = d.target
        lines.append(
            f"  tolerated (below --max-rate): {what(t, 60)}, "
            f"{kib_h(t.median_slope_bytes_per_hour)} KiB/h"
        )
    if verdict.code != FAIL:
        lines.extend(f"  not met: {u}" for u in verdict.unmet)
    return "\n".join(lines)
