"""The simulator behind `manage.py simulate` and the settings card: every selection strategy run
through the real loop over a generated world with known truth, and the reranker each budget buys
measured on held-out queries. One module per concern:

- `world`: the world's spec (the default world's priors) and its generation, stored as a project;
- `annotator`: simulated annotators answering tasks from the hidden truth;
- `loop`: driving the selection loop, one run and a whole plan (`simulate`);
- `measure`: the one model and tuning grid, and NDCG@10 on the held-out queries;
- `statistics`: summaries over seeds, paired differences and their t-intervals;
- `report`: the printed table and the plot;
- `like_project`: a world shaped like a project (`world_like`).

The names callers use are re-exported here (`from active_selection import simulator`).
"""

from ..strategies import BREADTH_FIRST, PER_QUERY, POLICIES, plan_pages
from .annotator import SimulatedAnnotator, answer_task
from .like_project import world_like
from .loop import (
    DEFAULT_BUDGETS,
    KNOWN_STRATEGIES,
    STRATEGIES,
    RunResult,
    SimulationPlan,
    drive_loop,
    run_once,
    simulate,
)
from .measure import TrainingSpec, supervision_fingerprint, train_and_measure
from .report import format_table, write_plot
from .statistics import (
    NEAR_FULL,
    cheapest,
    paired_differences,
    paired_interval,
    summarise,
    t95,
)
from .world import (
    MODALITY_NAMES,
    SeedWorld,
    WorldSpec,
    search_share,
    store_seed_world,
    store_world,
)

__all__ = [
    "BREADTH_FIRST",
    "DEFAULT_BUDGETS",
    "KNOWN_STRATEGIES",
    "MODALITY_NAMES",
    "NEAR_FULL",
    "PER_QUERY",
    "POLICIES",
    "STRATEGIES",
    "RunResult",
    "SeedWorld",
    "SimulatedAnnotator",
    "SimulationPlan",
    "TrainingSpec",
    "WorldSpec",
    "answer_task",
    "cheapest",
    "drive_loop",
    "format_table",
    "paired_differences",
    "paired_interval",
    "plan_pages",
    "run_once",
    "search_share",
    "simulate",
    "store_seed_world",
    "store_world",
    "summarise",
    "supervision_fingerprint",
    "t95",
    "train_and_measure",
    "world_like",
    "write_plot",
]
