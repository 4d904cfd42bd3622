"""The benchmarks' steal meter reads what the hypervisor took from /proc/stat's CPU line."""

from pathlib import Path

from bench.support import StealMeter, steal_text


def _stat(path: Path, user: int, idle: int, steal: int) -> None:
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    path.write_text(f"cpu  {user} 0 100 {idle} 0 0 0 {steal} 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")


def test_steal_is_the_share_of_all_cpu_time_between_start_and_stop(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    _stat(stat, user=1000, idle=5000, steal=200)
    meter = StealMeter(stat).start()
    _stat(stat, user=1600, idle=5200, steal=400)  # 600 + 200 + 200 jiffies, 200 of them stolen
    assert meter.stop() == 0.2
    assert steal_text(0.2) == "20 %"


def test_without_proc_stat_there_is_no_figure_rather_than_a_wrong_one(tmp_path: Path) -> None:
    meter = StealMeter(tmp_path / "missing").start()
    assert meter.stop() is None
    assert steal_text(None) == "-"


def test_this_machine_reports_a_share() -> None:
    share = StealMeter().start().stop()
    assert share is not None and 0.0 <= share <= 1.0
