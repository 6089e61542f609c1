"""Learning-rate schedules that follow `training.max_steps`.

thinc's `warmup_linear.v1` takes its warm-up and total steps as numbers, so a
config that says `max_steps = 20000` with `warmup_steps = 250` and
`total_steps = 20000` trains a user's `--training.max_steps 200` run inside its
warm-up, at a learning rate near 0. This schedule takes the total from
`${training.max_steps}` by interpolation and the warm-up as a fraction of it,
so one override gives a whole warm-up and decay.
"""

from typing import Iterator

from thinc.api import registry


@registry.schedules("spacy-clinlong.warmup_linear.v1")
def warmup_linear_v1(initial_rate: float, total_steps: int, warmup_fraction: float = 0.1) -> Iterator[float]:
    """Warm up linearly over a fraction of the steps, then decay linearly to 0.

    initial_rate (float): The peak learning rate, reached at the end of warm-up.
    total_steps (int): Steps of the whole run, usually `${training.max_steps}`;
        0 or less (training by epochs) keeps the peak rate after the warm-up.
    warmup_fraction (float): The share of total_steps spent warming up (0 to 1).
    RETURNS (Iterator[float]): The rate of each step.
    """
    if not 0.0 <= warmup_fraction < 1.0:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
    if initial_rate < 0:
        raise ValueError(f"initial_rate must not be negative, got {initial_rate}")
    total = int(total_steps)
    warmup = int(round(warmup_fraction * total)) if total > 0 else 0
    step = 0
    while True:
        if step < warmup:
            factor = (step + 1) / (warmup + 1)
        elif total > 0:
            factor = max(0.0, (total - step) / max(1, total - warmup))
        else:
            factor = 1.0
        yield factor * initial_rate
        step += 1
