import pytest
import torch

from mmscope.models import ScopeGateHead


def test_multilabel_min_confidence():
    head = ScopeGateHead(4, 3)
    logits = torch.tensor([[4.0, -4.0, 0.0]])

    confidence = head.confidence(logits)

    p = torch.sigmoid(logits)
    expected = torch.maximum(p, 1 - p).min()
    torch.testing.assert_close(confidence, expected.reshape(1))
    assert confidence.item() == pytest.approx(0.5)


def test_multilabel_mean_confidence():
    head = ScopeGateHead(4, 3, confidence='mean')
    logits = torch.tensor([[4.0, -4.0, 0.0]])

    p = torch.sigmoid(logits)
    expected = torch.maximum(p, 1 - p).mean()
    torch.testing.assert_close(head.confidence(logits), expected.reshape(1))


def test_softmax_confidence_is_max_probability():
    head = ScopeGateHead(4, 3, mode='softmax')
    logits = torch.tensor([[1.0, 2.0, 0.5]])

    expected = logits.softmax(-1).max()
    torch.testing.assert_close(head.confidence(logits), expected.reshape(1))


def test_multilabel_targets_are_presence():
    head = ScopeGateHead(4, 5)
    targets = head.targets_from_labels(
        [torch.tensor([0, 3]), torch.tensor([], dtype=torch.long)],
        [torch.tensor([10, 2]), torch.tensor([], dtype=torch.long)])

    assert targets.tolist() == [[1, 0, 0, 1, 0], [0, 0, 0, 0, 0]]


def test_softmax_targets_are_dominant_class():
    head = ScopeGateHead(4, 5, mode='softmax')
    targets = head.targets_from_labels(
        [torch.tensor([0, 3]), torch.tensor([], dtype=torch.long)],
        [torch.tensor([10, 20]), torch.tensor([], dtype=torch.long)])

    assert targets.tolist() == [3, -100]


def test_multilabel_loss_is_bce():
    head = ScopeGateHead(4, 3, loss_weight=2.0)
    logits = torch.randn(2, 3)
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])

    expected = 2.0 * torch.nn.functional.binary_cross_entropy_with_logits(
        logits, targets)
    torch.testing.assert_close(head.loss(logits, targets), expected)


def test_label_out_of_range_rejected():
    head = ScopeGateHead(4, 3)
    with pytest.raises(ValueError, match='num_classes'):
        head.targets_from_labels([torch.tensor([5])], [torch.tensor([1])])


def test_invalid_mode():
    with pytest.raises(ValueError, match="'sigmoid'"):
        ScopeGateHead(4, 3, mode='sigmoid')


def test_invalid_confidence():
    with pytest.raises(ValueError, match="'max'"):
        ScopeGateHead(4, 3, confidence='max')


def test_forward_shape():
    head = ScopeGateHead(8, 6)
    assert head(torch.randn(2, 10, 8)).shape == (2, 6)


@pytest.mark.parametrize('weight', [-1, -0.5, float('nan'), float('inf'),
                                    True, '1'])
def test_invalid_loss_weight_rejected(weight):
    with pytest.raises(ValueError, match='gate_head.loss_weight must be a '
                       'finite number of at least 0'):
        ScopeGateHead(8, 3, loss_weight=weight)


def test_zero_loss_weight_switches_loss_off():
    head = ScopeGateHead(8, 3, loss_weight=0)
    logits = head(torch.randn(2, 5, 8))
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])

    assert head.loss(logits, targets).item() == 0.0
