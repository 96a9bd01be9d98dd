"""Schemas of the training preview (``GET /api/jobs/{id}/preview``, ``POST /api/jobs/preview``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PreviewToken(BaseModel):
    id: int
    text: str = Field(description="the token decoded alone (model/data text: render as text)")
    loss: bool = Field(description="the collator's label for this token is not -100: it is a target")


class PreviewExample(BaseModel):
    line: int
    id: str
    chunk: int = Field(description="0, or the chunk number of a long plain text split when packing")
    text: str = Field(description="the feature decoded: the rendered chat template, cut at max_seq_len")
    n_tokens: int
    n_loss_tokens: int
    tokens: list[PreviewToken]


class PreviewRowMember(BaseModel):
    line: int
    chunk: int
    tokens: int


class PreviewRow(BaseModel):
    batch: int
    tokens: int
    padding: int
    examples: list[PreviewRowMember]


class HistogramBin(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: int = Field(alias="from")
    to: int
    count: int
    over: bool = False


class PreviewStats(BaseModel):
    n_examples: int
    measured: int = Field(description="examples measured (the first 5,000)")
    cut: int = Field(description="examples cut by max_seq_len")
    split: int = Field(description="plain texts split into max_seq_len chunks (packing)")
    dropped: int = Field(description="examples left without an answer token within max_seq_len")
    dropped_reasons: list[str]
    histogram: list[HistogramBin]
    max_length: int
    mean_length: float


class PreviewPublic(BaseModel):
    job_id: str | None = None
    base_model: str
    format: str
    max_seq_len: int
    packing: bool
    batch_size: int
    count: int
    examples: list[PreviewExample]
    rows: list[PreviewRow] = Field(description="with packing: how each batch's examples pack into its row")
    stats: PreviewStats
