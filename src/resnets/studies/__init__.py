"""Studies: the papers' experiments as sets of ordinary training runs, resumable and on one machine or a cluster.

A study is a directory: `study.json` (the spec), `runs/<run-id>/` (each an ordinary `resnets train` run
directory, its id derived from the run's resolved configuration), `results.csv`, `report.md` and plots.
The parts: `spec` (one dataclass per study kind and the runs it plans), `runid` (ids from resolved specs),
`job` (one run, executed in its own process), `executors` (local processes or Ray tasks), `runner`
(resume bookkeeping), `results`, `stats`, `report` and `plots`; `published` holds the papers' data.
"""

from .runner import run_study, show_study
from .spec import AblationStudy, ScalingStudy, SeedsStudy, TransferStudy, load_study

__all__ = ["AblationStudy", "ScalingStudy", "SeedsStudy", "TransferStudy", "load_study", "run_study", "show_study"]
