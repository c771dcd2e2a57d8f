"""A user's own data works with defaults, and a failed start leaves nothing in the way.

A folder of class folders trains and loads with no settings (the validation split fits the data and is recorded);
`valid/` and `test/` folders beside `train/` are used as those splits; symbolic links load the same images, loops
and dangling links are refused or skipped in one line; a failed start never blocks the corrected command; bad
`--out`, `config.json`, `--size` and `--resume` settings end in one `error:` line with exit code 2; and nothing is
written beside the data."""
import json, tarfile
import pytest
import torch
from allconv_fastai.core import AllconvError
from allconv_fastai.data.sources import load_images, cache_path
from allconv_fastai.data.loaders import cifar_dls
from allconv_fastai.config import RunConfig, save_config, min_size
from allconv_fastai.cli import train_main, eval_main
from conftest import image_folder

TINY = ['--widths', '16,32', '--precision', 'fp32', '--no-tta']


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch):
    "The decode cache in a per-test user cache folder (as `~/.cache` would be), never ALLCONV_CACHE."
    monkeypatch.delenv('ALLCONV_CACHE', raising=False)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path/'user-cache'))
    return tmp_path/'user-cache'/'allconv_fastai'


def errors(capsys) -> list:
    out = capsys.readouterr()
    return [l for l in (out.out + out.err).splitlines() if l.startswith('error:')], out.out + out.err


def one_error(capsys, rc, *needles):
    "Exit code 2, one `error:` line holding every needle and a Fix, no traceback."
    errs, text = errors(capsys)
    assert rc == 2, text[-3000:]
    assert len(errs) == 1 and 'Fix:' in errs[0] and 'Traceback' not in text, text[-3000:]
    for n in needles: assert n in errs[0], errs[0]
    return errs[0]


# 1. own folders with defaults ------------------------------------------------------------------------------------

def test_folder_of_100_pngs_trains_with_defaults_and_nothing_beside_it(tmp_path, user_cache, cli):
    data = tmp_path/'data'/'own'
    image_folder(data, n_per=50, size=16)
    p = cli(train_main, '--data', data, '--epochs', '1', *TINY, '--out', 'run', cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert 'own, 80 train / 20 valid (seed 42, 20% of 100)' in p.stdout
    cfg = json.loads((tmp_path/'run'/'config.json').read_text())
    assert cfg['valid'] == 20                                   # what the data chose, recorded for eval
    m = json.loads((tmp_path/'run'/'metrics.json').read_text())
    assert m['epochs_trained'] == 1 and 0 <= m['valid_accuracy'] <= 1
    dls = cifar_dls(data)                                       # the same defaults from Python
    assert (len(dls.train_ds), len(dls.valid_ds), dls.valid_setting) == (80, 20, 20)
    assert torch.bincount(dls.valid_ds.y).tolist() == [10, 10]  # stratified
    assert dls.from_cache                                       # the CLI's cache, in the user cache folder
    assert sorted(o.name for o in (tmp_path/'data').iterdir()) == ['own']       # nothing beside the data
    assert sorted(o.name for o in data.iterdir()) == ['train']                  # nor inside it
    assert cache_path(data).parent == user_cache and cache_path(data).exists()


def test_valid_and_test_folders_are_the_splits(tmp_path):
    for name in ('valid', 'val'):
        d = tmp_path/name
        ims = image_folder(d, n_per=4, splits=('train', name, 'test'), size=12, labels=True)
        dls = cifar_dls(d, bs=4)
        assert (len(dls.train_ds), len(dls.valid_ds), len(dls.test.dataset)) == (8, 8, 8)
        assert dls.data_name == f'{name}, 8 train / 8 valid (the valid/ folder) / 8 test'
        assert dls.valid_setting == 'folder'
        assert torch.equal(dls.valid_ds.x[0].cpu(), ims[f'{name}/cat/0000.png'])   # the folder's own images
    # the recorded setting rebuilds the same split; a count carves the validation split out of train/ instead
    assert torch.equal(cifar_dls(tmp_path/'valid', bs=4, valid='folder').valid_ds.x, dls.valid_ds.x)
    assert len(cifar_dls(tmp_path/'valid', bs=4, valid=2).train_ds) == 6


def test_bad_data_names_what_was_found(tmp_path):
    image_folder(tmp_path/'t', n_per=1, size=8, labels=True)
    img = tmp_path/'t'/'train'/'cat'/'0000.png'
    with pytest.raises(AllconvError) as e: cifar_dls(img)
    assert 'is a single image file, not a dataset' in str(e.value) and 'Fix: pass the folder' in str(e.value)
    assert 're-download' not in str(e.value)
    (tmp_path/'notes.txt').write_text('hello')
    with pytest.raises(AllconvError, match=r'is a file but not an archive.*Fix: pass a folder of class folders'): cifar_dls(tmp_path/'notes.txt')
    (tmp_path/'docs').mkdir(); (tmp_path/'docs'/'a.txt').write_text('x'); (tmp_path/'docs'/'b.csv').write_text('x')
    with pytest.raises(AllconvError, match=r'it holds no image files \(2 other files \(e.g. a.txt, b.csv\)'): cifar_dls(tmp_path/'docs')
    flat = tmp_path/'flat'; flat.mkdir(); (flat/'x.png').write_bytes(img.read_bytes())
    with pytest.raises(AllconvError, match='is not inside a class folder.*Fix: arrange images'): cifar_dls(flat)


# 2. symbolic links -----------------------------------------------------------------------------------------------

def test_symlinked_train_folder_and_archive_load_the_same_images(tmp_path):
    image_folder(tmp_path/'real', n_per=5, size=8, labels=True)
    (tmp_path/'linked').mkdir(); (tmp_path/'linked'/'train').symlink_to(tmp_path/'real'/'train')
    a, b = load_images(tmp_path/'real'), load_images(tmp_path/'linked')
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and a.vocab == b.vocab and len(b.x) == 10
    with tarfile.open(tmp_path/'own.tar.gz', 'w:gz') as tf: tf.add(tmp_path/'real'/'train', 'train')
    (tmp_path/'link.tar.gz').symlink_to(tmp_path/'own.tar.gz')
    c = load_images(tmp_path/'link.tar.gz')
    assert torch.equal(c.x, a.x) and torch.equal(c.y, a.y)


def test_symlink_loop_is_refused_and_dangling_link_skipped(tmp_path, capsys):
    image_folder(tmp_path/'d', n_per=3, size=8, labels=True)
    (tmp_path/'d'/'train'/'cat'/'gone.png').symlink_to(tmp_path/'nowhere.png')
    s = load_images(tmp_path/'d')
    assert len(s.x) == 6
    out = capsys.readouterr().out
    assert out.count('Skipping') == 1 and 'gone.png' in out and 'does not exist' in out
    (tmp_path/'d'/'train'/'dog'/'loop').symlink_to(tmp_path/'d'/'train')
    with pytest.raises(AllconvError, match=r'is a symbolic link loop.*Fix: remove the link'): load_images(tmp_path/'d')


# 3. a failed start leaves nothing in the way ---------------------------------------------------------------------

def test_failed_start_then_corrected_command_trains(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_error(capsys, train_main(['--data', '/nonexistent', '--out', 'R']), '/nonexistent')
    assert not (tmp_path/'R').exists()
    one_error(capsys, train_main(['--data', 'digits', '--size', '8', '--out', 'R']), f'at least {min_size("all-cnn-c")}x')
    assert not (tmp_path/'R').exists()                          # refused from the net, before any data or folder
    assert train_main(['--data', 'digits', '--epochs', '1', '--size', '16', *TINY, '--out', 'R']) == 0
    assert (tmp_path/'R'/'last.pth').exists()
    capsys.readouterr()
    # --resume with settings that conflict with the finished run's is refused, naming them
    err = one_error(capsys, train_main(['--resume', 'R', '--epochs', '5']), '--epochs 5 conflicts', "run's 1")
    assert 'drop --epochs' in err
    assert train_main(['--resume', 'R', '--epochs', '1']) == 0  # the run's own value is no conflict
    capsys.readouterr()


def test_config_only_folder_is_replaced_and_not_evaluated(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path/'F').mkdir()
    save_config(tmp_path/'F'/'config.json', RunConfig(data='digits', size=16, widths='16,32', epochs=1, precision='fp32'))
    one_error(capsys, eval_main(['F']), 'No trained run at F', '--resume F')
    assert train_main(['--data', 'digits', '--epochs', '1', '--size', '16', *TINY, '--out', 'F']) == 0
    assert 'Replacing F: it holds only the record (config.json) of a start that trained nothing' in capsys.readouterr().out
    assert (tmp_path/'F'/'history.csv').exists()


# 4. one line, exit code 2 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('bad, needle', [({'data': None}, "lacks the setting 'data'"), ({'epochs': 'two'}, '`epochs` holds'),
                                         ({'valid': {'a': 1}}, '`valid` holds'), ({'widths': 'x,y'}, 'widths')])
def test_bad_config_json_is_one_line_for_resume_and_eval(tmp_path, capsys, bad, needle):
    run = tmp_path/'run'; run.mkdir()
    save_config(run/'config.json', RunConfig(data='digits', size=16, widths='16,32', epochs=1, precision='fp32'))
    j = json.loads((run/'config.json').read_text())
    j = {k: v for k, v in {**j, **bad}.items() if v is not None}
    (run/'config.json').write_text(json.dumps(j))
    (run/'last.pth').write_bytes(b'')                           # "trained": the config is what is wrong
    one_error(capsys, train_main(['--resume', str(run)]), needle)
    one_error(capsys, eval_main([str(run)]), needle)


def test_missing_cifar_fix_names_real_options(tmp_path):
    with pytest.raises(AllconvError) as e: cifar_dls('cifar10', path=tmp_path)
    assert 'path=' not in e.value.fix and '--data' in e.value.fix


# 6. DenseNet overrides -------------------------------------------------------------------------------------------

def test_densenet_named_net_takes_overrides():
    from allconv_fastai import densenet_learner, digits_dls
    dls = digits_dls(size=16, bs=8)
    learn = densenet_learner(dls, 'densenet40_k12', growth=4, depth=16)
    assert (learn.model.growth, learn.model.depth) == (4, 16)
    assert learn.model(dls.one_batch()[0]).shape == (8, 10)
