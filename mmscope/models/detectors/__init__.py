from .scope_mask_rcnn import ScopeMaskRCNN

__all__ = ['ScopeMaskRCNN']
