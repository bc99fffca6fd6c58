"""Bandit (spec): one state, 4 arms; arm k pays (k+1)/5 and ends the episode."""

from envs.tabular import TabularEnv

START, END = 0, 1
N_ARMS = 4


def arm_payoff(arm: int) -> float:
    """Reward of pulling `arm`: 0.2, 0.4, 0.6, 0.8."""
    return (arm + 1) / 5


class BanditEnv(TabularEnv):
    """One-step bandit of the spec: state 0 is the start, state 1 the terminal end state.

    Arm k pays (k+1)/5 and terminates, so Q*(0, k) = (k+1)/5.
    """

    def __init__(self) -> None:
        super().__init__({
            START: {arm: [(1.0, END, arm_payoff(arm), True)] for arm in range(N_ARMS)},
            END: {arm: [(1.0, END, 0.0, True)] for arm in range(N_ARMS)},
        })
