from .scope_encoder_decoder import ScopeEncoderDecoder, merge_window_records

__all__ = ['ScopeEncoderDecoder', 'merge_window_records']
