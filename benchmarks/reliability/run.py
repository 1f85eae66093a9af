"""One reliability run: every scenario in turn, then the report.

Example::

    results = run_suite(ReliabilityConfig.quick(out=Path("/tmp/rel")))
    results["ok"]   # every check of every scenario passed
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from rewardserve.benchmarks.reliability import bad_input, bad_models, faults, overload, sigterm, soak
from rewardserve.benchmarks.reliability.bundles import resolve
from rewardserve.benchmarks.reliability.common import Section, SoloScorer
from rewardserve.benchmarks.reliability.config import ReliabilityConfig
from rewardserve.benchmarks.reliability.report import write_report

logger = logging.getLogger(__name__)


def _scenarios(cfg: ReliabilityConfig, models: dict[str, Path], scorer: SoloScorer, work: Path,
               logs: Path) -> list[tuple[str, Callable[[], Section]]]:
    tol = cfg.logit_tolerance
    return [
        ("soak", lambda: soak.soak(models, scorer, cfg, logs)),
        ("cancellation", lambda: faults.cancellation(models, scorer, tol)),
        ("overload", lambda: overload.overload(models, cfg, logs)),
        ("SIGTERM under load", lambda: sigterm.sigterm(models, scorer, cfg, logs)),
        ("injected runner failure", lambda: faults.injected_failure(models, scorer, tol)),
        ("bad models", lambda: bad_models.bad_models(models, work / "broken", logs, cfg.bad_models_subprocess)),
        ("bad input", lambda: bad_input.bad_input(models, scorer, cfg.bad_input_requests, cfg.bad_input_batch, tol,
                                                  logs, cfg.bad_input_workers)),
    ]


def run_suite(cfg: ReliabilityConfig, command: str = "") -> dict:
    """Run every scenario (a crash fails its section, the others still run); write the report."""
    started = datetime.now(UTC).isoformat(timespec="seconds")
    start = time.monotonic()
    logs = cfg.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        work = cfg.work_dir or Path(tmp)
        models = resolve(cfg, work)
        scorer = SoloScorer(models)
        sections = []
        try:
            for name, scenario in _scenarios(cfg, models, scorer, work, logs):
                t = time.monotonic()
                logger.info("reliability: %s", name)
                try:
                    section = scenario()
                except Exception as e:  # noqa: BLE001 - report it as a failed scenario and go on
                    logger.error("%s crashed", name, exc_info=e)
                    section = Section(name)
                    section.check("ran to the end", False, "".join(traceback.format_exception_only(e)).strip())
                section.figures["scenario_s"] = round(time.monotonic() - t, 1)
                logger.info("reliability: %s %s in %.1f s", name, "passed" if section.ok else "FAILED",
                            time.monotonic() - t)
                sections.append(section)
        finally:
            scorer.close()
    results = {
        "command": command or "python -m rewardserve.benchmarks.reliability", "ok": all(s.ok for s in sections),
        "seconds": time.monotonic() - start, "models": {k: str(v) for k, v in models.items()},
        "config": cfg.to_dict(), "sections": [s.to_dict() for s in sections],
        "environment": {"started": started, "machine": f"{os.cpu_count()} CPU cores, {platform.platform()}",
                        "python": sys.version.split()[0]},
    }
    write_report(results, cfg.out)
    return results
