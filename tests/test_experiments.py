"The Table 3 grid from the shell: killed after its first run, run again, it skips what is done and finishes the rest."
import json
import pandas as pd
from allconv_fastai import table3_frame, table3_markdown, paper_table3
from allconv_fastai.cli import table3_main
from conftest import start, wait_for

GRID = ['--data', 'digits', '--archs', 'all-cnn-c,model-c', '--lrs', '0.1,0.02', '--epochs', '1', '--widths', '16,32',
        '--size', '16', '--bn', '--no-dropout', '--precision', 'fp32', '--out', 'grid']

def test_grid_resumes_after_a_kill(tmp_path, cli):
    "SIGKILL (a real process) once the first run is filed; the same command again (in this process) finishes the grid."
    res = tmp_path/'grid'/'results.json'
    proc = start('allconv-table3', *GRID, cwd=tmp_path)
    try: wait_for(res.exists, proc, 'first run filed')
    finally: proc.kill(); proc.communicate()
    first = json.loads(res.read_text())
    assert 1 <= len(first) < 4, first.keys()
    name = next(iter(first))
    assert name == 'all-cnn-c-lr0.1'
    stamp = (tmp_path/'grid'/name/'metrics.json').stat().st_mtime_ns

    p = cli(table3_main, *GRID, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"{name}: done before, skipped." in p.stdout
    assert (tmp_path/'grid'/name/'metrics.json').stat().st_mtime_ns == stamp        # not trained again
    assert len(pd.read_csv(tmp_path/'grid'/name/'history.csv')) == 1                # one epoch, trained once
    recs = json.loads(res.read_text())
    assert sorted(recs) == ['all-cnn-c-lr0.02', 'all-cnn-c-lr0.1', 'model-c-lr0.02', 'model-c-lr0.1']
    assert recs[name] == first[name]
    t = pd.read_csv(tmp_path/'grid'/'table3.csv')
    assert list(t.net) == ['all-cnn-c', 'model-c'] and list(t.paper_test_error) == [9.08, 9.74]
    assert set(t.selected_lr) <= {0.1, 0.02}
    md = (tmp_path/'grid'/'table3.md').read_text()
    assert '| all-cnn-c |' in md and 'no test split' in md
    assert (tmp_path/'grid'/'table3.png').stat().st_size > 1000

def test_table3_selects_on_validation_and_skips_diverged():
    df = pd.DataFrame(dict(arch=['model-a']*3, lr=[0.25, 0.1, 0.05], valid_accuracy=[0.95, 0.80, 0.85],
                           test_accuracy=[0.5, 0.9, 0.88], diverged=[True, False, False]))
    t = table3_frame(df)
    assert t.selected_lr[0] == 0.05                         # best valid among the runs that did not diverge
    assert t.test_error[0] == 12.0 and t.paper_test_error[0] == paper_table3['model-a']
    assert t.diverged_lrs[0] == '0.25'
    assert '| model-a | 0.05 | 15.00 | 12.00 | 12.47 | 0.25 |' in table3_markdown(t)
