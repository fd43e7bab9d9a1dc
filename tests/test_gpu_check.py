"""tools/analysis/gpu_check.py: sections run in order, each within its time limit and the
budget, its output logged; a failing or stopped section does not stop the others."""
import os.path as osp
import sys
import time

from _helpers import ROOT
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))
import benchmark  # noqa: E402
import gpu_check  # noqa: E402


def check(tmp_path, monkeypatch, sections, budget):
    monkeypatch.setattr(gpu_check, 'sections', lambda args: sections)
    monkeypatch.setattr(gpu_check, 'MIN_SECTION', 1)
    args = gpu_check.argparse.Namespace(out=str(tmp_path), budget=budget, dry_run=False)
    return gpu_check.check(args)


def test_sections_fail_soft_and_time_out_with_their_processes(tmp_path, monkeypatch):
    marker = tmp_path / 'orphan'  # written by a child left running
    start = time.monotonic()
    code = check(tmp_path, monkeypatch, [
        ('fails', 10, ['bash', '-c', 'echo before; exit 3']),
        ('hangs', 1, ['bash', '-c', f'(sleep 3; touch {marker}) & sleep 30']),
        ('passes', 10, ['bash', '-c', 'echo fine'])], budget=60)
    assert code == 1 and time.monotonic() - start < 10
    first, summary = (tmp_path / 'summary.txt').read_text().split('\n\n')
    assert 'before' in first  # the first section's output, then every section's status
    summary = summary.splitlines()
    assert [line.split()[0] for line in summary] == ['fails', 'hangs', 'passes', 'total']
    assert summary[0].endswith('exit 3') and 'timed out after 1 s' in summary[1]
    assert summary[2].endswith(' ok')
    assert (tmp_path / '03_passes.txt').read_text().endswith('fine\n')
    time.sleep(3)
    # the stopped section's children were stopped too; one file per section, the first
    # one's being the summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ['02_hangs.txt', '03_passes.txt',
                                                          'summary.txt']


def test_sections_beyond_the_budget_are_skipped(tmp_path, monkeypatch):
    code = check(tmp_path, monkeypatch, [
        ('first', 10, ['bash', '-c', 'sleep 2']),
        ('second', 10, ['bash', '-c', 'echo never'])], budget=2.5)
    summary = (tmp_path / 'summary.txt').read_text().splitlines()
    assert code == 1 and summary[-2].endswith('skipped: out of time')
    assert not (tmp_path / '02_second.txt').exists()


def test_dry_run_sections_are_the_gpu_sections_on_the_cpu():
    """The same sections and benchmark options, with the device, sizes, batches and step
    counts of the dry run, and no float16."""
    gpu = gpu_check.sections(gpu_check.argparse.Namespace(dry_run=False, device='cuda'))
    dry = gpu_check.sections(gpu_check.argparse.Namespace(dry_run=True, device='cpu'))
    assert len(gpu) == len(dry) == 8  # 7 logs and the summary: what the device brings back
    assert gpu_check.PATHS == list(benchmark.PATHS)
    swap = {'cuda': 'cpu', '512x768': '32x48', '224': '32', '2': '1', '8': '1', '10': '1',
            '20': '1', '3': '1'}
    for (gpu_name, _, gpu_cmd), (dry_name, _, dry_cmd) in zip(gpu, dry):
        assert [swap.get(a, a) for a in gpu_cmd if a not in ('--dry-run', 'fp16')] == \
            [a for a in dry_cmd if a != '--dry-run'], gpu_name
        assert dry_name == gpu_name.replace('512x768', '32x48').replace('224', '32')
