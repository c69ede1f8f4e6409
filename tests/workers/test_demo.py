"""`python -m workers.demo` end to end: it lists every role, runs the data consensus (junk rejected and
slashed), then a training round (the poisoned trainer slashed, the honest ones paid, a new version whose
weights differ), serves that version and verifies one answer's proof, ends with the JSON summary under --json,
and stops its node (anvil, or Ganache).

The quick demo trains the `tiny` model (~30 s); the default one trains SmolLM2-135M, as `make demo` does
(~3.5 minutes on a 2-core CPU)."""

import json
import os
import re
import subprocess
import sys
from decimal import Decimal

from workers.chain import ROLES, parse_dsh
from workers.chain.artifacts import project_root
from workers.demo.training import DEMO_ROUND_PARAMS, FIRST_TRAINER_BOND_DSH


def run_demo(*args: str, timeout: int) -> tuple[str, dict]:
    """The report (stderr) and the summary: with --json, stdout holds nothing but its one JSON line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPSHARD_") or k == "DEEPSHARD_MODEL_CACHE"}
    result = subprocess.run(
        [sys.executable, "-m", "workers.demo", *args],
        cwd=project_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.stdout.splitlines()) == 1, result.stdout[:3000]
    return result.stderr, json.loads(result.stdout)


def assert_node_stopped(out: str, kind: str = "anvil") -> None:
    pid = int(re.search(rf"^{kind} on http://127\.0\.0\.1:\d+ \(pid (\d+)\)", out, re.M).group(1))
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, f"the demo left its {kind} running"
    assert f"{kind} stopped" in out


def assert_round_summary(summary: dict, model: str) -> None:
    """Three honest trainers accepted at distance 0 and paid in proportion to their bonds (the first bonds 1,500
    DSH, the others the round's minimum), the poisoned one slashed its bond."""
    round_ = summary["round"]
    assert round_["model"] == model and round_["status"] == "Finalized"
    assert round_["new_version"] == 2 and round_["new_version_cid"].startswith("bafy") and round_["weights_changed"]
    honest = [t for t in round_["trainers"] if not t["poisoned"]]
    (poisoned,) = [t for t in round_["trainers"] if t["poisoned"]]
    assert len(honest) == 3
    assert poisoned["outcome"] == "slashed" and poisoned["distance"] > DEMO_ROUND_PARAMS.tolerance
    minimum = str(DEMO_ROUND_PARAMS.trainer_bond // 10**18)
    assert poisoned["amount_dsh"] == poisoned["bond_dsh"] == minimum
    assert [t["bond_dsh"] for t in honest] == [FIRST_TRAINER_BOND_DSH, minimum, minimum]
    assert all(t["outcome"] == "accepted" and t["distance"] == 0 for t in honest)
    rewards = [parse_dsh(t["amount_dsh"]) for t in honest]
    bonds = [parse_dsh(t["bond_dsh"]) for t in honest]
    assert rewards[1] == rewards[2] > 0 and rewards[0] > rewards[1]
    # Each reward is the pool's bond share, rounded down: at most a wei per bond apart from exactly pro rata.
    assert abs(rewards[0] * bonds[1] - rewards[1] * bonds[0]) < bonds[0] + bonds[1]
    assert set(round_["phase_seconds"]) >= {"opened", "trainers trained and committed", "finalized", "settled"}
    assert [(d["dataset"], d["outcome"]) for d in summary["data"]] == [
        ("good.jsonl", "accepted"),
        ("more-facts.jsonl", "accepted"),
        ("junk.jsonl", "rejected"),
    ]


def assert_weights(out: str, summary: dict) -> None:
    """Version 2 sharded and held by the three storage nodes, bought by the inference account at the contract's
    price, the price split to the wei (burned + storage + custodians + treasury), the assembled weights the
    registry's version."""
    weights = summary["weights"]
    assert weights["version"] == summary["round"]["new_version"] == 2
    assert weights["hash_matches_registry"] is True
    assert len(weights["holders"]) == len(set(weights["holders"])) == 3
    recipients = weights["recipients"]
    assert set(recipients["custodians"]) <= set(weights["holders"]) and len(recipients["custodians"]) == 3
    parts = [recipients["burned_dsh"], recipients["storage_dsh"], recipients["treasury_dsh"]]
    parts += list(recipients["custodians"].values())
    price = Decimal(weights["price_dsh"])
    assert price >= 1_000 and sum(Decimal(p) for p in parts) == price and all(Decimal(p) > 0 for p in parts)
    custody = out.split("\nWeight custody: version 2 ")[1].split("\nInference node:")[0]
    bought = r"^\s+inference account 0x[0-9a-fA-F]{4}…[0-9a-fA-F]{4} bought version 2 for [\d,.]+ DSH"
    assert re.search(bought, custody, re.M)
    for holder in weights["holders"]:
        short = f"{holder[:6]}…{holder[-4:]}"
        assert re.search(rf"^{re.escape(short)}\s+\d+\s+[\d,]+$", custody, re.M), short
    assert "equal to the hash the registry records for version 2" in custody


def assert_inference(out: str, summary: dict) -> None:
    """The node served the new version: one answer through the openai client, its proof verified, then
    stopped (the report says so in that order; the summary carries the answer)."""
    inference = summary["inference"]
    assert inference["version"] == summary["round"]["new_version"] == 2
    assert inference["proof_verified"] is True and isinstance(inference["answer"], str) and inference["answer"]
    served = out.split("\nInference node: serving the bought version 2 from bought-2/\n")[1]
    assert re.search(
        r"^  serving deepshard-v2 \(weights 0x[0-9a-f]{16}…\) on http://127\.0\.0\.1:\d+/v1$", served, re.M
    )
    assert f"  deepshard-v2: {inference['answer']!r}\n  proof verified\n  inference node stopped\n" in served


def test_quick_demo_runs_end_to_end():
    out, summary = run_demo("--quick", "--json", timeout=900)
    stakes = out.split("\nStakes\n")[1].split("\nTotals per role\n")[0]
    for role in ROLES:
        assert re.search(rf"^{role}\s+0x[0-9a-fA-F]{{4}}…[0-9a-fA-F]{{4}}\s+[\d,.]+\s", stakes, re.M), role
    assert "permit" in stakes and "approve" in stakes

    consensus = out.split("\nData consensus")[1].split("\nBalances that moved")[0]
    for dataset in ("good.jsonl", "more-facts.jsonl"):
        assert re.search(rf"^#\d+\s+{re.escape(dataset)}\s+0x\S+\s+accepted\s.*\s200 back\s", consensus, re.M), dataset
    junk = re.search(r"^#\d+\s+junk\.jsonl\s+(0x\S+)\s+rejected\s.*\s100 slashed, 100 back\s", consensus, re.M)
    assert junk, consensus
    balances = out.split("\nBalances that moved")[1].split("\nTraining round")[0]
    assert re.search(rf"^{re.escape(junk[1])}\s+INFORMANT\s.*\s250\s+150\s+-100$", balances, re.M), balances

    training = out.split("\nTraining round on tiny:")[1]
    for phase in (
        "opened",
        "trainers trained and committed",
        "trainers revealed",
        "evaluator panel drawn",
        "evaluators fingerprinted and committed",
        "evaluators revealed",
        "finalized",
        "settled",
    ):
        assert re.search(rf"^\s+\[\s*[\d.]+ s\] {phase}$", training, re.M), phase
    assert re.search(
        r"^\s+3\s+0x[0-9a-fA-F]{40}\s+1,000\s+3\s+bafy\S+\s+[\d,]+\s+slashed\s+-1,000\s+yes$", training, re.M
    )
    assert re.search(
        r"^\s+0\s+0x[0-9a-fA-F]{40}\s+1,500\s+0\s+bafy\S+\s+0\s+accepted\s+\+[\d,.]+\s+yes$", training, re.M
    )
    assert re.search(r"^version 2 loads: weights 0x[0-9a-f]{16}… \(parent 0x[0-9a-f]{16}…\)$", training, re.M)

    assert_round_summary(summary, "tiny")
    ends = [float(t) for t in re.findall(r"^\s+\[\s*([\d.]+) s\] ", training, re.M)]
    # Durations, not running totals: they add up to the time of the last phase's end.
    assert abs(sum(summary["round"]["phase_seconds"].values()) - ends[-1]) < 0.5
    assert_weights(out, summary)
    assert_inference(out, summary)
    assert_node_stopped(out)


def test_default_demo_trains_smollm2():
    out, summary = run_demo("--json", timeout=1800)
    assert "\nTraining round on smollm2-135m:" in out
    assert_round_summary(summary, "smollm2-135m")
    assert_weights(out, summary)
    assert_inference(out, summary)
    assert_node_stopped(out)


def test_quick_demo_on_ganache():
    out, summary = run_demo("--quick", "--json", "--chain", "ganache", timeout=900)
    assert_round_summary(summary, "tiny")
    assert_weights(out, summary)
    assert_inference(out, summary)
    assert_node_stopped(out, "ganache")


def test_unknown_option_is_refused():
    result = subprocess.run(
        [sys.executable, "-m", "workers.demo", "--fast"], cwd=project_root(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "unrecognized arguments: --fast" in result.stderr
