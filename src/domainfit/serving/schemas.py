"""Request bodies of the model server (OpenAPI at ``/openapi.json``). What a prediction
request must hold for a given model is the model's task's to check
(``Task.request_items``); this schema only says which fields exist."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PredictRequest", "FeedbackRequest", "AddVersion", "Promote"]


class PredictRequest(BaseModel):
    """What to predict. Give ``texts`` (classification, regression, pair with ``pairs``, NER),
    ``tokens`` (NER on words you split yourself) or ``query`` (retrieval)."""

    model_config = ConfigDict(extra="forbid")
    texts: list[str] | None = Field(None, description="Texts to predict for.")
    pairs: list[str] | None = Field(None, description="Pair models: one second text per text.")
    tokens: list[list[str]] | None = Field(None, description="NER: pre-split words per sentence.")
    query: str | None = Field(None, description="Retrieval: the search query.")
    k: int = Field(5, ge=1, le=100, description="Retrieval: how many documents.")
    top_k: int = Field(3, ge=1, le=100, description="Classification: how many labels with scores.")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(..., min_length=1, description="The text the model saw.")
    correct_label: str | None = Field(None, description="What the answer should have been.")
    predicted: str | None = Field(None, description="What the model answered.")
    model: str | None = None
    version: int | None = None
    request_id: str | None = Field(None, max_length=64)
    comment: str | None = Field(None, max_length=2000)


class AddVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(..., description="An artifact folder on the server's disk.")
    stage: str = Field("staging", pattern="^(staging|production|archived)$")


class Promote(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(..., ge=1)
