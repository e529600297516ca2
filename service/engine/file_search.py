"""The file_search tool in a run: the vector stores it searches, the model's search calls run
server-side as a `file_search` step, and the citations in the answer.

The model sees a search function (retrieval/citations.py says how); its calls never reach the
client as function calls: assistd runs them and records one completed file_search step.
"""

import asyncio

from assistd.v1 import assistant_pb2, run_pb2, thread_pb2
from assistd.v1 import vector_store_pb2 as vs_pb2

from service import ids
from service.engine import lifecycle
from service.engine.turn import Emit, Turn, new_step
from service.repo import Repo
from service.retrieval import citations
from service.retrieval.embed import Embedder
from service.retrieval.search import search
from service.store import ListQuery

E = run_pb2
INGESTION_WAIT_SECONDS = 120  # longest a run waits for its vector stores' files to be ingested
DEFAULT_RANKER = assistant_pb2.FILE_SEARCH_RANKER_DEFAULT_2024_08_21
DEFAULT_MAX_RESULTS = 20


def settings_of(run: run_pb2.Run) -> assistant_pb2.FileSearchTool | None:
    """The run's file_search tool settings, or None when it has no file_search tool."""
    return next((tool.file_search for tool in run.tools if tool.WhichOneof("kind") == "file_search"), None)


def without_result_content(step: run_pb2.RunStep) -> run_pb2.RunStep:
    """The step with its file_search results' contents left out (they are shown only on request)."""
    bare = run_pb2.RunStep()
    bare.CopyFrom(step)
    for call in bare.step_details.tool_calls.items:
        for result in call.file_search.results:
            del result.content[:]
    return bare


class FileSearch:
    def __init__(self, repo: Repo, embedder: Embedder | None = None):
        self._repo = repo
        self._embedder = embedder

    async def vector_stores(self, tenant: str, run: run_pb2.Run, thread: thread_pb2.Thread | None) -> list[str]:
        """The vector stores the run searches (its assistant's, then its thread's), once their
        files are ingested, as OpenAI waits for them; [] when the run has no file_search tool."""
        if settings_of(run) is None:
            return []
        assistant = await self._repo.get(tenant, assistant_pb2.Assistant, run.assistant_id)
        stores = list(
            dict.fromkeys(
                [
                    *(assistant.tool_resources.file_search.vector_store_ids if assistant else []),
                    *(thread.tool_resources.file_search.vector_store_ids if thread else []),
                ]
            )
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + INGESTION_WAIT_SECONDS
        for vs_id in stores:
            # Polled: ingestion state lives in the store, and another replica may be ingesting.
            while loop.time() < deadline and await self._ingesting(tenant, vs_id):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        return stores

    async def _ingesting(self, tenant: str, vs_id: str) -> bool:
        pending, _ = await self._repo.list_page(
            tenant, vs_pb2.VectorStoreFile, vs_id, ListQuery(limit=1), "in_progress"
        )
        return bool(pending)

    async def run_calls(
        self, tenant: str, run: run_pb2.Run, turn: Turn, vector_store_ids: list[str], emit: Emit
    ) -> run_pb2.RunStep:
        """Runs the turn's search calls as one completed file_search step, after completing the
        message the model wrote before calling them. Returns the step, with result contents;
        the event shows it without them and the stored step keeps them, for include[]."""
        settings = settings_of(run) or assistant_pb2.FileSearchTool()
        limit = settings.max_num_results if settings.HasField("max_num_results") else DEFAULT_MAX_RESULTS
        threshold = settings.ranking_options.score_threshold
        turn.settle_message()
        step = new_step(run, E.RUN_STEP_TYPE_TOOL_CALLS)
        emit(E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CREATED, step)
        emit(E.RUN_EVENT_TYPE_THREAD_RUN_STEP_IN_PROGRESS, step)
        for index, arguments in enumerate(turn.search_args.values()):
            call = step.step_details.tool_calls.items.add(id=ids.new_id("call_"))
            call.file_search.ranking_options.ranker = settings.ranking_options.ranker or DEFAULT_RANKER
            call.file_search.ranking_options.score_threshold = threshold
            delta = run_pb2.RunStepDeltaEvent(id=step.id, object="thread.run.step.delta")
            delta.delta.step_details.tool_calls.items.add(index=index, id=call.id).file_search.SetInParent()
            emit(E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, delta)
            hits = await search(
                self._repo,
                tenant,
                vector_store_ids,
                citations.queries_of(arguments),
                limit,
                threshold,
                settings.filters if settings.HasField("filters") else None,
                embedder=self._embedder,
            )
            for hit in hits:
                result = call.file_search.results.add(file_id=hit.file_id, file_name=hit.filename, score=hit.score)
                result.content.add(text=hit.text)
        step.status = E.RUN_STEP_STATUS_COMPLETED
        step.completed_at = ids.now()
        step.usage.CopyFrom(turn.usage())
        lifecycle.add_usage(run, turn.usage())
        emit(E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED, without_result_content(step))
        emit(lifecycle.SNAPSHOT, step)
        return step


def cite(turn: Turn, steps: list[run_pb2.RunStep]) -> None:
    """Turns the source markers in the turn's answer into file_citation annotations."""
    if turn.text:
        turn.annotations = citations.annotate(turn.text, citations.sources(steps))
