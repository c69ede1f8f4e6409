"""`make bench-economics`: every strategy's profit against honest play, cartels' control probabilities, and the
issue's targets, on the fast model (which the on-chain runner matches to the wei: tests/workers/protocol/
test_economics.py). Writes benchmarks/results/economics.json, economics.png and benchmarks/economics/README.md's tables.

Profit is on-chain wealth (DSH balance plus stake) less the off-chain cost of the work done, summed over the
party's addresses. For a strategy, `relative_profit_per_stake` is (p_dev - p_honest) / |p_honest| where p is the
party's mean profit per epoch per wei it puts at risk, in paired worlds (same seeds, same data, same noise;
the honest world is the party playing honestly); its 95% interval is a percentile bootstrap over epochs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from eth_utils import keccak

from benchmarks import RESULTS_DIR, utc_now
from workers.protocol.consensus import expiry_slash
from workers.protocol.constants import BPS, DRAWS_PER_SEAT, MAX_CURATORS, MAX_EVALUATORS
from workers.protocol.sortition import draw_panel

from .model import World, run_world
from .strategies import all_strategies
from .world import DSH, SWEPT, Economy

HERE = Path(__file__).resolve().parent
BOOTSTRAP = 2_000
#: Strategies that do no work (the 0.5x target).
NO_WORK = ("lazy_trainer", "cid_copier", "herding_curator")
SHARES = (0.05, 0.10, 0.20, 0.30, 0.40, 0.45, 0.50)
#: The largest cartel `every_deviation_below_honest` is stated for (the issue: "cartels up to 45% of the
#: relevant stake"). A strategy whose `stake_share` is above it is measured and tabled, and named under the
#: target's "excluded": no rule over stake can stop a majority of it.
MAX_CARTEL_SHARE = 0.45
#: Honest play re-cut: the same capital and the same work under other addresses, which the rules make worth what
#: honest play is worth (to the rounding dust), so "below honest" cannot hold for them. Each has its own target
#: (`split_or_merge_within_1pct`, `sybil_per_run_at_most_honest`) and is named under the deviation target's
#: "same_play".
SAME_PLAY = ("stake_splitter", "stake_merger", "sybil_trainer")
#: Colluding curators' shares of the pool in the informant re-roll figures.
REROLL_SHARES = (0.10, 0.20, 0.30, 0.40)
#: Panel sizes of the binomial table: the old evaluator panel, today's evaluator and curator panels.
BINOMIAL_DRAWS = tuple(sorted({9, MAX_EVALUATORS, MAX_CURATORS}))


def _profits(world: World, party: tuple[str, ...]) -> np.ndarray:
    """Party profit per epoch (wei, as float)."""
    totals = [sum(r.wealth.get(n, 0) - r.costs.get(n, 0) for n in party) for r in world.epochs]
    return np.diff(np.asarray([0, *totals], dtype=float))


def _runs(world: World, party: tuple[str, ...]) -> float:
    """Training runs the party paid for per epoch."""
    paid = sum(world.epochs[-1].costs.get(n, 0) for n in party if n.startswith(("tr", "syb")))
    return paid / world.economy.training_cost / len(world.epochs)


def _relative(dev: np.ndarray, hon: np.ndarray, dev_scale: float, hon_scale: float, seed: int) -> dict:
    """Mean and 95% bootstrap interval of (mean(dev)/dev_scale - mean(hon)/hon_scale) / |mean(hon)/hon_scale|."""

    def stat(d, h):
        base = h.mean(axis=-1) / hon_scale
        return (d.mean(axis=-1) / dev_scale - base) / np.abs(base)

    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(dev), (BOOTSTRAP, len(dev)))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = float(stat(dev, hon))
        samples = stat(dev[index], hon[index])
    samples = samples[np.isfinite(samples)]
    low, high = np.percentile(samples, [2.5, 97.5]) if len(samples) else (math.nan, math.nan)
    return {"mean": round(mean, 4), "ci95_low": round(float(low), 4), "ci95_high": round(float(high), 4)}


def measure(task: tuple[str, dict, Economy, int, int]) -> dict:
    """One strategy's paired worlds: its relative profit per stake (and per run), in DSH per epoch too."""
    name, kwargs, economy, seed, epochs = task
    cls = dict((n, c) for n, c, _ in all_strategies())[name]
    honest, deviating = cls(False, **kwargs), cls(True, **kwargs)
    h_world = run_world(honest, economy, seed, epochs)
    d_world = run_world(deviating, economy, seed, epochs)
    h, d = _profits(h_world, honest.party), _profits(d_world, deviating.party)
    h_stake, d_stake = honest.party_stake(h_world.roster, economy), deviating.party_stake(d_world.roster, economy)
    result = {
        "summary": deviating.summary,
        "relative_profit_per_stake": _relative(d, h, d_stake, h_stake, seed),
        "profit_per_epoch_dsh": {"honest": round(h.mean() / DSH, 2), "deviating": round(d.mean() / DSH, 2)},
        "stake_dsh": {"honest": h_stake / DSH, "deviating": d_stake / DSH},
    }
    if deviating.per_run:
        runs_h, runs_d = _runs(h_world, honest.party), _runs(d_world, deviating.party)
        result["training_runs_per_epoch"] = {"honest": runs_h, "deviating": runs_d}
        result["relative_profit_per_run"] = _relative(d, h, runs_d, runs_h, seed)
    if name == "silent_griefer":
        others = {n for w in (h_world, d_world) for r in w.epochs for n in r.wealth} - set(deviating.party)
        damage = float(_profits(h_world, tuple(others)).sum() - _profits(d_world, tuple(others)).sum())
        cost = float(h.sum() - d.sum())
        result["griefing"] = {"cost_dsh": round(cost / DSH, 2), "damage_dsh": round(damage / DSH, 2)}
    return result


def control_probability(share: float, split: bool, samples: int, seed: int, *, strict: bool) -> float:
    """Probability that a cartel holding `share` of the evaluator pool (one address, or honest-sized addresses)
    holds half (`strict`: more than half) of a drawn panel's votes (its draws): then the lower weighted median of
    every coordinate is its value (a half below the others; more than half either way)."""
    economy = Economy()
    bonds = {f"eva{i}": economy.evaluator_bond(i) for i in range(economy.evaluators)}
    pool = sum(bonds.values())
    total = int(pool * share / (1 - share))
    count = max(1, round(total / (pool / len(bonds)))) if split else 1
    cartel = {f"cart{i}": total // count for i in range(count)}
    bonds |= cartel
    members = list(bonds)
    hits = 0
    for draw in range(samples):
        panel = draw_panel(
            keccak(repr((seed, share, split, draw)).encode()),
            members,
            bonds,
            None,
            MAX_EVALUATORS,
            DRAWS_PER_SEAT * MAX_EVALUATORS,
        )
        mine = sum(draws for m, draws in panel.items() if m in cartel)
        weight = sum(panel.values())
        hits += 2 * mine > weight if strict else 2 * mine >= weight
    return hits / samples


def reroll_capture(share: float, rerolls: int, samples: int, seed: int) -> tuple[float, float]:
    """(probability that an informant's colluding curators, `share` of a 30-curator pool as honest-sized
    addresses, hold half a panel's votes; mean panels skipped per submission) when the informant may skip up to
    `rerolls` panels it computed (each skipped submission expires and it submits again)."""
    economy = Economy()
    honest = {f"cur{i}": economy.curator_bond(i % 7) for i in range(30)}
    pool = sum(honest.values())
    unit = pool // len(honest)
    count = max(1, round(pool * share / (1 - share) / unit))
    colluders = {f"col{i}": unit for i in range(count)}
    bonds = honest | colluders
    members = list(bonds)
    hits = skipped = 0
    for draw in range(samples):
        for attempt in range(rerolls + 1):
            panel = draw_panel(
                keccak(repr((seed, share, draw, attempt)).encode()),
                members,
                bonds,
                "inf",
                MAX_CURATORS,
                DRAWS_PER_SEAT * MAX_CURATORS,
            )
            mine = sum(draws for m, draws in panel.items() if m in colluders)
            if 2 * mine >= sum(panel.values()):
                hits += 1
                break
            skipped += attempt < rerolls
    return hits / samples, skipped / samples


def junk_profit(capture: float, economy: Economy) -> float:
    """A junk submission's expected profit without re-rolls, DSH (informant and its colluding curators together):
    a captured panel accepts it at up to `max_reward`, any other rejects it (the informant's reject slash)."""
    p, bond = economy.data, economy.informant_bond
    return (capture * p.max_reward - (1 - capture) * (bond * p.reject_slash_bps // BPS)) / DSH


def reroll_gain(capture: float, capture_without: float, skipped: float, economy: Economy) -> float:
    """What re-rolling adds to a junk submission's expected profit, DSH per submission: each captured panel is
    worth `max_reward` plus the reject slash it spares, and every skipped panel costs the expiry slash of the
    bond (`workers.protocol.consensus.expiry_slash`). Positive: re-rolling pays."""
    p, bond = economy.data, economy.informant_bond
    at_stake = p.max_reward + bond * p.reject_slash_bps // BPS
    return ((capture - capture_without) * at_stake - skipped * expiry_slash(bond, p.expiry_slash_bps)) / DSH


def binomial_control(share: float, draws: int) -> float:
    """Under one draw = one vote (the contracts' rule: draws with replacement, each draw one vote), the exact
    probability that a cartel with `share` of the stake wins at least half of `draws` votes: a binomial tail,
    the same whether the cartel holds one address or many (`control_probability` samples it on the real draw)."""
    return sum(
        math.comb(draws, k) * share**k * (1 - share) ** (draws - k) for k in range(math.ceil(draws / 2), draws + 1)
    )


def _band_task(args):
    name, kwargs, economy, seed, epochs = args
    return measure((name, kwargs, economy, seed, epochs))["relative_profit_per_stake"]["ci95_high"]


def run(epochs: int, band_epochs: int, samples: int, seed: int, workers: int) -> dict:
    started = time.monotonic()
    economy = Economy()
    entries = all_strategies()
    tasks = [(name, kwargs, economy, seed, epochs) for name, _, kwargs in entries]
    with ProcessPoolExecutor(workers) as pool:
        results = dict(zip([t[0] for t in tasks], pool.map(measure, tasks), strict=True))
        bands: dict[str, float] = {}
        band_tasks = []
        for parameter in SWEPT:
            for factor in (0.5, 1.5):
                scaled = economy.scaled(parameter, factor)
                for name, _, kwargs in entries:
                    if name in ("honest", "stake_splitter", "stake_merger"):
                        continue
                    band_tasks.append((f"{parameter}x{factor}", name, (name, kwargs, scaled, seed, band_epochs)))
        for (band, name, _), high in zip(band_tasks, pool.map(_band_task, [t[2] for t in band_tasks]), strict=True):
            key = f"{name}@{band}"
            bands[key] = high
    control = {
        f"{'split' if split else 'one'}_{round(share * 100)}": {
            "at_least_half": control_probability(share, split, samples, seed, strict=False),
            "more_than_half": control_probability(share, split, samples, seed, strict=True),
        }
        for share in SHARES
        for split in (False, True)
    }
    trials = {share: {r: reroll_capture(share, r, samples // 2, seed) for r in (0, 1, 3)} for share in REROLL_SHARES}
    reroll = {f"{round(share * 100)}%": {str(r): t[r][0] for r in t} for share, t in trials.items()}
    reroll_profit = {
        f"{round(share * 100)}%": {
            "junk_without_reroll": round(junk_profit(t[0][0], economy), 2),
            **{str(r): round(reroll_gain(t[r][0], t[0][0], t[r][1], economy), 2) for r in (1, 3)},
        }
        for share, t in trials.items()
    }
    binomial = {
        f"{round(share * 100)}": {f"{draws}_draws": binomial_control(share, draws) for draws in BINOMIAL_DRAWS}
        for share in SHARES
    }
    shares = {name: cls(True, **kwargs).stake_share for name, cls, kwargs in entries}
    excluded = sorted(n for n, share in shares.items() if share is not None and share > MAX_CARTEL_SHARE)
    deviations = {n: r for n, r in results.items() if n not in ("honest", *SAME_PLAY, *excluded)}
    eligible_bands = {key: high for key, high in bands.items() if key.split("@")[0] in deviations}
    worst_name = max(deviations, key=lambda n: deviations[n]["relative_profit_per_stake"]["ci95_high"])
    worst_band = max(eligible_bands, key=lambda k: eligible_bands[k]) if eligible_bands else worst_name
    worst = max(
        deviations[worst_name]["relative_profit_per_stake"]["ci95_high"], eligible_bands.get(worst_band, -math.inf)
    )
    no_work = max(1 + results[n]["relative_profit_per_stake"]["mean"] for n in NO_WORK)
    sybil = 1 + results["sybil_trainer"]["relative_profit_per_run"]["mean"]
    split_merge = max(abs(results[n]["relative_profit_per_stake"]["mean"]) for n in ("stake_splitter", "stake_merger"))
    control_30 = max(v["at_least_half"] for k, v in control.items() if int(k.split("_")[1]) <= 30)
    # Up to 30% of the curators (as for the evaluator cartels): beyond, junk pays without any re-roll.
    best_reroll = max(
        reroll_profit[f"{round(share * 100)}%"][r] for share in REROLL_SHARES if share <= 0.30 for r in ("1", "3")
    )
    griefing = results["silent_griefer"]["griefing"]
    ratio = griefing["cost_dsh"] / griefing["damage_dsh"] if griefing["damage_dsh"] > 0 else math.inf
    targets = {
        "every_deviation_below_honest": {
            "value": worst,
            "limit": 0.0,
            "met": worst < 0,
            "worst": worst_name
            if worst == deviations[worst_name]["relative_profit_per_stake"]["ci95_high"]
            else worst_band,
            "max_cartel_share": MAX_CARTEL_SHARE,
            "excluded": {n: round(shares[n], 4) for n in excluded},  # stake share of each, above the maximum
            "same_play": list(SAME_PLAY),
        },
        "no_work_at_most_half_of_honest": {"value": round(no_work, 4), "limit": 0.5, "met": no_work <= 0.5},
        "sybil_per_run_at_most_honest": {"value": round(sybil, 4), "limit": 1.0, "met": sybil <= 1.0},
        "split_or_merge_within_1pct": {"value": round(split_merge, 4), "limit": 0.01, "met": split_merge <= 0.01},
        "cartel_30pct_controls_at_most_1pct": {
            "value": control_30,
            "limit": 0.01,
            "met": control_30 <= 0.01,
            # Sampled on evaluator panels (the larger risk); curator panels' exact binomial tail beside it.
            "curator_panels_binomial": binomial_control(0.30, MAX_CURATORS),
        },
        "informant_cannot_choose_panel": {"value": best_reroll, "limit": 0.0, "met": best_reroll <= 0},
        "griefing_costs_twice_the_damage": {
            "value": ratio if math.isfinite(ratio) else "inf",
            "limit": 2.0,
            "met": ratio >= 2,
        },
    }
    report = {
        "epochs": epochs,
        "band_epochs": band_epochs,
        "seed": seed,
        "economy": {
            k: (v / DSH if isinstance(v, int) and v >= DSH else v)
            for k, v in vars(economy).items()
            if k not in ("data", "rounds")
        },
        "strategies": results,
        "bands_ci95_high": bands,
        "evaluator_panel_control": control,
        "informant_reroll_capture": reroll,
        "informant_reroll_gain_dsh": reroll_profit,
        "one_draw_one_vote_control_binomial": binomial,
        "targets": targets,
    }
    report["date"] = utc_now()
    report["run_seconds"] = round(time.monotonic() - started, 1)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60, help="epochs per world of each strategy")
    parser.add_argument("--band-epochs", type=int, default=30, help="epochs per world in the +-50%% parameter bands")
    parser.add_argument("--samples", type=int, default=1_000, help="panels drawn per cartel share")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "economics.json")
    parser.add_argument("--before", type=Path, help="an earlier economics.json, plotted as 'before'")
    args = parser.parse_args(argv)
    report = run(args.epochs, args.band_epochs, args.samples, args.seed, args.workers)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    from .plot import plot, readme_tables

    before = json.loads(args.before.read_text(encoding="utf-8")) if args.before else None
    plot(report, before, args.out.with_suffix(".png"))
    readme_tables(report, before, HERE / "README.md")
    for name, target in report["targets"].items():
        print(f"{name}: {target['value']} (limit {target['limit']}) {'met' if target['met'] else 'NOT met'}")
        if target.get("excluded"):
            print(f"  excluded (stake share above {target['max_cartel_share']}): {target['excluded']}")
        if target.get("same_play"):
            print(f"  honest play re-cut, judged by their own targets: {', '.join(target['same_play'])}")


if __name__ == "__main__":
    main()
