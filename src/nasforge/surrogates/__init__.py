"""Surrogate accuracy predictors for multi-trial search (PNAS' MLP / LSTM ensembles) and a synthetic oracle."""
from .ensemble import KINDS, Ensemble
from .models import LSTMPredictor, MLPMembers
from .tokenizers import PNASTokenizer, PositionChoiceTokenizer, TokenBatch, Tokenizer, tokenizer_for

__all__ = [
    "KINDS", "Ensemble", "LSTMPredictor", "MLPMembers", "PNASTokenizer", "PositionChoiceTokenizer", "TokenBatch",
    "Tokenizer", "tokenizer_for",
]
