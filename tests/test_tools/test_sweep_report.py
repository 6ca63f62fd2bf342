"""CSV, table and Pareto helpers of the threshold sweep."""
import csv

import torch

from mmscope.analysis.sweep_report import (format_sweep_table, pareto_front,
                                           plot_pareto, quality_keys,
                                           write_csv)
from mmscope.analysis.threshold_sweep import (ImagePaths,
                                              thresholds_for_shares)
from mmscope.models.backbones import refine_by_threshold


def _row(threshold, share, gflops, **metrics):
    return dict(threshold=threshold, refine_share=share,
                backbone_gflops=gflops, vim_gflops=10.0,
                gflops_ratio=gflops / 10.0, **metrics)


def test_pareto_front_drops_dominated_points():
    points = [(1.0, 0.5), (2.0, 0.4), (2.0, 0.6), (3.0, 0.6), (4.0, 0.9)]
    assert pareto_front(points) == [0, 2, 4]


def test_pareto_front_skips_nan():
    points = [(1.0, float('nan')), (2.0, 0.5), (3.0, 0.4)]
    assert pareto_front(points) == [1]


def test_pareto_front_keeps_equal_points():
    assert pareto_front([(1.0, 0.5), (1.0, 0.5)]) == [0, 1]


def test_quality_keys_by_task():
    seg = [_row(0, 0, 5.0, mIoU=30.0, aAcc=70.0)]
    det = [_row(0, 0, 5.0, **{'coco/bbox_mAP': 0.3, 'coco/segm_mAP': 0.2,
                              'coco/bbox_mAP_50': 0.5})]
    assert quality_keys(seg) == ['mIoU']
    assert quality_keys(det) == ['coco/bbox_mAP', 'coco/segm_mAP']


def test_csv_and_table_with_missing_metric(tmp_path):
    rows = [_row(0, 0.0, 5.0), _row(1, 1.0, 12.0, **{'coco/bbox_mAP': 0.1})]
    path = tmp_path / 'sweep.csv'
    write_csv(rows, str(path))

    with open(path) as file:
        written = list(csv.DictReader(file))
    assert written[0]['coco/bbox_mAP'] == ''
    assert float(written[1]['coco/bbox_mAP']) == 0.1
    table = format_sweep_table(rows)
    assert table.splitlines()[2].endswith('| - |')


def test_plot_skipped_without_metric(tmp_path):
    path = tmp_path / 'sweep.png'
    assert not plot_pareto([_row(0, 0.0, 5.0)], str(path), 'model')
    assert not path.exists()
    assert plot_pareto([_row(0, 0.0, 5.0, mIoU=20.0),
                        _row(1, 1.0, 12.0, mIoU=25.0)], str(path), 'model',
                       baseline={'mIoU': 24.0})
    assert path.read_bytes()[:4] == b'\x89PNG'


def test_thresholds_for_shares_split_images():
    images = [
        ImagePaths(img_path=None, confidence=value, coarse=[], fine=[],
                   coarse_record={}, fine_record={})
        for value in (0.9, 0.2, 0.6, 0.4)
    ]
    thresholds = thresholds_for_shares(images, 4)

    assert thresholds == [0.0, 0.3, 0.5, 0.8, 1.0]
    refined = [sum(image.confidence < t for image in images)
               for t in thresholds[:-1]]
    assert refined == [0, 1, 2, 3]


def test_printed_thresholds_give_same_shares():
    # float32 confidences close together: the printed threshold must refine
    # the same images as the exact one.
    values = torch.tensor([0.5003448, 0.5003449, 0.7, 0.5011712]).tolist()
    images = [
        ImagePaths(img_path=None, confidence=value, coarse=[], fine=[],
                   coarse_record={}, fine_record={}) for value in values
    ]

    thresholds = thresholds_for_shares(images, 4)

    confidence = torch.tensor(values)
    for k, threshold in enumerate(thresholds[:-1]):
        printed = float(format_sweep_table(
            [_row(threshold, 0.0, 1.0)]).splitlines()[2].split('|')[1])
        refined = refine_by_threshold(confidence, printed)
        assert int(refined.sum()) == k, (threshold, printed)


def test_shares_round_half_up_and_nan_first():
    images = [
        ImagePaths(img_path=None, confidence=value, coarse=[], fine=[],
                   coarse_record={}, fine_record={})
        for value in (0.9, float('nan'), 0.6, 0.4, 0.2)
    ]

    # Half of 5 images is 2.5, which rounds up to 3, as refine_budget does.
    thresholds = thresholds_for_shares(images, 2)

    assert thresholds == [0.0, 0.5, 1.0]
