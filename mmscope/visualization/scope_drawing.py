"""Pictures of MambaScope's decisions: refined cells and importance scores.

Records come from the ``scope`` metainfo of a prediction. Their cells are
given in pixels of the image fed to the network (``img_shape``, after the
test pipeline's resize), and the drawing functions map them onto the
original image.
"""
from typing import List, Sequence, Tuple

import cv2
import numpy as np

Box = Tuple[int, int, int, int]

REFINED_COLOR = (0, 220, 0)  # RGB
STOPPED_COLOR = (230, 40, 40)

# Smaller images are enlarged to this shorter side before drawing, so that
# cell outlines and captions stay readable, unless their longer side would
# exceed the second limit.
MIN_PANEL_SIDE = 256
MAX_PANEL_SIDE = 4096


def selected_cell_boxes(record: dict, img_shape: Sequence[int],
                        ori_shape: Sequence[int]) -> List[Box]:
    """Return the selected coarse cells as boxes in original-image pixels.

    Args:
        record: The ``scope`` record of one prediction.
        img_shape: (height, width) of the image fed to the network before
            padding; the cell grid starts at its top-left corner.
        ori_shape: (height, width) of the original image.

    Returns:
        ``(x0, y0, x1, y1)`` per selected cell, inclusive and clipped to the
        image.
    """
    cell = record['cell_size']
    coarse_w = record['coarse_grid'][1]
    scale_y = ori_shape[0] / img_shape[0]
    scale_x = ori_shape[1] / img_shape[1]

    boxes = []
    for index in record['selected_cells']:
        row, col = divmod(index, coarse_w)
        top, left = row * cell, col * cell
        bottom = min(top + cell, img_shape[0])
        right = min(left + cell, img_shape[1])
        if bottom <= top or right <= left:
            continue  # the cell lies in the padding
        boxes.append((int(round(left * scale_x)), int(round(top * scale_y)),
                      int(round(right * scale_x)) - 1,
                      int(round(bottom * scale_y)) - 1))
    return boxes


def _check_one_window(record: dict) -> None:
    """Reject the merged record of a sliding-window prediction.

    Raises:
        ValueError: If ``record`` merges the records of several windows.
    """
    if 'windows' in record:
        raise ValueError(
            f"The record merges {record['num_windows']} sliding windows "
            "(test_cfg mode 'slide'), and no single refinement map covers the "
            'image. Predict with model.test_cfg.mode=whole to draw it, or '
            "draw each of record['windows'] on its own window.")


def describe_record(record: dict) -> str:
    """Return a one-line summary of the decision for one image.

    A sliding-window record is summarised by its windows.
    """
    if 'windows' in record:
        return (f"{record['num_windows']} sliding windows, "
                f"{record['refined_windows']} refined; backbone "
                f"{record['backbone_gflops']:.4g} GFLOPs (Vim "
                f"{record['vim_gflops']:.4g})")
    if record['stopped']:
        decision = 'stopped at the coarse stage'
    else:
        decision = (f"refined {len(record['selected_cells'])} of "
                    f"{record['num_coarse_tokens']} coarse cells")
    return (f"confidence {record['confidence']:.3f}, {decision}; tokens: "
            f"coarse {record['num_coarse_tokens']}, fine "
            f"{record['num_fine_tokens']}; backbone "
            f"{record['backbone_gflops']:.4g} GFLOPs (Vim "
            f"{record['vim_gflops']:.4g})")


def _put_banner(image: np.ndarray, text: str, color) -> None:
    height = max(18, image.shape[0] // 25)
    scale = height / 30
    cv2.rectangle(image, (0, 0), (image.shape[1] - 1, height + 6), (0, 0, 0),
                  thickness=-1)
    cv2.putText(image, text, (4, height), cv2.FONT_HERSHEY_SIMPLEX, scale,
                color, max(1, int(scale * 2)), cv2.LINE_AA)


def draw_refinement_map(image: np.ndarray, record: dict,
                        img_shape: Sequence[int]) -> np.ndarray:
    """Outline the refined cells on the image, or mark it as stopped.

    Args:
        image: RGB uint8 image (H, W, 3) at its original size; not modified.
        record: The ``scope`` record of its prediction.
        img_shape: (height, width) of the network input before padding.

    Returns:
        A new RGB uint8 image of the same size.

    Raises:
        ValueError: If ``record`` merges sliding windows.
    """
    _check_one_window(record)
    canvas = np.ascontiguousarray(image.copy())
    thickness = max(1, min(canvas.shape[:2]) // 200)
    if record['stopped']:
        cv2.rectangle(canvas, (0, 0),
                      (canvas.shape[1] - 1, canvas.shape[0] - 1),
                      STOPPED_COLOR, thickness * 4)
        _put_banner(canvas,
                    f"stopped at coarse stage (conf {record['confidence']:.2f})",
                    STOPPED_COLOR)
        return canvas

    for x0, y0, x1, y1 in selected_cell_boxes(record, img_shape,
                                              canvas.shape[:2]):
        cv2.rectangle(canvas, (x0, y0), (x1, y1), REFINED_COLOR, thickness)
    _put_banner(
        canvas, f"refined {len(record['selected_cells'])}/"
        f"{record['num_coarse_tokens']} cells (conf "
        f"{record['confidence']:.2f})", REFINED_COLOR)
    return canvas


def draw_importance_heatmap(image: np.ndarray, record: dict,
                            img_shape: Sequence[int],
                            alpha: float = 0.5) -> np.ndarray:
    """Blend the coarse-cell importance scores over the image as a heat map.

    Args:
        image: RGB uint8 image (H, W, 3) at its original size; not modified.
        record: The ``scope`` record of its prediction.
        img_shape: (height, width) of the network input before padding.
        alpha: Weight of the heat map in the blend.

    Returns:
        A new RGB uint8 image of the same size.

    Raises:
        ValueError: If ``record`` merges sliding windows.
    """
    _check_one_window(record)
    coarse_h, coarse_w = record['coarse_grid']
    cell = record['cell_size']
    scores = np.asarray(record['importance'], dtype=np.float32).reshape(
        coarse_h, coarse_w)
    span = float(scores.max() - scores.min())
    normalised = (scores - scores.min()) / span if span > 0 else \
        np.zeros_like(scores)

    # One value per input pixel of the padded grid, cropped to the input.
    grid = np.kron(normalised, np.ones((cell, cell), dtype=np.float32))
    grid = grid[:img_shape[0], :img_shape[1]]
    grid = cv2.resize(grid, (image.shape[1], image.shape[0]),
                      interpolation=cv2.INTER_NEAREST)
    colored = cv2.applyColorMap((grid * 255).astype(np.uint8),
                                cv2.COLORMAP_JET)
    colored = cv2.cvtColor(colored, cv2.COLOR_BGR2RGB)
    blend = cv2.addWeighted(image, 1 - alpha, colored, alpha, 0)
    _put_banner(blend, 'importance (red = high)', (255, 255, 255))
    return blend


def draw_scope_panels(image: np.ndarray, record: dict,
                      img_shape: Sequence[int]) -> np.ndarray:
    """Put the refinement map and the importance heat map side by side.

    Args:
        image: RGB uint8 image (H, W, 3) at its original size; not modified.
        record: The ``scope`` record of its prediction.
        img_shape: (height, width) of the network input before padding.

    Returns:
        A new RGB uint8 image of shape (f * H, 2 * f * W, 3). The factor f
        is 1, except for an image whose shorter side is below
        ``MIN_PANEL_SIDE``: it is enlarged first, by a whole factor that
        keeps its longer side within ``MAX_PANEL_SIDE``.
    """
    height, width = image.shape[:2]
    factor = min(-(-MIN_PANEL_SIDE // max(min(height, width), 1)),
                 max(MAX_PANEL_SIDE // max(height, width), 1))
    if factor > 1:
        image = cv2.resize(image, (width * factor, height * factor),
                           interpolation=cv2.INTER_NEAREST)
    return np.concatenate([
        draw_refinement_map(image, record, img_shape),
        draw_importance_heatmap(image, record, img_shape)
    ], axis=1)
