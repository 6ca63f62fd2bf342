"""Training schedule of MambaScope's refine ratio."""
from numbers import Real
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmscope.models.utils.share_count import ceil_share
from mmscope.registry import register_hook


@register_hook
class ScopeSelectionHook(Hook):
    """Refine every coarse cell first, then switch to the configured ratio.

    Training starts with a refine ratio of 1 (every coarse cell split into
    fine tokens). From iteration ``ceil(switch_at * max_iters)`` on, the
    backbone uses its configured ``refine_ratio``. The phase is derived from
    the runner's iteration counter before every iteration, so a run resumed
    from a checkpoint continues in the right phase.

    Args:
        switch_at: Share of the training iterations after which the
            configured ratio is used, in [0, 1]; the default keeps it for
            the last third.
    """

    def __init__(self, switch_at: float = 2 / 3) -> None:
        if isinstance(switch_at, bool) or not isinstance(switch_at, Real):
            raise TypeError(f'switch_at must be a number in [0, 1], got '
                            f'{switch_at!r}.')
        if not 0 <= switch_at <= 1:
            raise ValueError(f'switch_at must be in [0, 1], got {switch_at}.')
        self.switch_at = switch_at
        self._phase: Optional[str] = None

    @staticmethod
    def _backbone(runner):
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        backbone = getattr(model, 'backbone', None)
        if backbone is None or not hasattr(backbone, 'train_refine_ratio'):
            raise TypeError(
                'ScopeSelectionHook needs a model with a MambaScope backbone, '
                f'got {type(model).__name__} with backbone '
                f'{type(backbone).__name__}; remove the hook from '
                'custom_hooks for other backbones.')
        return backbone

    def switch_iter(self, max_iters: int) -> int:
        """Return the first iteration (0-based) of the configured ratio."""
        return ceil_share(self.switch_at, max_iters)

    def _apply(self, runner) -> None:
        backbone = self._backbone(runner)
        switch = self.switch_iter(runner.max_iters)
        phase = 'all' if runner.iter < switch else 'configured'
        backbone.train_refine_ratio = 1.0 if phase == 'all' else None
        if phase != self._phase:
            ratio = 1.0 if phase == 'all' else backbone.refine_ratio
            if switch < runner.max_iters:
                schedule = (f'switch at iteration {switch + 1} of '
                            f'{runner.max_iters}')
            else:
                schedule = (f'no switch within {runner.max_iters} '
                            'iterations: lower switch_at to reach the '
                            'configured ratio')
            runner.logger.info(
                f'ScopeSelectionHook: refine ratio {ratio} from iteration '
                f'{runner.iter + 1} ({schedule}).')
            self._phase = phase

    def before_train(self, runner) -> None:
        self._apply(runner)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        self._apply(runner)
