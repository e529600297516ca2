"""Embeddings for hybrid search, through the provider port (any embedding model it reaches)."""

import asyncio

import numpy as np

from service.llm import Provider

BATCH = 64


class Embedder:
    def __init__(self, llm: Provider, model: str):
        self._llm = llm
        self.model = model

    async def embed(self, texts: list[str]) -> list[bytes]:
        """Unit-length float32 vectors, as bytes, one per text."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            vectors.extend(await self._llm.embed(self.model, texts[start : start + BATCH]))
        return await asyncio.to_thread(_normalize, vectors)


def _normalize(vectors: list[list[float]]) -> list[bytes]:
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = (matrix / np.where(norms == 0, 1, norms)).astype(np.float32)
    return [row.tobytes() for row in unit]
