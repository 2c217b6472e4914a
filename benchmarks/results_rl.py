"""RESULTS.md's chapter 5.5 section (reinforcement learning) from the rl_*.json results."""

from __future__ import annotations

from genlab.rl.report import agent_stats
from results_common import _span, load, verdict


def _sampled(a: dict) -> str:
    return f"; final sampled-action return {_span(a['sampled'], '{:.1f}')}" if a["sampled"] else ""


def chapter3_rows() -> list[str]:
    rows = ["| check | bar | measured | verdict | command |", "|---|---|---|---|---|"]
    r = load("rl_cartpole")
    cmd = "python benchmarks/chapter3_rl.py --only cartpole"
    if r is None:
        return rows + [f"| CartPole-v1 bars | | not run | | `{cmd}` |"]
    for agent, label, bar in (("dqn", "own DQN", "greedy mean >= 475 over 100 episodes within 50k env steps, 5/5 seeds"),
                              ("reinforce", "own REINFORCE", "greedy mean >= 475 within 300k env steps, 5/5 seeds")):
        a = agent_stats(r["summaries"], agent, r["budgets"][agent])
        rows.append(f"| {label}, CartPole-v1 | {bar} | {a['ok']}/{a['n']} seeds; env steps to 475: "
                    f"{_span(a['steps'])}; training s: {_span(a['secs'], '{:.1f}')}; final greedy return "
                    f"{_span(a['final'], '{:.1f}')}{_sampled(a)} | {verdict(a['ok'] == a['n'] == 5)} | `{cmd}` |")
        if a["test"]:  # runs since the validation / test split of evaluation seeds
            threshold = a["runs"][0]["threshold"]
            ok = sum(t >= threshold for t in a["test"])
            rows.append(f"| {label}, CartPole-v1: the agent each run returns | mean over 100 test-seed episodes "
                        f"(never looked at in training) >= 475, 5/5 seeds | {ok}/{a['n']} seeds; returned: "
                        f"best-validation agent {a['best']}, final agent {a['n'] - a['best']}; test return "
                        f"{_span(a['test'], '{:.1f}')}; the final agents on the test seeds "
                        f"{_span(a['final_test'], '{:.1f}')} | {verdict(ok == a['n'] == 5)} | `{cmd}` |")
    for agent, label in (("rllib_dqn", "RLlib DQN"), ("rllib_ppo", "RLlib PPO")):
        a = agent_stats(r["summaries"], agent, r["budgets"][agent])
        rows.append(f"| {label}, CartPole-v1 | RLlib's episode_return_mean >= 450 within 200k env steps | "
                    f"{a['rllib_ok']}/{a['n']} seeds; env steps to 450: {_span(a['rllib_steps'])}; our greedy "
                    f"evaluation >= 475: {a['ok']}/{a['n']}, env steps {_span(a['steps'])}; final greedy return "
                    f"{_span(a['final'], '{:.1f}')}{_sampled(a)} | {verdict(a['rllib_ok'] == a['n'])} | `{cmd}` |")
    side = load("rl_side_by_side")
    if side:
        own, lib = agent_stats(side["summaries"], "dqn", side["budgets"]["dqn"]), agent_stats(
            side["summaries"], "rllib_dqn", side["budgets"]["rllib_dqn"])
        rows.append(f"| own DQN vs RLlib DQN, one run, one trial at a time | side by side (env steps and training "
                    f"s to greedy 475) | own: {own['ok']}/{own['n']} seeds, {_span(own['steps'])} steps, "
                    f"{_span(own['secs'], '{:.1f}')} s; RLlib: {lib['ok']}/{lib['n']} seeds, {_span(lib['steps'])} "
                    f"steps, {_span(lib['secs'], '{:.1f}')} s | (reported) | `{side['command']}` via "
                    f"`python benchmarks/chapter3_rl.py --only side_by_side` |")
    double = load("rl_dqn_double")
    if double:
        a = agent_stats(double["summaries"], "dqn", double["budgets"]["dqn"])
        rows.append(f"| Double DQN, CartPole-v1 (50,000 env steps) | (no bar: does the final agent hold?) | "
                    f"greedy >= 475 on validation: {a['ok']}/{a['n']} seeds, env steps {_span(a['steps'])}; final "
                    f"agents on the test seeds {_span(a['final_test'], '{:.1f}')}; returned agents on the test seeds "
                    f"{_span(a['test'], '{:.1f}')} | | `{double['command']}` via "
                    f"`python benchmarks/chapter3_rl.py --only dqn_double` |")
    acro = load("rl_acrobot")
    if acro:
        for agent in ("dqn", "reinforce", "rllib_dqn", "rllib_ppo"):
            if agent not in acro["budgets"]:
                continue
            a = agent_stats(acro["summaries"], agent, acro["budgets"][agent])
            rows.append(f"| {agent}, Acrobot-v1 ({a['budget']:,} env steps) | (no bar; threshold -100) | final "
                        f"greedy return {_span(a['final'], '{:.1f}')}; greedy >= -100: {a['ok']}/{a['n']} seeds, "
                        f"env steps {_span(a['steps'])} | | `python benchmarks/chapter3_rl.py --only acrobot` |")
    rows += ["", f"Four agents, {r['seeds']} seeds each, {r['max_concurrent']} trials at a time, {r['wall_s'] / 60:.1f} "
             f"min in all ({r['date']}):", "", "![CartPole-v1 curves](results/rl_cartpole_curves.png)"]
    if acro:
        rows += ["", f"Acrobot-v1, {acro['seeds']} seeds ({acro['wall_s'] / 60:.1f} min):", "",
                 "![Acrobot-v1 curves](results/rl_acrobot_curves.png)"]
    return rows
