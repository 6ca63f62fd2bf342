"""Draw where MambaScope refined each image, with its importance heat map.

Example:
    python tools/analysis/visualize_scope.py \
        configs/ade20k/upernet_mambascope_s.py work_dirs/x/iter_40.pth \
        data/ade20k_mini/images/validation --out-dir work_dirs/scope_maps
"""
import argparse
import os
import os.path as osp
import sys
from collections import defaultdict
from typing import Dict, List

import cv2
import mmcv
import numpy as np

from mmscope.apis import (checked_device, infer_image, init_scope_model,
                          load_config)
from mmscope.utils import (ConfigOptionsAction, check_checkpoint_input,
                           check_config_file, check_output_dir)
from mmscope.visualization import describe_record, draw_scope_panels

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Visualise MambaScope refinement decisions.')
    parser.add_argument('config', help='mmseg or mmdet config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        'images', nargs='+', help='image files and/or folders of images')
    parser.add_argument(
        '--out-dir', required=True, help='folder for the PNG files')
    parser.add_argument(
        '--threshold', type=float, help='gate threshold eta (default: config)')
    parser.add_argument(
        '--refine-ratio',
        type=float,
        help='share of coarse cells refined, in (0, 1] (default: config)')
    parser.add_argument(
        '--device', help="'cpu' or 'cuda' (default: cuda when available)")
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=ConfigOptionsAction,
        default={},
        help='override config entries, as in tools/test.py')
    return parser.parse_args()


def collect_images(inputs: List[str]) -> List[str]:
    """Expand folders into their image files, sorted by name.

    An image given twice, for example as a file and through its folder, is
    kept once, at its first place.
    """
    paths, seen = [], set()
    for item in inputs:
        if osp.isdir(item):
            found = [
                osp.join(item, name) for name in sorted(os.listdir(item))
                if name.lower().endswith(IMAGE_SUFFIXES)
            ]
        else:
            found = [item]
        for path in found:
            key = osp.realpath(path)
            if key not in seen:
                seen.add(key)
                paths.append(path)
    return paths


def output_names(paths: List[str]) -> Dict[str, str]:
    """Return a distinct PNG file name for each image path.

    An image is named after its file name. Images that share a file name
    are named after their paths below the folder they have in common, such
    as ``a__x_scope.png`` and ``b__x_scope.png`` for ``a/x.jpg`` and
    ``b/x.jpg``. Those names keep the extension where the paths differ in it
    only, as ``x.jpg_scope.png`` and ``x.png_scope.png`` for ``a/x.jpg`` and
    ``a/x.png``.
    """
    by_stem = defaultdict(list)
    for path in paths:
        by_stem[osp.splitext(osp.basename(path))[0]].append(path)

    names = {}
    for stem, group in by_stem.items():
        if len(group) == 1:
            names[group[0]] = f'{stem}_scope.png'
            continue
        absolute = [osp.abspath(path) for path in group]
        common = osp.commonpath(absolute)
        relatives = [osp.relpath(full, common) for full in absolute]
        stems = [osp.splitext(relative)[0] for relative in relatives]
        if len(set(stems)) == len(stems):
            relatives = stems
        for path, relative in zip(group, relatives):
            names[path] = relative.replace(os.sep, '__') + '_scope.png'
    return names


def read_rgb(path: str) -> np.ndarray:
    """Read an image as RGB, raising ValueError naming the file on failure."""
    if not osp.isfile(path):
        raise ValueError(f'{path}: file not found')
    with open(path, 'rb') as file:
        content = np.frombuffer(file.read(), dtype=np.uint8)
    image = cv2.imdecode(content, cv2.IMREAD_COLOR) if content.size else None
    if image is None:
        raise ValueError(f'{path}: not a readable image file')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def main() -> int:
    args = parse_args()
    overrides = dict(args.cfg_options)
    if args.threshold is not None:
        overrides['model.backbone.threshold'] = args.threshold
    if args.refine_ratio is not None:
        overrides['model.backbone.refine_ratio'] = args.refine_ratio
    check_config_file(args.config, 'config')
    check_output_dir(args.out_dir, '--out-dir')
    paths = collect_images(args.images)
    if not paths:
        raise SystemExit(f'No image files found in {args.images}; give image '
                         f'files or folders with {", ".join(IMAGE_SUFFIXES)} '
                         'files.')
    check_checkpoint_input(args.checkpoint, 'checkpoint')
    try:
        device = checked_device(args.device)
    except ValueError as error:
        raise SystemExit(f'--device: {error}') from error
    cfg = load_config(args.config, overrides)
    test_mode = (cfg.model.get('test_cfg') or {}).get('mode', 'whole')
    if test_mode == 'slide':
        raise SystemExit(
            f"{args.config} predicts in sliding windows (test_cfg mode "
            "'slide'), so no single refinement map covers an image; add "
            '--cfg-options model.test_cfg.mode=whole')
    try:
        model = init_scope_model(cfg, args.checkpoint, device)
    except ValueError as error:
        raise SystemExit(str(error)) from error
    os.makedirs(args.out_dir, exist_ok=True)
    names = output_names(paths)

    failures = 0
    for path in paths:
        try:
            image = read_rgb(path)
        except ValueError as error:
            print(f'error: {error}; skipped', file=sys.stderr)
            failures += 1
            continue

        sample = infer_image(model, cfg, image[..., ::-1].copy())
        record = sample.metainfo.get('scope')
        if record is None:
            raise SystemExit(
                f'The model of {args.config} records no scope decisions; '
                'use a MambaScope config (ScopeEncoderDecoder or '
                'ScopeMaskRCNN).')
        img_shape = sample.metainfo['img_shape'][:2]
        panels = draw_scope_panels(image, record, img_shape)
        out_path = osp.join(args.out_dir, names[path])
        mmcv.imwrite(panels[..., ::-1], out_path)
        print(f'{path}: {describe_record(record)} -> {out_path}')

    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
