"""Convert an official Vim ImageNet checkpoint into an mmscope checkpoint.

The output contains the backbone weights under ``state_dict`` with the
classifier head and the class token removed and the position embedding
resampled to the grid of ``--img-size``. It loads into ``VisionMamba`` and
``MambaScope`` through ``init_cfg=dict(type='Pretrained', checkpoint=OUT)``.

Example:
    python tools/convert_vim_checkpoint.py vim_s_midclstok_80p5acc.pth \
        checkpoints/vim_s_mmscope_512.pth --img-size 512
"""
import argparse
import os
import os.path as osp

import torch

from mmscope.models.utils import convert_vim_state_dict, unwrap_state_dict
from mmscope.models.utils.checkpoint_io import load_checkpoint_file
from mmscope.models.utils.vim_checkpoint import warn_unless_middle_class_token
from mmscope.utils.cli_checks import check_no_file_above


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert an official Vim checkpoint for mmscope.')
    parser.add_argument('src', help='official Vim checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint path')
    parser.add_argument(
        '--img-size',
        type=int,
        nargs='+',
        default=[224],
        help='image size (one value, or height and width) whose patch grid '
        '(see --patch-size) the position embedding is resampled to; default '
        '224, the grid of the official checkpoints. Each side is divided by '
        'the patch size and rounded down, as the backbone does with '
        'img_size')
    parser.add_argument(
        '--patch-size', type=int, default=16,
        help="patch size in pixels; it must match the checkpoint's patch "
        'embedding (16 for the official checkpoints)')
    return parser.parse_args()


def check_patch_size(source: dict, patch_size: int, src: str) -> None:
    """Exit unless the checkpoint's patch embedding has ``patch_size``."""
    weight = source.get('patch_embed.proj.weight')
    if weight is None or weight.dim() != 4:
        return
    stored = tuple(weight.shape[-2:])
    if stored[0] != stored[1]:
        raise SystemExit(f'{src} embeds {stored[0]}x{stored[1]} patches; '
                         'mmscope supports square patches only.')
    if stored != (patch_size, patch_size):
        raise SystemExit(
            f'{src} embeds {stored[0]}x{stored[1]} patches, but --patch-size '
            f'is {patch_size}; pass --patch-size {stored[0]}.')


def main() -> None:
    args = parse_args()
    if not osp.isfile(args.src):
        raise SystemExit(f'Checkpoint file not found: {args.src}')
    if osp.isdir(args.dst):
        raise SystemExit(f'dst {args.dst} is a folder; give the path of the '
                         'output file, such as checkpoints/vim_s_512.pth.')
    check_no_file_above(args.dst, 'dst')
    if osp.exists(args.dst) and osp.samefile(args.src, args.dst):
        raise SystemExit(f'dst {args.dst} is the source file; write the '
                         'converted checkpoint to another path.')
    if len(args.img_size) not in (1, 2):
        raise SystemExit(f'--img-size takes one or two values, got '
                         f'{args.img_size}.')
    if args.patch_size < 1:
        raise SystemExit(f'--patch-size must be at least 1, got '
                         f'{args.patch_size}.')
    height, width = (args.img_size * 2)[:2]
    if min(height, width) < args.patch_size:
        raise SystemExit(f'--img-size {args.img_size} is smaller than the '
                         f'patch size {args.patch_size}; give at least '
                         f'{args.patch_size} pixels per side, e.g. 512.')
    grid = (height // args.patch_size, width // args.patch_size)

    try:
        content = load_checkpoint_file(args.src)
    except (ValueError, RuntimeError) as error:
        raise SystemExit(str(error)) from error
    source = unwrap_state_dict(content)
    meta = content.get('meta') if isinstance(content, dict) else None
    if isinstance(meta, dict) and 'pos_embed_grid' in meta:
        raise SystemExit(
            f'{args.src} was already converted by this tool (position grid '
            f"{meta['pos_embed_grid']}). It loads through init_cfg as it is; "
            'convert the official checkpoint again for another grid.')
    absent = [key for key in ('pos_embed', 'cls_token') if key not in source]
    if absent:
        names = ' and '.join(repr(key) for key in absent)
        raise SystemExit(
            f'{args.src} is not an official Vim checkpoint: its weights have '
            f'no {names}. A checkpoint written by tools/train.py loads '
            "directly through init_cfg with prefix='backbone.', and other "
            "checkpoints with a 'pos_embed' load through init_cfg as they "
            'are.')
    warn_unless_middle_class_token(content)
    check_patch_size(source, args.patch_size, args.src)
    try:
        state_dict, dropped = convert_vim_state_dict(source,
                                                     {'pos_embed': grid})
    except ValueError as error:
        raise SystemExit(f'{args.src}: {error}') from error

    try:
        os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
        torch.save(
            dict(state_dict=state_dict, meta=dict(pos_embed_grid=list(grid))),
            args.dst)
    except (OSError, RuntimeError) as error:
        # torch.save reports a file it cannot open as a RuntimeError.
        raise SystemExit(f'Cannot write {args.dst}: {error}') from error
    print(f'Wrote {len(state_dict)} tensors to {args.dst} '
          f'(position grid {grid[0]}x{grid[1]}); dropped {dropped}.')


if __name__ == '__main__':
    main()
