"""Where a flood of single-item requests spends the server's time: py-spy over one server process.

    python -m rewardserve.benchmarks.profile_server --out benchmarks/results/profile-tiny     # tiny bundle

Starts rewardserve with ONE process (one event loop to read; ``--bundle`` to profile another
model) and drives it with ``--clients`` single-item gRPC clients from ``--client-procs``
processes, while ``py-spy record --format raw --threads --nonblocking`` samples it for the
measured window. Prints (and writes to ``--out``/profile.md) the share of samples per thread,
the event-loop thread's top entries by self and by inclusive samples, and the server's own
figures for the window: items/s, mean batch size and server CPU per request. Needs ``py-spy``
(``pip install py-spy``); issue 12's before/after profiles come from this command.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from rewardserve.benchmarks.client_pool import ClientPool
from rewardserve.benchmarks.environment import default_data
from rewardserve.benchmarks.loadgen import LoadSpec
from rewardserve.benchmarks.run import tiny_onnx
from rewardserve.benchmarks.server_proc import ServerProcess
from rewardserve.benchmarks.workload import Workload

TOP = 25


def summarize(raw: str) -> tuple[Counter, Counter, Counter, int]:
    """(samples per thread, loop thread's self samples, its inclusive samples, its sample count) of py-spy raw output."""
    threads, own, inclusive, main = Counter(), Counter(), Counter(), 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames, n = stack.split(";"), int(count)
        threads[frames[0]] += n
        if "MainThread" in frames[0]:
            main += n
            own[frames[-1]] += n
            for f in set(frames[1:]):
                inclusive[f] += n
    return threads, own, inclusive, main


def py_spy() -> str:
    """py-spy beside this interpreter (a venv's bin), else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.is_file() else (shutil.which("py-spy") or "py-spy")


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of process ``pid``, by thread id (Linux /proc)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def thread_names(dump: str) -> dict[int, str]:
    """Python thread names by thread id, from ``py-spy dump`` output (``Thread 123 (idle): "prepare_0"``)."""
    return {int(tid): name for tid, name in re.findall(r'^Thread (\d+) \([^)]*\): "([^"]+)"', dump, re.M)}


def cpu_by_thread(before: dict[int, float], after: dict[int, float], names: dict[int, str],
                  requests: int) -> list[tuple[str, float]]:
    """(thread, CPU us per request) over a window, heaviest first; threads Python does not know are "native"."""
    us: Counter = Counter()
    for tid, seconds in after.items():
        us[names.get(tid, "native (gRPC core, runtime pools)")] += 1e6 * (seconds - before.get(tid, 0.0)) / max(requests, 1)
    return us.most_common()


def report(raw: str, figures: dict, top: int = TOP, cpu: list[tuple[str, float]] = ()) -> str:
    """The profile as markdown."""
    threads, own, inclusive, main = summarize(raw)
    total = sum(threads.values()) or 1
    lines = ["# Server profile under single-item load", "",
             " | ".join(f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}" for k, v in figures.items()), "",
             "| thread | share of samples |", "|---|---:|"]
    lines += [f"| {t} | {100 * n / total:.1f}% |" for t, n in threads.most_common(8)]
    if cpu:  # what each thread used, from the kernel's counters (py-spy sees Python frames only)
        lines += ["", "| thread | server CPU us / request |", "|---|---:|"]
        lines += [f"| {t} | {us:.0f} |" for t, us in cpu]
    for title, counts in (("self", own), ("inclusive", inclusive)):
        lines += ["", f"Event-loop thread, top entries by {title} samples ({main} samples):", "",
                  "| share | frame |", "|---:|---|"]
        lines += [f"| {100 * n / max(main, 1):.1f}% | `{f}` |" for f, n in counts.most_common(top)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Serve, load, sample, print."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, help="ONNX bundle to serve (default: the bench's tiny bundle)")
    p.add_argument("--data", type=Path, help="texts (default: the bench's default for the bundle)")
    p.add_argument("--clients", type=int, default=256)
    p.add_argument("--client-procs", type=int, default=2)
    p.add_argument("--duration-s", type=float, default=8.0)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    args.bundle = args.bundle or tiny_onnx()
    workload = Workload.load(args.bundle, args.data or default_data(args.bundle), max_texts=400, seed=0)
    log_dir = args.out or Path(tempfile.mkdtemp(prefix="profile-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    server = ServerProcess.rewardserve(args.bundle, "auto", threads=1, max_batch_items=64, max_wait_ms=None,
                                       log_dir=log_dir, processes=1)
    with server.start(180), ClientPool(args.client_procs, {"grpc": workload.requests(1)}) as pool:
        spec = LoadSpec(concurrency=args.clients, duration_s=args.duration_s, warmup_s=1.0)
        pool.run(server.target, "grpc", LoadSpec(concurrency=args.clients, duration_s=2.0))  # warm
        spy = subprocess.Popen([py_spy(), "record", "-p", str(server.proc.pid), "-d", str(int(args.duration_s)),
                                "-r", str(args.rate), "-f", "raw", "-t", "--nonblocking", "-o",
                                str(log_dir / "py-spy.txt")], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        time.sleep(0.5)  # py-spy attaches while the clients start
        before, threads_before = server.snapshot(), thread_cpu(server.proc.pid)
        result = pool.run(server.target, "grpc", spec)
        stats, threads_after = server.snapshot().since(before), thread_cpu(server.proc.pid)
        spy.wait(60)
        dump = subprocess.run([py_spy(), "dump", "-p", str(server.proc.pid)], capture_output=True, text=True).stdout
        cpu = cpu_by_thread(threads_before, threads_after, thread_names(dump), result.handled)
    summary = result.summary()
    figures = {"clients": args.clients, "items/s": summary["items_per_s"], "p50 ms": summary["p50_ms"],
               "mean batch": stats.get("mean_batch_size") or 0.0,
               "server CPU us/request": 1e6 * stats["server_cpu_s"] / max(result.handled, 1)}
    text = report((log_dir / "py-spy.txt").read_text(), figures, cpu=cpu)
    (log_dir / "profile.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
