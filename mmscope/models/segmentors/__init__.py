from .scope_encoder_decoder import ScopeEncoderDecoder

__all__ = ['ScopeEncoderDecoder']
