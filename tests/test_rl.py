"""Chapter 5.5 unit tests: replay buffer, TD targets (terminal vs truncated, Double DQN), discounted returns,
the REINFORCE loss, the shared evaluator, save/load, seeds, GIF. Tiny budgets; seconds in all."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from genlab.core.checkpoint import load_model
from genlab.eval.rl import evaluate_policy
from genlab.rl import DQNConfig, ReinforceConfig
from genlab.rl.buffer import ReplayBuffer
from genlab.rl.config import smoke_config
from genlab.rl.dqn import DQNAgent, linear_epsilon, td_target, train_dqn
from genlab.rl.envs import EpisodeStats, env_dims, real_next_obs
from genlab.rl.figures import record_gif
from genlab.rl.reinforce import ReinforceAgent, discounted_returns, reinforce_loss, train_reinforce
from genlab.rl.results import curve_on_grid


def heuristic(obs):  # push the cart towards where the pole falls: a strong CartPole policy without learning
    return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)


# -- replay buffer ---------------------------------------------------------------------------------------------
def test_replay_buffer_wraps_around_and_keeps_the_newest():
    buf = ReplayBuffer(5, (2,))
    for i in range(7):
        buf.add(np.full((1, 2), i), [i], [float(i)], np.full((1, 2), i + 1), [0.0])
    assert len(buf) == 5 and buf.pos == 2
    assert sorted(buf.actions.tolist()) == [2, 3, 4, 5, 6]
    assert buf.actions[0] == 5 and buf.actions[1] == 6  # the two oldest slots were overwritten
    np.testing.assert_array_equal(buf.next_obs[buf.actions == 4], [[5, 5]])


def test_replay_buffer_batched_add_wraps_and_samples_only_filled_slots():
    buf = ReplayBuffer(8, (3,))
    buf.add(np.ones((3, 3)), [1, 1, 1], [1, 1, 1], np.ones((3, 3)), [0, 1, 0])
    batch = buf.sample(64, np.random.default_rng(0))
    assert set(batch["actions"].tolist()) == {1}  # never an unfilled (zero) slot
    assert batch["obs"].shape == (64, 3) and batch["obs"].dtype == torch.float32
    assert batch["actions"].dtype == torch.int64 and set(batch["terminated"].tolist()) <= {0.0, 1.0}
    buf.add(np.full((6, 3), 2.0), [2] * 6, [0] * 6, np.zeros((6, 3)), [0] * 6)  # 9 rows into 8 slots
    assert len(buf) == 8 and buf.pos == 1 and buf.actions[0] == 2
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(4, (1,)).sample(2, np.random.default_rng(0))


# -- TD targets --------------------------------------------------------------------------------------------------
def linear_q(weight):
    net = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor(weight, dtype=torch.float32))
    return net


def test_td_target_terminal_stops_bootstrapping_truncated_does_not():
    target = linear_q([[1.0, 0.0], [0.0, 2.0]])  # Q(s') = (s'_0, 2 s'_1)
    next_obs = torch.tensor([[3.0, 1.0], [3.0, 1.0]])
    rewards = torch.tensor([1.0, 1.0])
    terminated = torch.tensor([1.0, 0.0])  # row 0 terminal; row 1 truncated (or ongoing): bootstraps
    y = td_target(rewards, next_obs, terminated, 0.9, target)
    torch.testing.assert_close(y, torch.tensor([1.0, 1.0 + 0.9 * 3.0]))


def test_double_dqn_target_uses_online_argmax_and_target_value():
    target = linear_q([[1.0, 0.0], [0.0, 2.0]])   # Q_target(s') = (3, 2)  -> DQN takes 3
    online = linear_q([[0.0, 0.0], [0.0, 1.0]])   # Q_online(s') = (0, 1) -> picks action 1
    next_obs = torch.tensor([[3.0, 1.0]])
    args = (torch.tensor([0.5]), next_obs, torch.tensor([0.0]), 0.99)
    torch.testing.assert_close(td_target(*args, target), torch.tensor([0.5 + 0.99 * 3.0]))
    torch.testing.assert_close(td_target(*args, target, online), torch.tensor([0.5 + 0.99 * 2.0]))


def test_truncated_step_stores_the_real_final_observation():
    # a 5-step time limit and a balancing policy: the episodes end by truncation, not by falling
    envs = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync", max_episode_steps=5,
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    obs, _ = envs.reset(seed=0)
    for _ in range(5):
        next_obs, _, terminated, truncated, info = envs.step(heuristic(obs))
        obs = next_obs
    assert truncated.all() and not terminated.any()
    fixed = real_next_obs(next_obs, truncated, info)
    np.testing.assert_array_equal(fixed, np.stack(info["final_obs"]))
    assert not np.array_equal(fixed[0], next_obs[0])  # next_obs already holds the reset observation
    envs.close()


def test_episode_stats_count_true_returns_per_env():
    stats = EpisodeStats(2)
    stats.update(np.array([1.0, 1.0]), np.array([False, False]), 2)
    done = stats.update(np.array([1.0, 5.0]), np.array([False, True]), 4)
    assert done == [{"step": 4, "return": 6.0, "length": 2}]
    assert stats.returns.tolist() == [2.0, 0.0]


def test_linear_epsilon_schedule():
    cfg = DQNConfig(total_env_steps=1000, eps_start=1.0, eps_end=0.1, eps_fraction=0.5)
    assert linear_epsilon(0, cfg) == 1.0
    assert linear_epsilon(250, cfg) == pytest.approx(0.55)
    assert linear_epsilon(500, cfg) == pytest.approx(0.1) and linear_epsilon(900, cfg) == pytest.approx(0.1)


# -- REINFORCE ---------------------------------------------------------------------------------------------------
def test_discounted_returns_by_hand():
    np.testing.assert_allclose(discounted_returns([1.0, 2.0, 3.0], 0.9), [1 + 0.9 * 2 + 0.81 * 3, 2 + 0.9 * 3, 3])
    np.testing.assert_allclose(discounted_returns([1.0, 2.0], 0.5, bootstrap=8.0), [1 + 0.5 * 2 + 0.25 * 8, 2 + 4])
    assert discounted_returns([], 0.9).shape == (0,)


def test_reinforce_loss_is_minus_mean_logprob_times_normalised_return():
    torch.manual_seed(0)
    agent = ReinforceAgent(4, 2, (8,), baseline=False)
    obs, actions = torch.randn(5, 4), torch.tensor([0, 1, 1, 0, 1])
    returns = torch.tensor([3.0, 2.0, 1.0, 5.0, 4.0])
    loss, info = reinforce_loss(agent, obs, actions, returns, normalize=True)
    log_pi = torch.log_softmax(agent(obs), 1)[torch.arange(5), actions]
    adv = (returns - returns.mean()) / (returns.std() + 1e-8)
    torch.testing.assert_close(loss, -(log_pi * adv).mean())
    loss.backward()  # the gradient reaches the policy: the log-probabilities are part of the graph
    assert agent.policy[0].weight.grad.abs().sum() > 0


def test_reinforce_baseline_subtracts_value_and_fits_it():
    torch.manual_seed(0)
    agent = ReinforceAgent(4, 2, (8,), baseline=True)
    obs, actions, returns = torch.randn(6, 4), torch.tensor([0, 1, 0, 1, 0, 1]), torch.arange(6.0)
    loss, info = reinforce_loss(agent, obs, actions, returns, normalize=False)
    values = agent.value(obs).squeeze(1)
    log_pi = torch.log_softmax(agent(obs), 1)[torch.arange(6), actions]
    expected = -(log_pi * (returns - values.detach())).mean() + ((values - returns) ** 2).mean()
    torch.testing.assert_close(loss, expected)


# -- evaluation, training runs, save/load --------------------------------------------------------------------------
def test_evaluator_is_seeded_per_episode_and_independent_of_parallelism():
    a = evaluate_policy(heuristic, "CartPole-v1", episodes=7, seed=3, parallel=1)
    b = evaluate_policy(heuristic, "CartPole-v1", episodes=7, seed=3, parallel=4)
    np.testing.assert_array_equal(a.returns, b.returns)
    assert a.mean > 100  # the heuristic balances; a random policy averages ~22
    np.testing.assert_array_equal(a.returns, a.lengths)  # CartPole's true reward: 1 per step


def test_the_run_returns_the_best_validated_agent_and_plays_the_test_seeds_once(tmp_path):
    from genlab.rl.config import EvalConfig
    from genlab.rl.results import RunRecorder

    def always_left(obs):
        return np.zeros(len(obs), dtype=np.int64)

    cfg = smoke_config(DQNConfig())
    cfg.eval = EvalConfig(every_steps=1, screen_episodes=2, episodes=5, threshold=50.0, seed=100, test_seed=200)
    for select, returned in (("best_validation", "agent_best"), ("final", "agent")):
        cfg.eval.select = select
        live = {"policy": heuristic}  # the "training": good at step 1, collapsed by step 2
        rec = RunRecorder("dqn", cfg, None, None, policy=lambda greedy: live["policy"], save=None,
                          stochastic=False, freeze=lambda: (lambda greedy, frozen=live["policy"]: frozen))
        rec.evaluate(1)
        live["policy"] = always_left
        rec.evaluate(2)
        summary = rec.finish(2)
        good_test = evaluate_policy(heuristic, "CartPole-v1", 5, seed=200).mean
        bad_test = evaluate_policy(always_left, "CartPole-v1", 5, seed=200).mean
        assert summary["best_validation_step"] == 1 and summary["reached_step"] == 1
        assert summary["best_validation_eval_return"] == evaluate_policy(heuristic, "CartPole-v1", 5, seed=100).mean
        assert summary["returned_agent"] == returned and summary["final_test_return_mean"] == bad_test
        assert summary["test_return_mean"] == (good_test if returned == "agent_best" else bad_test)
    with pytest.raises(ValueError, match="overlap the validation seeds"):
        EvalConfig(seed=10_000, test_seed=10_050, episodes=100)


def test_env_checks_give_clear_errors():
    assert env_dims("CartPole-v1") == (4, 2)
    with pytest.raises(ValueError, match="Discrete action"):
        env_dims("Pendulum-v1")
    with pytest.raises(ValueError, match="unknown gymnasium environment"):
        env_dims("NoSuchEnv-v0")


def test_dqn_smoke_run_is_seeded_and_logs_true_returns_with_shaping(tmp_path):
    cfg = smoke_config(DQNConfig(failure_reward=-10.0))
    a, b = train_dqn(cfg), train_dqn(cfg, tmp_path / "run")
    assert a["curve"] == b["curve"] and a["final_greedy_return_mean"] == b["final_greedy_return_mean"]
    assert a["env_steps"] == cfg.total_env_steps and a["threshold"] == 475.0
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    episodes = [json.loads(line) for line in lines if "charts/episodic_return" in line]
    assert episodes and all(e["charts/episodic_return"] == e["charts/episodic_length"] > 0 for e in episodes)
    assert {"learning_curve.png", "episode.gif", "summary.json"} <= {p.name for p in (tmp_path / "run").iterdir()}


def test_dqn_vectorised_envs_and_double_dqn_run():
    cfg = smoke_config(DQNConfig(num_envs=4, double_dqn=True, tau=0.5))
    summary = train_dqn(cfg)
    assert summary["env_steps"] == cfg.total_env_steps and summary["episodes"] > 4


def test_agents_save_and_load_back_to_the_same_actions(tmp_path, monkeypatch):
    import genlab.rl.dqn
    import genlab.rl.reinforce
    from genlab.rl.checkpoint import save_agent

    trained = {}

    def keep(path, agent, cfg, algo):  # the agent object training ends with, to compare with what loads back
        trained[algo] = agent
        return save_agent(path, agent, cfg, algo)

    monkeypatch.setattr(genlab.rl.dqn, "save_agent", keep)
    monkeypatch.setattr(genlab.rl.reinforce, "save_agent", keep)
    obs = np.random.default_rng(0).normal(size=(256, 4)).astype(np.float32)
    train_reinforce(smoke_config(ReinforceConfig()), tmp_path / "rf")
    train_dqn(smoke_config(DQNConfig()), tmp_path / "dqn")
    for name, algo, cls in (("rf", "reinforce", ReinforceAgent), ("dqn", "dqn", DQNAgent)):
        agent = load_model(tmp_path / name / "agent")
        assert isinstance(agent, cls)
        with torch.no_grad():
            torch.testing.assert_close(agent(torch.from_numpy(obs)), trained[algo](torch.from_numpy(obs)),
                                       rtol=0, atol=0)
        np.testing.assert_array_equal(agent.act(obs, greedy=True), trained[algo].act(obs, greedy=True))
    gif = Image.open(tmp_path / "rf" / "episode.gif")
    assert gif.n_frames > 2


def test_reinforce_truncation_bootstraps_from_the_value_head():
    summary = train_reinforce(smoke_config(ReinforceConfig(env_id="Acrobot-v1", total_env_steps=600)))
    assert summary["threshold"] == -100.0 and summary["episodes"] >= 1  # Acrobot truncates at 500 steps


def test_record_gif_of_a_heuristic_episode(tmp_path):
    path = record_gif(heuristic, "CartPole-v1", 0, tmp_path / "ep.gif", frame_skip=5)
    img = Image.open(path)
    assert img.n_frames > 10 and img.size == (300, 200)


def test_curve_on_grid_uses_last_value_and_does_not_extrapolate():
    points = [(100, 1.0), (250, 2.0), (390, 3.0)]
    assert curve_on_grid(points, np.array([50, 100, 200, 300, 400, 500, 600])) == [None, 1.0, 1.0, 2.0, 3.0, None,
                                                                                  None]
    assert curve_on_grid([], np.array([1, 2])) == [None, None]


def test_gym_spec_thresholds_are_what_the_bars_assume():
    assert gym.spec("CartPole-v1").reward_threshold == 475.0 and gym.spec("CartPole-v1").max_episode_steps == 500


def _summary(algo, seed, reached, final, rllib=None, test=500.0, returned="agent"):
    s = {"algo": algo, "env_id": "CartPole-v1", "seed": seed, "threshold": 475.0, "eval_episodes": 100,
         "reached_step": reached, "reached_train_seconds": None if reached is None else reached / 1000,
         "final_greedy_return_mean": final, "curve": {"steps": [1000, 2000], "return": [20.0, None]},
         "test_return_mean": test, "returned_agent": returned}
    if algo.startswith("rllib"):
        s["rllib_reached_step"] = rllib
    return s


def test_report_table_counts_runs_within_budget_and_as_test_names_misses(tmp_path):
    from genlab.rl.report import COLUMNS, missed_bars, table_rows, write_report

    summaries = [_summary("dqn", 0, 7500, 300.0, test=490.0, returned="agent_best"),
                 _summary("dqn", 1, 60_000, 480.0, test=470.0),
                 _summary("rllib_ppo", 0, 36_000, 500.0, rllib=84_000, test=400.0)]
    budgets = {"dqn": 50_000, "rllib_ppo": 200_000}
    rows = table_rows(summaries, budgets)
    assert rows[0][COLUMNS[4]].startswith("1/2") and rows[0][COLUMNS[5]] == "7,500; 7,500"
    assert rows[0][COLUMNS[8]] == "1 / 1" and rows[0][COLUMNS[9]] == "480.0; 470.0" and rows[0][COLUMNS[10]] == "1/2"
    assert rows[1][COLUMNS[11]] == "1/1; 84,000"
    assert missed_bars(summaries, budgets) == ["dqn seed 1: reached_step = 60000 (budget 50,000)",
                                               "dqn seed 1: test_return_mean = 470.0 (< 475; returned agent)"]
    paths = write_report(summaries, budgets, tmp_path)
    assert paths["figure"].exists() and "| dqn | CartPole-v1 | 2 |" in paths["table"].read_text()


def test_rllib_bar_defaults():
    from genlab.distributed.rllib import RLlibDQNConfig, RLlibPPOConfig, rllib_bar

    assert rllib_bar(RLlibDQNConfig()) == 450.0 and rllib_bar(RLlibPPOConfig(env_id="Acrobot-v1")) == -100.0
    assert rllib_bar(RLlibPPOConfig(stop_return=300)) == 300.0
