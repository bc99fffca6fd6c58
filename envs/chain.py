"""Chain (spec): states 0..5 in a row, Left/Right, reward 0.8 on entering the goal 5."""

from envs.tabular import TabularEnv

LEFT, RIGHT = 0, 1
GOAL = 5
GOAL_REWARD = 0.8
#: The spec's one-hot observation has size 7; state 6 is never used.
N_OBS = 7


class ChainEnv(TabularEnv):
    """Chain of the spec: start at 0, walls at the ends (Left at 0 stays at 0); entering the
    goal 5 pays 0.8 and terminates. The goal and the unused state 6 are absorbing, Q* = 0.

    With discount gamma, Q*(s, Right) = 0.8 * gamma^(4-s) and
    Q*(s, Left) = gamma * Q*(max(s-1, 0), Right). Registered with a time limit of 20 steps.

    ``num_actions > 2`` adds actions 2, 3, ... that stay in place (Q* = gamma * Q*(s, Right)):
    the same task for a bigger society, as the throughput benchmark uses.
    """

    def __init__(self, num_actions: int = 2) -> None:
        if num_actions < 2:
            raise ValueError(f"num_actions={num_actions} is not allowed; Chain needs >= 2 (Left, Right).")
        table = {
            s: {
                LEFT: [(1.0, max(s - 1, 0), 0.0, False)],
                RIGHT: [(1.0, s + 1, GOAL_REWARD if s + 1 == GOAL else 0.0, s + 1 == GOAL)],
                **{stay: [(1.0, s, 0.0, False)] for stay in range(2, num_actions)},
            }
            for s in range(GOAL)
        }
        for s in range(GOAL, N_OBS):
            table[s] = {a: [(1.0, s, 0.0, True)] for a in range(num_actions)}
        super().__init__(table)
