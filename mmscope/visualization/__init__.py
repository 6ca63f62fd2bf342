from .scope_drawing import (describe_record, draw_importance_heatmap,
                            draw_refinement_map, draw_scope_panels,
                            selected_cell_boxes)

__all__ = [
    'describe_record', 'draw_importance_heatmap', 'draw_refinement_map',
    'draw_scope_panels', 'selected_cell_boxes'
]
