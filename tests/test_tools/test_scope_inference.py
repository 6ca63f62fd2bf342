"""Inference APIs, visualize_scope.py and the main job on real photos."""
import copy
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from tests.reduced import DET, RUNTIME, SEG, cfg_options
from tests.test_tools.test_train_tool import REPO_ROOT, _run

SEG_CONFIG = 'configs/ade20k/upernet_mambascope_t.py'
PHOTOS = [
    str(REPO_ROOT / 'data/ade20k_mini/images/validation/ADE_val_00000001.jpg'),
    str(REPO_ROOT / 'data/ade20k_mini/images/validation/ADE_val_00000002.jpg'),
]


@pytest.fixture(scope='module')
def seg_checkpoint(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('scope_seg')
    options = dict(SEG, **RUNTIME, **{
        'train_cfg.max_iters': 2,
        'train_cfg.val_interval': 2,
        'default_hooks.checkpoint.interval': 2,
    })
    _run([sys.executable, 'tools/train.py', SEG_CONFIG, '--work-dir',
          str(work_dir), '--cfg-options', *cfg_options(options)])
    return str(work_dir / 'iter_2.pth')


def _reduced_config():
    cfg = Config.fromfile(str(REPO_ROOT / SEG_CONFIG))
    cfg.merge_from_dict(copy.deepcopy(SEG))
    cfg.model.backbone.threshold = 1.0
    return cfg


def test_photos_differ_in_size():
    shapes = {cv2.imread(path).shape for path in PHOTOS}
    assert len(shapes) == 2


def test_mmseg_inferencer_one_prediction_per_photo(seg_checkpoint):
    from mmseg.apis import MMSegInferencer

    from mmscope.utils import allow_runner_checkpoints
    allow_runner_checkpoints()
    inferencer = MMSegInferencer(model=_reduced_config(),
                                 weights=seg_checkpoint, device='cpu')

    result = inferencer(PHOTOS, return_datasamples=True)

    assert len(result) == 2
    for sample, path in zip(result, PHOTOS):
        height, width = cv2.imread(path).shape[:2]
        assert sample.pred_sem_seg.data.shape[-2:] == (height, width)
        record = sample.metainfo['scope']
        assert record['stopped'] is False
        assert record['num_fine_tokens'] > 0
        assert record['num_coarse_tokens'] > 0


def test_inference_model_per_photo(seg_checkpoint):
    from mmseg.apis import inference_model, init_model

    from mmscope.utils import allow_runner_checkpoints
    allow_runner_checkpoints()
    cfg = _reduced_config()
    cfg.model.backbone.threshold = 0.0
    model = init_model(cfg, seg_checkpoint, device='cpu')

    # mmseg's inference_model batches a list into one tensor, so photos of
    # different sizes go one call each.
    results = [inference_model(model, path) for path in PHOTOS]

    assert len(results) == 2
    for sample in results:
        record = sample.metainfo['scope']
        assert record['stopped'] is True
        assert record['num_fine_tokens'] == 0


def test_visualize_scope_skips_unreadable(seg_checkpoint, tmp_path):
    broken = tmp_path / 'broken.jpg'
    broken.write_text('not an image')
    out_dir = tmp_path / 'maps'

    result = subprocess.run(
        [sys.executable, 'tools/analysis/visualize_scope.py', SEG_CONFIG,
         seg_checkpoint, PHOTOS[0], str(broken), PHOTOS[1], '--out-dir',
         str(out_dir), '--threshold', '1', '--refine-ratio', '0.5',
         '--cfg-options', *cfg_options(SEG)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)

    assert result.returncode == 1, result.stderr[-3000:]
    assert f'{broken}: not a readable image file' in result.stderr
    pngs = sorted(out_dir.glob('*.png'))
    assert len(pngs) == 2
    for png, photo in zip(pngs, sorted(PHOTOS, key=lambda p: Path(p).stem)):
        height, width = cv2.imread(photo).shape[:2]
        assert cv2.imread(str(png)).shape[:2] == (height, 2 * width)
    lines = [line for line in result.stdout.splitlines() if 'confidence' in line]
    assert len(lines) == 2
    assert all('refined' in line for line in lines)


def test_main_job_reduced(tmp_path):
    output = _run([sys.executable, 'tools/main_job.py', '--task', 'seg',
                   '--iters', '2', '--crop', '64', '--work-dir',
                   str(tmp_path / 'job')], timeout=1200)

    for name in ('mIoU', 'refine share', 'mean backbone GFLOPs per image'):
        match = re.search(re.escape(name) + r': (\d+\.\d+)', output)
        assert match, name
        assert float(match.group(1)) >= 0.0
    pictures = re.findall(r'picture: (\S+)', output)
    assert len(pictures) == 2
    photo = cv2.imread(
        str(REPO_ROOT / 'data/ade20k_mini/images/validation/'
            'ADE_val_00000001.jpg'))
    prediction = cv2.imread(pictures[0])
    refinement = cv2.imread(pictures[1])
    assert prediction.shape[:2] == photo.shape[:2]
    assert refinement.shape[:2] == (photo.shape[0], 2 * photo.shape[1])


def test_visualize_scope_empty_folder(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()

    result = subprocess.run(
        [sys.executable, 'tools/analysis/visualize_scope.py', SEG_CONFIG,
         str(tmp_path / 'unused.pth'), str(empty), '--out-dir',
         str(tmp_path / 'maps')],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)

    assert result.returncode != 0
    assert 'No image files found' in result.stderr


def test_infer_image_array_then_path(seg_checkpoint):
    from mmscope.apis import infer_image, init_scope_model

    cfg = _reduced_config()
    model = init_scope_model(cfg, seg_checkpoint, 'cpu')
    pipeline_before = copy.deepcopy(model.cfg.test_pipeline)

    from_array = infer_image(model, cfg, cv2.imread(PHOTOS[0]))
    from_path = infer_image(model, cfg, PHOTOS[0])

    assert model.cfg.test_pipeline == pipeline_before
    assert (from_array.pred_sem_seg.data == from_path.pred_sem_seg.data).all()


def test_init_cfg_reads_runner_checkpoint_when_allowed(seg_checkpoint,
                                                       monkeypatch):
    import torch

    from mmscope.models import MambaScope
    from mmscope.models.utils.checkpoint_io import load_checkpoint_file

    backbone_cfg = dict(_reduced_config().model.backbone)
    backbone_cfg.pop('type')
    backbone_cfg['init_cfg'] = dict(type='Pretrained',
                                    checkpoint=seg_checkpoint,
                                    prefix='backbone.')

    monkeypatch.delenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', raising=False)
    with pytest.raises(RuntimeError, match='loads under tools/train.py'):
        load_checkpoint_file(seg_checkpoint)

    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    backbone = MambaScope(**backbone_cfg)
    backbone.init_weights()

    saved = torch.load(seg_checkpoint, weights_only=False)['state_dict']
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, saved[f'backbone.{key}']), key

    del backbone_cfg['init_cfg']['prefix']
    with pytest.raises(RuntimeError, match="add prefix='backbone.'"):
        MambaScope(**backbone_cfg).init_weights()


def test_visualize_scope_output_names(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        'visualize_scope', REPO_ROOT / 'tools/analysis/visualize_scope.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    for folder in ('a', 'b'):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / 'x.jpg').write_bytes(b'')
    (tmp_path / 'a' / 'y.png').write_bytes(b'')

    paths = tool.collect_images([str(tmp_path / 'a' / 'x.jpg'),
                                 str(tmp_path / 'a'), str(tmp_path / 'b')])
    names = tool.output_names(paths)

    assert paths == [str(tmp_path / name) for name in ('a/x.jpg', 'a/y.png',
                                                       'b/x.jpg')]
    assert [names[path] for path in paths] == [
        'a__x_scope.png', 'y_scope.png', 'b__x_scope.png']

    # Paths that differ in the extension only keep it in the name.
    same_stem = [str(tmp_path / 'a' / 'x.jpg'), str(tmp_path / 'a' / 'x.png')]
    assert list(tool.output_names(same_stem).values()) == [
        'x.jpg_scope.png', 'x.png_scope.png']


@pytest.mark.parametrize('make_image, error, message', [
    (lambda photo, folder: np.zeros((0, 0, 3), np.uint8), ValueError,
     'height and width must be at least 1'),
    (lambda photo, folder: np.dstack([photo, photo[..., :1]]), ValueError,
     'COLOR_BGRA2BGR'),
    (lambda photo, folder: photo > 0, ValueError, 'dtype bool'),
    (lambda photo, folder: photo.astype(np.uint16) * 256, ValueError,
     'dtype uint16'),
    (lambda photo, folder: photo.astype(np.int64), ValueError,
     'dtype int64'),
    (lambda photo, folder: np.where(photo > 9, photo, np.nan), ValueError,
     'NaN or infinite'),
    (lambda photo, folder: photo * -1e6, ValueError,
     'they range from -2.55e[+]08 to'),
    (lambda photo, folder: photo * 1.5, ValueError, 'to 382.5'),
    (lambda photo, folder: str(folder / 'missing.jpg'), FileNotFoundError,
     'missing.jpg'),
    (lambda photo, folder: folder / 'cut.jpg', ValueError,
     'cut.jpg. The file is damaged or truncated'),
    (lambda photo, folder: folder / 'text.jpg', ValueError,
     'OpenCV cannot read it'),
    (lambda photo, folder: [dict(img=photo)], TypeError, 'got dict'),
    (lambda photo, folder: [photo, PHOTOS[1]], ValueError,
     'mixes paths and'),
    (lambda photo, folder: [], ValueError, 'the list is empty'),
    (lambda photo, folder: folder, IsADirectoryError, 'is a folder'),
    (lambda photo, folder: PHOTOS, ValueError,
     'Call infer_image once per image'),
])
def test_infer_image_rejects_bad_images(tmp_path, make_image, error,
                                        message):
    from mmscope.apis import infer_image, init_scope_model

    (tmp_path / 'text.jpg').write_text('not an image')
    # The JPEG header survives, so only decoding finds the damage.
    (tmp_path / 'cut.jpg').write_bytes(Path(PHOTOS[0]).read_bytes()[:200])
    image = make_image(cv2.imread(PHOTOS[0]), tmp_path)
    cfg = _reduced_config()
    model = init_scope_model(cfg, None, 'cpu')

    with pytest.raises(error, match=message):
        infer_image(model, cfg, image)


def test_infer_image_accepts_gray_and_lists(seg_checkpoint):
    from mmscope.apis import infer_image, init_scope_model

    cfg = _reduced_config()
    model = init_scope_model(cfg, seg_checkpoint, 'cpu')
    photo = cv2.imread(PHOTOS[0])

    gray = infer_image(model, cfg, photo[..., 0])
    both = infer_image(model, cfg, [photo, photo[:, ::-1].copy()])

    assert gray.pred_sem_seg.shape == photo.shape[:2]
    assert len(both) == 2
    assert both[1].pred_sem_seg.shape == photo.shape[:2]


def test_infer_image_detection_needs_colour():
    from mmscope.apis import infer_image, init_scope_model, load_config

    cfg = load_config(
        str(REPO_ROOT / 'configs/coco/mask_rcnn_mambascope_t_fpn_1x_coco.py'),
        copy.deepcopy(DET))
    model = init_scope_model(cfg, None, 'cpu')
    photo = cv2.imread(PHOTOS[0])

    with pytest.raises(ValueError, match=r'Give \(H, W, 3\)'):
        infer_image(model, cfg, photo[..., 0])
    with pytest.raises(ValueError, match='COLOR_GRAY2BGR'):
        infer_image(model, cfg, photo[..., :1])


def test_float_image_on_unit_scale_warns(monkeypatch):
    from mmscope.utils import image_checks

    warnings = []
    monkeypatch.setattr(image_checks, 'print_log',
                        lambda message, **kwargs: warnings.append(message))
    photo = cv2.imread(PHOTOS[0]).astype(np.float32)

    image_checks.check_image(photo)
    image_checks.check_image(photo / 255)

    assert len(warnings) == 1
    assert 'values from 0 to 1' in warnings[0]
    assert 'multiply it by 255' in warnings[0]
