"""Train, evaluate and run inference with MambaScope on the shipped data.

The run uses the full-size small configs. It overrides only what a
laptop-sized run needs: data root, iterations or epochs, crop or image size,
batch size and the pretrained weights. Training runs without validation,
because ``tools/test.py`` evaluates the final checkpoint on the same images
afterwards. The backbone starts from scratch because the official Vim
weights are not shipped.

Example:
    python tools/main_job.py --task seg --work-dir work_dirs/main_job
"""
import argparse
import os
import os.path as osp
import re
import subprocess
import sys
import time
from typing import Dict, List

import cv2

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

TASKS = {
    'seg': dict(
        config='configs/ade20k/upernet_mambascope_s.py',
        data_root='data/ade20k_mini',
        photo='data/ade20k_mini/images/validation/ADE_val_00000001.jpg',
        metric='mIoU',
        length=40),
    'det': dict(
        config='configs/coco/mask_rcnn_mambascope_s_fpn_1x_coco.py',
        data_root='data/coco_mini/',
        photo='data/coco_mini/val2017/000000039769.jpg',
        metric='coco/bbox_mAP',
        length=3),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', choices=sorted(TASKS), default='seg',
                        help='seg: UperNet on ADE20K; det: Mask R-CNN on COCO')
    parser.add_argument('--work-dir', help='output folder (default: '
                        'work_dirs/main_job_TASK)')
    parser.add_argument('--iters', type=int,
                        help='training iterations (seg, default 40) or epochs '
                        '(det, default 3; an epoch of the 7 shipped images '
                        'is 4 iterations at batch 2)')
    parser.add_argument('--crop', type=int, default=256,
                        help='training crop side (seg) or image short side '
                        '(det) in pixels')
    parser.add_argument('--batch-size', type=int, default=2,
                        help='training images per iteration')
    return parser.parse_args()


# Overrides that switch off the validation during training.
NO_VALIDATION = ['val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']


def training_overrides(task: str, args: argparse.Namespace) -> List[str]:
    """Return the --cfg-options of the laptop-sized run.

    They serve the training, the test and the inference, so they set the
    training and test data; validation is switched off separately with
    :data:`NO_VALIDATION`.
    """
    root = TASKS[task]['data_root']
    common = [
        'model.backbone.init_cfg=None',
        f'train_dataloader.batch_size={args.batch_size}',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
    ] + [f'{split}_dataloader.dataset.data_root={root}'
         for split in ('train', 'test')]
    if task == 'seg':
        crop = f'({args.crop},{args.crop})'
        return common + [
            f'model.data_preprocessor.size={crop}',
            f'train_dataloader.dataset.pipeline.3.crop_size={crop}',
            f'train_cfg.max_iters={args.iters}',
            f'default_hooks.checkpoint.interval={args.iters}',
            'default_hooks.logger.interval=5',
        ]

    scale = f'({args.crop * 5 // 3},{args.crop})'
    ann = f'{root}annotations/instances_val2017.json'
    return common + [
        f'train_dataloader.dataset.pipeline.2.scale={scale}',
        f'test_dataloader.dataset.pipeline.1.scale={scale}',
        f'test_evaluator.0.ann_file={ann}',
        f'train_cfg.max_epochs={args.iters}',
        'default_hooks.logger.interval=1',
    ]


def run_streamed(command: List[str]) -> str:
    """Run a command, echo its output as it comes and return all of it."""
    print('$ ' + ' '.join(command), flush=True)
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        sys.stdout.write(line)
        lines.append(line)
    if process.wait() != 0:
        raise SystemExit(f'Command failed with exit code {process.returncode}'
                         f': {" ".join(command)}')
    return ''.join(lines)


def read_metrics(output: str, metric: str) -> Dict[str, float]:
    """Read the last evaluation line's metric, refine share and GFLOPs."""
    names = (metric, 'scope/refine_share', 'scope/backbone_gflops',
             'scope/vim_gflops')
    values = {}
    for name in names:
        found = re.findall(re.escape(name) + r': (-?\d+\.\d+)', output)
        empty = 'results of the whole dataset is empty' in output
        if not found and name == metric and empty:
            # mmdet's CocoMetric reports nothing when no box passes the
            # score threshold, as with an untrained detector: AP is 0.
            found = ['0.0']
        if not found:
            raise SystemExit(f'The evaluation printed no {name}.')
        values[name] = float(found[-1])
    return values


def latest_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as file:
        return file.read().strip()


def run_inference(task: str, config_args: List[str], checkpoint: str,
                  out_dir: str) -> List[str]:
    """Run the standard inference APIs on a shipped photo and save PNGs."""
    from mmscope.apis import infer_image, init_scope_model, load_config
    from mmscope.utils import ConfigOptionsAction, allow_runner_checkpoints
    from mmscope.visualization import describe_record, draw_scope_panels

    allow_runner_checkpoints()

    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+',
                        action=ConfigOptionsAction)
    overrides = parser.parse_args(['--cfg-options', *config_args]).cfg_options
    cfg = load_config(TASKS[task]['config'], overrides)
    photo = osp.join(REPO_ROOT, TASKS[task]['photo'])
    os.makedirs(out_dir, exist_ok=True)
    stem = osp.splitext(osp.basename(photo))[0]

    if task == 'seg':
        from mmseg.apis import MMSegInferencer
        inferencer = MMSegInferencer(model=cfg, weights=checkpoint,
                                     device='cpu')
        result = inferencer(photo, return_vis=True)
    else:
        from mmdet.apis import DetInferencer
        inferencer = DetInferencer(model=cfg, weights=checkpoint,
                                   device='cpu')
        result = inferencer(photo, return_vis=True, no_save_vis=True,
                            pred_score_thr=0.3)
    overlay = result['visualization']
    # The inferencers return a list for several inputs and one array for one.
    if isinstance(overlay, list):
        overlay = overlay[0]
    overlay_path = osp.join(out_dir, f'{stem}_prediction.png')
    cv2.imwrite(overlay_path, overlay[..., ::-1])

    model = init_scope_model(cfg, checkpoint, device='cpu')
    sample = infer_image(model, cfg, photo)
    record = sample.metainfo['scope']
    image = cv2.cvtColor(cv2.imread(photo), cv2.COLOR_BGR2RGB)
    img_shape = sample.metainfo['img_shape'][:2]
    panels = draw_scope_panels(image, record, img_shape)
    scope_path = osp.join(out_dir, f'{stem}_refinement.png')
    cv2.imwrite(scope_path, panels[..., ::-1])
    print(f'{photo}: {describe_record(record)}')
    return [overlay_path, scope_path]


def main() -> None:
    args = parse_args()
    task = TASKS[args.task]
    if args.iters is None:
        args.iters = task['length']
    if args.iters < 1 or args.crop < 32 or args.batch_size < 1:
        raise SystemExit('--iters and --batch-size must be at least 1 and '
                         f'--crop at least 32, got {args.iters}, '
                         f'{args.batch_size} and {args.crop}.')
    work_dir = osp.abspath(args.work_dir or f'work_dirs/main_job_{args.task}')
    start = time.time()
    overrides = training_overrides(args.task, args)

    run_streamed([sys.executable, 'tools/train.py', task['config'],
                  '--work-dir', work_dir, '--cfg-options', *overrides,
                  *NO_VALIDATION])
    checkpoint = latest_checkpoint(work_dir)

    output = run_streamed([
        sys.executable, 'tools/test.py', task['config'], checkpoint,
        '--work-dir', osp.join(work_dir, 'test'), '--cfg-options', *overrides
    ])
    metrics = read_metrics(output, task['metric'])
    pngs = run_inference(args.task, overrides, checkpoint,
                         osp.join(work_dir, 'inference'))

    minutes = (time.time() - start) / 60
    print('\n=== MambaScope main job ===')
    print(f"{task['metric']}: {metrics[task['metric']]:.4f}  "
          f"(backbone trained from scratch for {args.iters} "
          f"{'iterations' if args.task == 'seg' else 'epochs'})")
    print(f"refine share: {metrics['scope/refine_share']:.4f}")
    print(f"mean backbone GFLOPs per image: "
          f"{metrics['scope/backbone_gflops']:.2f} (Vim baseline "
          f"{metrics['scope/vim_gflops']:.2f})")
    print(f'wall time: {minutes:.1f} min')
    print(f'checkpoint: {checkpoint}')
    for path in pngs:
        print(f'picture: {path}')
    print(f'logs and metrics: {work_dir}')


if __name__ == '__main__':
    main()
