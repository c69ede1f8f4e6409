"""The economics benchmark's figure (matplotlib) and the generated tables of its README."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BEGIN, END = "<!-- tables:begin (written by benchmarks.economics.run) -->", "<!-- tables:end -->"


def plot(report: dict, before: dict | None, path: Path) -> None:
    """Left: each strategy's relative profit per stake with its 95% interval (and the earlier run's, if given);
    right: the probability that an evaluator cartel controls a panel, against its share of the pool."""
    names = list(report["strategies"])
    figure, (left, right) = plt.subplots(1, 2, figsize=(15, 7), gridspec_kw={"width_ratios": [3, 2]})
    for offset, (label, data, colour) in enumerate(
        [("before", before, "tab:red"), ("now", report, "tab:blue")] if before else [("now", report, "tab:blue")]
    ):
        if data is None:
            continue
        ys = [i + 0.2 * offset for i in range(len(names))]
        rel = [data["strategies"].get(n, {}).get("relative_profit_per_stake") for n in names]
        means = [r["mean"] if r else float("nan") for r in rel]
        lows = [r["mean"] - r["ci95_low"] if r else 0 for r in rel]
        highs = [r["ci95_high"] - r["mean"] if r else 0 for r in rel]
        left.errorbar(means, ys, xerr=[lows, highs], fmt="o", color=colour, label=label, capsize=2)
    left.axvline(0, color="black", linewidth=0.8)
    left.set_yticks(range(len(names)), names, fontsize=8)
    left.set_xscale("symlog", linthresh=1)
    left.set_xlabel("profit per stake relative to honest play ((dev - honest) / |honest|), 95% interval")
    left.legend()
    left.set_title("Strategies against honest play (paired worlds)")
    control = report["evaluator_panel_control"]
    for split, style in ((False, "o-"), (True, "s--")):
        keys = [k for k in control if k.startswith("split" if split else "one")]
        shares = [int(k.split("_")[1]) for k in keys]
        right.plot(
            shares, [control[k]["at_least_half"] for k in keys], style, label=f"{'split' if split else 'one address'}"
        )
    right.axhline(0.01, color="grey", linestyle=":", label="target 1%")
    right.set_xlabel("cartel share of the evaluator pool (%)")
    right.set_ylabel("P(cartel holds half of a panel's votes)")
    right.set_title("Evaluator panel control")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _fmt(relative: dict | None) -> str:
    if not relative:
        return "-"
    return f"{relative['mean']:+.3f} [{relative['ci95_low']:+.3f}, {relative['ci95_high']:+.3f}]"


def readme_tables(report: dict, before: dict | None, path: Path) -> None:
    """Rewrites the tables between the README's markers."""
    lines = [BEGIN, "", f"Measured {report['date']}: {report['epochs']} epochs per world, seed {report['seed']}.", ""]
    lines += [
        "| strategy | what it does | relative profit per stake, now (mean [95% CI]) | before | per training run | "
        "DSH/epoch honest -> deviating |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in report["strategies"].items():
        earlier = (before or {}).get("strategies", {}).get(name, {}).get("relative_profit_per_stake")
        per_epoch = result["profit_per_epoch_dsh"]
        lines.append(
            f"| {name} | {result['summary']} | {_fmt(result['relative_profit_per_stake'])} | {_fmt(earlier)} | "
            f"{_fmt(result.get('relative_profit_per_run'))} | {per_epoch['honest']} -> {per_epoch['deviating']} |"
        )
    lines += ["", "| evaluator cartel | P(holds >= half of a panel) | P(holds > half) |", "|---|---|---|"]
    for key, value in report["evaluator_panel_control"].items():
        lines.append(f"| {key.replace('_', ' ')}% | {value['at_least_half']:.3f} | {value['more_than_half']:.3f} |")
    binomial = report.get("one_draw_one_vote_control_binomial", {})
    if binomial:
        sizes = [key.split("_")[0] for key in next(iter(binomial.values()))]
        lines += [
            "",
            "| share | " + " | ".join(f"binomial tail: >= half of {n} draws" for n in sizes) + " |",
            "|---|" + "---|" * len(sizes),
        ]
        for share, value in binomial.items():
            lines.append(f"| {share}% | " + " | ".join(f"{value[f'{n}_draws']:.4f}" for n in sizes) + " |")
    lines += [
        "",
        "| colluding curators | P(capture): no re-roll | 1 re-roll | 3 re-rolls | junk, no re-roll, DSH "
        "| gain of 1 re-roll, DSH | of 3 |",
        "|---|---|---|---|---|---|---|",
    ]
    gains = report["informant_reroll_gain_dsh"]
    for share, value in report["informant_reroll_capture"].items():
        gain = gains[share]
        lines.append(
            f"| {share} | {value['0']:.3f} | {value['1']:.3f} | {value['3']:.3f} | {gain['junk_without_reroll']:+.1f} "
            f"| {gain['1']:+.1f} | {gain['3']:+.1f} |"
        )
    lines += ["", "| target | value | limit | met |", "|---|---|---|---|"]
    for name, target in report["targets"].items():
        lines.append(f"| {name} | {target['value']} | {target['limit']} | {'yes' if target['met'] else 'no'} |")
    for name, target in report["targets"].items():
        if target.get("excluded"):
            left_out = ", ".join(f"`{n}` ({share:.0%})" for n, share in target["excluded"].items())
            lines += [
                "",
                f"`{name}` is over cartels holding up to {target['max_cartel_share']:.0%} of the relevant stake; "
                f"left out, holding more: {left_out}.",
            ]
        if target.get("same_play"):
            recut = ", ".join(f"`{n}`" for n in target["same_play"])
            lines += [
                "",
                f"`{name}` leaves out honest play re-cut over addresses, judged by their own targets: {recut}.",
            ]
    lines += ["", END]
    text = path.read_text(encoding="utf-8") if path.exists() else f"# Economics benchmark\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(head + "\n".join(lines) + tail, encoding="utf-8")
