"""Config adjustments that let GPU-oriented configs run on CPU-only machines."""
from typing import Any

import torch
from mmengine.config import Config
from mmengine.logging import print_log


def replace_sync_bn(node: Any) -> int:
    """Replace every ``SyncBN`` norm type below ``node`` by ``BN`` in place.

    Returns:
        The number of replacements.
    """
    count = 0
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
            count += 1
        for value in node.values():
            count += replace_sync_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += replace_sync_bn(value)
    return count


def adapt_config_to_device(cfg: Config, launcher: str = 'none') -> Config:
    """Adapt ``cfg`` in place for the devices of this machine.

    Without CUDA, ``SyncBN`` (CUDA only in PyTorch) becomes ``BN`` and
    distributed runs use the gloo backend instead of NCCL. With CUDA the
    config is left as it is.

    Args:
        cfg: A config loaded by the training or test script; the script owns
            it, so it is changed in place.
        launcher: The job launcher, ``'none'`` for a single process.

    Returns:
        The same config object.
    """
    if torch.cuda.is_available():
        return cfg

    replaced = replace_sync_bn(cfg._cfg_dict)
    if replaced:
        print_log(f'CUDA is not available: replaced {replaced} SyncBN '
                  'layer configs by BN.', logger='current')

    if launcher != 'none':
        dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
        if dist_cfg.get('backend', 'nccl') == 'nccl':
            dist_cfg['backend'] = 'gloo'
            print_log('CUDA is not available: distributed backend set to '
                      'gloo.', logger='current')
        # DistributedDataParallel takes no device ids for CPU modules, but
        # MMEngine passes the local rank as one unless the wrapper config
        # sets them.
        wrapper_cfg = cfg.get('model_wrapper_cfg') or dict(
            type='MMDistributedDataParallel', broadcast_buffers=False)
        wrapper_cfg['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper_cfg
    return cfg


def init_cpu_process_group(cfg: Config, launcher: str) -> None:
    """Start the gloo process group of a CPU-only distributed run.

    MMEngine 0.10 selects the CUDA device of the local rank before it starts
    a ``pytorch``-launched process group, which fails without CUDA. Starting
    the group here first makes the runner skip that step. Does nothing with
    CUDA, for a single process, or when a group already exists.

    Args:
        cfg: The adapted config; its ``env_cfg.dist_cfg`` is used.
        launcher: The job launcher.
    """
    if torch.cuda.is_available() or launcher != 'pytorch':
        return
    if torch.distributed.is_initialized():
        return
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
    dist_cfg.setdefault('backend', 'gloo')
    torch.distributed.init_process_group(**dist_cfg)
    print_log(
        f'Started a {dist_cfg["backend"]} process group: rank '
        f'{torch.distributed.get_rank()} of '
        f'{torch.distributed.get_world_size()}.', logger='current')
