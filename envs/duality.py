"""Duality (spec): a 3-state MDP whose optimal play alternates between states 0 and 1."""

from envs.tabular import TabularEnv

START, MIDDLE, ABSORBING = 0, 1, 2


class DualityEnv(TabularEnv):
    """Duality of the spec; (state, action) -> (next state, reward):

    (0, 0) -> 2, 0; (0, 1) -> 1, 0.5; (1, 0) -> 0, 0.5; (1, 1) -> 1, 0.3; (2, any) -> 2, -1.

    It never terminates (registered with a time limit of 10 steps). With gamma 0.99,
    Q*(0, 1) = 50 and Q*(0, 0) = -99; optimal play 1, 0, 1, 0, ... returns 5.0 in 10 steps.
    """

    def __init__(self) -> None:
        super().__init__({
            START: {0: [(1.0, ABSORBING, 0.0, False)], 1: [(1.0, MIDDLE, 0.5, False)]},
            MIDDLE: {0: [(1.0, START, 0.5, False)], 1: [(1.0, MIDDLE, 0.3, False)]},
            ABSORBING: {0: [(1.0, ABSORBING, -1.0, False)], 1: [(1.0, ABSORBING, -1.0, False)]},
        })
