"""The multi-seed report: one table (markdown + CSV) and one figure with every agent's curves."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from genlab.core.config import save_json
from genlab.eval.report import markdown_table
from genlab.rl.figures import seed_curves

COLUMNS = ["agent", "env", "seeds", "budget (env steps)", "reached threshold", "env steps to threshold (mean; max)",
           "train s to threshold (mean)", "final greedy return (mean +- std over seeds)",
           "returned agent (best validation / final)", "returned agent, test seeds: return (mean; min)",
           "test >= threshold", "RLlib metric >= stop_return (steps, mean)"]


def _fmt(values: list[float], digits: int = 0) -> str:
    return f"{np.mean(values):,.{digits}f}" if values else "-"


def agent_stats(summaries: list[dict], agent: str, budget: int) -> dict:
    """One agent's runs summed up: how many reached the threshold within `budget`, at which steps / seconds,
    final returns, and RLlib's own bar (`rllib` is None for our agents)."""
    runs = [s for s in summaries if s["algo"] == agent]
    reached = [s for s in runs if s["reached_step"] is not None and s["reached_step"] <= budget]
    rllib = [s["rllib_reached_step"] for s in runs if "rllib_reached_step" in s]
    return {"runs": runs, "n": len(runs), "budget": budget, "ok": len(reached),
            "steps": [s["reached_step"] for s in reached], "secs": [s["reached_train_seconds"] for s in reached],
            "final": [s["final_greedy_return_mean"] for s in runs],
            "test": [s["test_return_mean"] for s in runs if "test_return_mean" in s],
            "final_test": [s["final_test_return_mean"] for s in runs if "final_test_return_mean" in s],
            "best": sum(1 for s in runs if s.get("returned_agent") == "agent_best"),
            "sampled": [s["final_sampled_return_mean"] for s in runs if "final_sampled_return_mean" in s],
            "rllib": rllib or None, "rllib_steps": [r for r in rllib if r is not None],
            "rllib_ok": sum(1 for r in rllib if r is not None and r <= budget)}


def table_rows(summaries: list[dict], budgets: dict[str, int]) -> list[dict]:
    rows = []
    for agent in dict.fromkeys(s["algo"] for s in summaries):
        a = agent_stats(summaries, agent, budgets[agent])
        first = a["runs"][0]
        rows.append({
            COLUMNS[0]: agent, COLUMNS[1]: first["env_id"], COLUMNS[2]: a["n"], COLUMNS[3]: a["budget"],
            COLUMNS[4]: f"{a['ok']}/{a['n']} (>= {first['threshold']:g}, greedy, "
                        f"{first.get('eval_episodes', 100)} episodes)",
            COLUMNS[5]: f"{_fmt(a['steps'])}; {max(a['steps']):,}" if a["steps"] else "-",
            COLUMNS[6]: _fmt(a["secs"], 1),
            COLUMNS[7]: f"{np.mean(a['final']):.1f} +- {np.std(a['final']):.1f}",
            COLUMNS[8]: f"{a['best']} / {a['n'] - a['best']}",
            COLUMNS[9]: f"{np.mean(a['test']):.1f}; {min(a['test']):.1f}" if a["test"] else "-",
            COLUMNS[10]: f"{sum(t >= first['threshold'] for t in a['test'])}/{len(a['test'])}" if a["test"] else "-",
            COLUMNS[11]: (f"{len(a['rllib_steps'])}/{len(a['rllib'])}; {_fmt(a['rllib_steps'])}" if a["rllib"]
                          else "n/a"),
        })
    return rows


def write_report(summaries: list[dict], budgets: dict[str, int], run_dir: str | Path) -> dict[str, Path]:
    """table.md, table.csv, summaries.json and curves.png (mean +- std over seeds, x = env steps)."""
    run_dir = Path(run_dir)
    rows = table_rows(summaries, budgets)
    (run_dir / "table.md").write_text(markdown_table(rows, COLUMNS) + "\n")
    with open(run_dir / "table.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    save_json({"summaries": summaries, "budgets": budgets}, run_dir / "summaries.json")
    curves: dict[str, list[dict]] = {}
    for s in summaries:
        curves.setdefault(s["algo"], []).append(s["curve"])
    env = summaries[0]["env_id"]
    seed_curves(curves, summaries[0]["threshold"], run_dir / "curves.png",
                f"{env}: every agent, mean +- std over seeds")
    return {"table": run_dir / "table.md", "csv": run_dir / "table.csv", "figure": run_dir / "curves.png"}


def missed_bars(summaries: list[dict], budgets: dict[str, int]) -> list[str]:
    """--as-test: an own agent must reach the greedy threshold on the validation seeds within budget, and the agent
    its run returns must score at least the threshold on the test seeds; an RLlib agent must reach RLlib's own
    bar within budget."""
    missed = []
    for s in summaries:
        key = "rllib_reached_step" if s["algo"].startswith("rllib") else "reached_step"
        if s.get(key) is None or s[key] > budgets[s["algo"]]:
            missed.append(f"{s['algo']} seed {s['seed']}: {key} = {s.get(key)} (budget {budgets[s['algo']]:,})")
        if not s["algo"].startswith("rllib") and s["test_return_mean"] < s["threshold"]:
            missed.append(f"{s['algo']} seed {s['seed']}: test_return_mean = {s['test_return_mean']:.1f} "
                          f"(< {s['threshold']:g}; returned {s['returned_agent']})")
    return missed
