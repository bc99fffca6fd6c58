"""The paper's experiment app around the `rllib_society` extension: YAML config and its validation
(`config`), the command-line flags (`cli`), the training driver on Ray Tune (`training`), Tune
searches (`search`), results, tables and plots (`reporting`, `compare`), and the evaluations of the
paper's tasks (`evaluation`, `transform_evaluation`, `callbacks`). `run.py` and `tune_search.py` are
its entry points; it uses the extension only through ``rllib_society``'s public API."""

from experiments.config import ExperimentConfig
from experiments.config_files import load_config

__all__ = ["ExperimentConfig", "load_config"]
