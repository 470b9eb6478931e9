"""Request and error bodies of the model server (OpenAPI at ``/openapi.json``). What a
prediction request must hold for a given model is the model's task's to check
(``Task.request_items``); these schemas say which fields exist and bound every value.

Every body derives from :class:`Body`: unknown fields are refused, and so is any string
that cannot be encoded as UTF-8 (a lone surrogate such as JSON ``"\\ud800"``), wherever it
sits in the body, with a 422 naming the field; apps' bodies (chat, documents, items) derive
from it too, so that one bad string fails one request and never reaches a model batch.
"""

from __future__ import annotations

from typing import Literal

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = ["Body", "PredictRequest", "FeedbackRequest", "AddVersion", "Promote", "ErrorBody", "ERROR_RESPONSES",
           "MAX_INT", "NAME_PATTERN", "NAME_MAX", "first_unencodable", "Text"]

MAX_INT = 2 ** 31 - 1
"""The largest integer a body may hold where it counts something (versions, turns): a
database integer column holds it on every engine."""

NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9_-]|\.[A-Za-z0-9_-])*\.?$"
"""A model name in a URL: letters, digits, ``_ . -``, starting with a letter or digit, never
``..`` (with ``NAME_MAX`` characters at most; see ``stores.check_name``)."""
NAME_MAX = 64


Text = Annotated[str, StringConstraints(pattern=r"\S")]
"""A text that is not blank (at least one character that is not white space)."""


def first_unencodable(value: Any, where: str = "body") -> str | None:
    """Where ``value`` (nested lists and dicts included) holds a string that UTF-8 cannot
    encode, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = first_unencodable(key, f"{where} key") or first_unencodable(item, f"{where}.{key}")
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for n, item in enumerate(value):
            found = first_unencodable(item, f"{where}[{n}]")
            if found:
                return found
    return None


class Body(BaseModel):
    """The base of every JSON body: no unknown fields, only strings UTF-8 can encode."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _encodable(cls, data: Any) -> Any:
        # Before the fields are read, so that this message, naming the place, is the one sent.
        if isinstance(data, dict):
            for name, value in data.items():
                where = first_unencodable(name, "field name") or first_unencodable(value, str(name))
                if where:
                    raise ValueError(f"{where} holds characters that cannot be encoded as UTF-8 (a lone "
                                     "surrogate?)")
        return data


class PredictRequest(Body):
    """What to predict. Give ``texts`` (classification, regression, pair with ``pairs``, NER),
    ``tokens`` (NER on words you split yourself) or ``query`` (retrieval)."""

    texts: list[Text] | None = Field(None, description="Texts to predict for (none blank).")
    pairs: list[Text] | None = Field(None, description="Pair models: one second text per text.")
    tokens: list[list[str]] | None = Field(None, description="NER: pre-split words per sentence.")
    query: Text | None = Field(None, description="Retrieval: the search query.")
    k: int = Field(5, ge=1, le=100, description="Retrieval: how many documents.")
    top_k: int = Field(3, ge=1, le=100, description="Classification: how many labels with scores.")
    explain: bool = Field(False, description="Add each prediction's explanation: a score per word of the input "
                          "(docs/explanations.md).")
    target: str | None = Field(None, max_length=200, description="With explain: the label to explain (default: the "
                               "predicted one; an entity type for NER).")
    method: Literal["auto", "occlusion", "deletion", "integrated-gradients", "gradient-x-input"] = Field(
        "auto", description="With explain: the method (auto: deletion, the most faithful measured; occlusion "
                            "for texts of more than 64 words and NER).")


class FeedbackRequest(Body):
    """A correction of one prediction (``text`` is what the model saw)."""

    text: str = Field(..., pattern=r"\S", description="The text the model saw (not blank).")
    correct_label: str | None = Field(None, max_length=200, description="What the answer should have been.")
    predicted: str | None = Field(None, max_length=200, description="What the model answered.")
    model: str | None = Field(None, max_length=64)
    version: int | None = Field(None, ge=1, le=MAX_INT)
    request_id: str | None = Field(None, max_length=64)
    comment: str | None = Field(None, max_length=2000)


class AddVersion(Body):
    path: str = Field(..., max_length=4096, description="An artifact folder on the server's disk.")
    stage: str = Field("staging", pattern="^(staging|production|archived)$")


class Promote(Body):
    version: int = Field(..., ge=1, le=MAX_INT)
    reason: str | None = Field(None, max_length=1000, description="Why, for the registry's history.")


class ErrorDetail(BaseModel):
    code: str = Field(..., description="A stable machine-readable name, e.g. unknown_model.")
    message: str = Field(..., description="What went wrong, for a person.")


class ErrorBody(BaseModel):
    """Every error answer."""

    error: ErrorDetail
    request_id: str


def _error(description: str) -> dict:
    return {"model": ErrorBody, "description": description}


ERROR_RESPONSES: dict[int | str, dict] = {
    401: _error("No API key was sent (an endpoint that needs one)."),
    403: _error("The API key is wrong, the endpoint is disabled, or a cross-site request was refused."),
    404: _error("No such model, session or path."),
    409: _error("The model cannot do this, or the registry refused the change (nothing changed)."),
    413: _error("The body, a text or the number of texts is over the server's limits."),
    415: _error("The body is not application/json."),
    422: _error("A field is missing, of the wrong type, out of bounds, or not encodable as UTF-8."),
    503: _error("The server is loading, or its queue is full (see Retry-After)."),
}
"""The error answers every endpoint may give (declared in the OpenAPI schema)."""
