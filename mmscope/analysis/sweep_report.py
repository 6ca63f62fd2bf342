"""CSV, markdown and Pareto plot of a threshold sweep."""
import csv
import math
from typing import Dict, List, Optional, Sequence, Tuple

SWEEP_COLUMNS = ('threshold', 'refine_share', 'backbone_gflops',
                 'vim_gflops', 'gflops_ratio')


def _columns(rows: Sequence[Dict[str, float]]) -> List[str]:
    columns = list(SWEEP_COLUMNS)
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    return columns


def quality_keys(rows: Sequence[Dict[str, float]]) -> List[str]:
    """Return the headline metric names found in any sweep row.

    mIoU for mmseg, box and mask mAP for mmdet, otherwise every metric that
    is not one of the compute columns. A metric may be missing from some
    rows, for example when mmdet's ``CocoMetric`` finds no detection.
    """
    columns = _columns(rows)
    if 'mIoU' in columns:
        return ['mIoU']
    keys = [key for key in columns
            if key.endswith('bbox_mAP') or key.endswith('segm_mAP')]
    if keys:
        return keys
    return [key for key in columns if key not in SWEEP_COLUMNS]


def write_csv(rows: Sequence[Dict[str, float]], path: str) -> None:
    """Write one line per threshold with every column of the rows."""
    columns = _columns(rows)
    with open(path, 'w', newline='') as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_image_csv(images: Sequence, path: str) -> None:
    """Write the confidence and both path costs of every image.

    Args:
        images: ``ImagePaths`` entries of the sweep.
        path: Output CSV file.
    """
    with open(path, 'w', newline='') as file:
        writer = csv.writer(file)
        writer.writerow(['img_path', 'confidence', 'coarse_gflops',
                         'fine_gflops'])
        for image in images:
            writer.writerow([
                image.img_path, image.confidence,
                image.coarse_record['backbone_gflops'],
                image.fine_record['backbone_gflops']
            ])


def _format_cell(column: str, value: Optional[float]) -> str:
    if value is None:
        return '-'
    # A threshold is printed in full (shortest round trip), so that a value
    # copied into model.backbone.threshold gives the row's decisions.
    if column == 'threshold':
        return repr(float(value))
    return f'{value:.4g}'


def format_sweep_table(rows: Sequence[Dict[str, float]]) -> str:
    """Format the compute columns and headline metrics as markdown."""
    columns = list(SWEEP_COLUMNS) + quality_keys(rows)
    lines = ['| ' + ' | '.join(columns) + ' |',
             '|' + '---|' * len(columns)]
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            cells.append(_format_cell(column, value))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def pareto_front(points: Sequence[Tuple[float, float]]) -> List[int]:
    """Return the indices of points no other point beats on both axes.

    A point (cost, quality) is dominated when another has lower or equal
    cost and higher or equal quality, and is strictly better on one.
    """
    front = []
    for index, (cost, quality) in enumerate(points):
        # A NaN metric (no prediction to score) is on no front.
        if math.isnan(cost) or math.isnan(quality):
            continue
        dominated = any(
            other_cost <= cost and other_quality >= quality and
            (other_cost < cost or other_quality > quality)
            for other_cost, other_quality in points)
        if not dominated:
            front.append(index)
    return front


def _threshold_labels(rows: Sequence[Dict[str, float]],
                      key: str) -> Dict[Tuple[float, float], str]:
    """Label each plotted point with its threshold or range of thresholds.

    Thresholds between two image confidences give the same point, so one
    label such as ``0-0.5`` replaces a pile of overlapping ones.
    """
    thresholds: Dict[Tuple[float, float], List[float]] = {}
    for row in rows:
        point = (row['backbone_gflops'], row[key])
        thresholds.setdefault(point, []).append(row['threshold'])
    labels = {}
    for point, values in thresholds.items():
        low, high = float(min(values)), float(max(values))
        labels[point] = repr(low) if low == high else f'{low!r}-{high!r}'
    return labels


def plot_pareto(rows: Sequence[Dict[str, float]], path: str, title: str,
                baseline: Optional[Dict[str, float]] = None,
                baseline_gflops: Optional[float] = None) -> bool:
    """Plot each headline metric against backbone GFLOPs, saved as PNG.

    Args:
        rows: Sweep rows, one per threshold.
        path: Output PNG file.
        title: Figure title.
        baseline: Metrics of the Vim baseline from its own test run, plotted
            as a point at ``baseline_gflops``. Without them a vertical line
            marks the GFLOPs of a Vim backbone of the MambaScope model's
            size (``vim_gflops``).
        baseline_gflops: Backbone GFLOPs per image of the baseline; the
            rows' ``vim_gflops`` when not given.

    Returns:
        False, without writing a file, when no row has a metric value.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    keys = [key for key in quality_keys(rows)
            if any(key in row for row in rows)]
    if not keys:
        return False
    figure, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4.5),
                                squeeze=False)
    vim_gflops = rows[0]['vim_gflops']
    if baseline is not None and baseline_gflops is not None:
        vim_gflops = baseline_gflops
    for axis, key in zip(axes[0], keys):
        ordered = sorted((row for row in rows if key in row),
                         key=lambda row: row['backbone_gflops'])
        costs = [row['backbone_gflops'] for row in ordered]
        values = [row[key] for row in ordered]
        axis.plot(costs, values, 'o-', color='tab:blue', label='MambaScope')
        points = list(zip(costs, values))
        has_baseline = baseline is not None and key in baseline
        if has_baseline:
            points.append((vim_gflops, baseline[key]))
        # The Vim point takes part in the front, so a MambaScope point that
        # Vim beats on both axes is not marked.
        front = [i for i in pareto_front(points) if i < len(costs)]
        axis.plot([costs[i] for i in front], [values[i] for i in front], 'o',
                  markersize=10, markerfacecolor='none', color='tab:red',
                  label='on the Pareto front')
        for point, label in _threshold_labels(ordered, key).items():
            axis.annotate(label, point, textcoords='offset points',
                          xytext=(4, 4), fontsize=7)
        if has_baseline:
            axis.plot([vim_gflops], [baseline[key]], '*', markersize=14,
                      color='tab:green', label='Vim')
        else:
            axis.axvline(vim_gflops, linestyle='--', color='tab:green',
                         label='Vim GFLOPs (metric not measured)')
        axis.set_xlabel('backbone GFLOPs per image')
        axis.set_ylabel(key)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f'{title} (labels: gate threshold)')
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True
