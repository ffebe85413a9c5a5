"""The analysts of the ensemble, each behind the `Analyst` interface."""

from aipx_cognitive.domain.analysts.base import Analyst
from aipx_cognitive.domain.analysts.llm import ChatClient, LlmAnalyst
from aipx_cognitive.domain.analysts.risk_reward import RiskRewardAnalyst
from aipx_cognitive.domain.analysts.technical import TechnicalConfluenceAnalyst

__all__ = ["Analyst", "ChatClient", "LlmAnalyst", "RiskRewardAnalyst", "TechnicalConfluenceAnalyst"]
