"""The file_search tool in a run: which stores it searches, a search step, citations (real SQLite store)."""

import pytest
from assistd.v1 import assistant_pb2, file_pb2, run_pb2, thread_pb2
from assistd.v1 import vector_store_pb2 as vs_pb2

from service.engine.file_search import FileSearch, cite, settings_of, without_result_content
from service.engine.turn import Turn
from service.repo import Repo
from service.store.sqlite import SqliteStore

E = run_pb2
T = "tenant"


@pytest.fixture
async def repo(tmp_path):
    store = SqliteStore(str(tmp_path / "fs.db"))
    await store.open()
    yield Repo(store)
    await store.close()


async def _store_with(repo, vs_id, file_id, filename, text, status=vs_pb2.VECTOR_STORE_FILE_STATUS_COMPLETED):
    await repo.put(
        T,
        file_pb2.File(id=file_id, filename=filename),
        vs_pb2.VectorStoreFile(id=file_id, vector_store_id=vs_id, status=status),
    )
    await repo.store.index_chunks(T, vs_id, file_id, [text])


def _run(**settings) -> run_pb2.Run:
    run = run_pb2.Run(id="run_1", thread_id="thread_1", assistant_id="asst_1")
    run.tools.add().file_search.CopyFrom(assistant_pb2.FileSearchTool(**settings))
    return run


async def test_a_run_searches_its_assistants_then_its_threads_stores_once_each(repo):
    assistant = assistant_pb2.Assistant(id="asst_1")
    assistant.tool_resources.file_search.vector_store_ids.extend(["vs_a", "vs_shared"])
    thread = thread_pb2.Thread(id="thread_1")
    thread.tool_resources.file_search.vector_store_ids.extend(["vs_shared", "vs_t"])
    await repo.put(T, assistant)
    assert await FileSearch(repo).vector_stores(T, _run(), thread) == ["vs_a", "vs_shared", "vs_t"]
    no_tool = run_pb2.Run(id="run_2", assistant_id="asst_1")
    assert settings_of(no_tool) is None and await FileSearch(repo).vector_stores(T, no_tool, thread) == []


async def test_search_calls_run_as_one_completed_step_with_results_and_the_event_hides_their_text(repo):
    await _store_with(repo, "vs_1", "file-z", "zebras.md", "Zebras have black and white stripes.")
    await _store_with(repo, "vs_1", "file-e", "etna.txt", "Etna is a volcano in Sicily.")
    emitted: list = []
    run = _run(max_num_results=1)
    turn = Turn(run, lambda event, obj: emitted.append((event, obj)), searching=True)
    turn.search_args = {0: '{"queries": ["zebra stripes"]}'}
    turn.prompt_tokens, turn.completion_tokens = 8, 2
    step = await FileSearch(repo).run_calls(T, run, turn, ["vs_1"], lambda event, obj: emitted.append((event, obj)))
    (call,) = step.step_details.tool_calls.items
    assert [r.file_name for r in call.file_search.results] == ["zebras.md"]  # max_num_results honoured
    assert call.file_search.results[0].content[0].text.startswith("Zebras")
    assert call.file_search.ranking_options.ranker == assistant_pb2.FILE_SEARCH_RANKER_DEFAULT_2024_08_21
    assert step.status == E.RUN_STEP_STATUS_COMPLETED and step.usage.total_tokens == 10
    assert run.usage.total_tokens == 10
    kinds = [event for event, _ in emitted]
    assert kinds[:3] == [
        E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CREATED,
        E.RUN_EVENT_TYPE_THREAD_RUN_STEP_IN_PROGRESS,
        E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA,
    ]
    completed = next(obj for event, obj in emitted if event == E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED)
    assert not completed.step_details.tool_calls.items[0].file_search.results[0].content  # shown only with include[]
    assert emitted[-1][1] is step  # the stored step keeps the contents


async def test_files_still_ingesting_are_not_searched(repo):
    await _store_with(
        repo, "vs_1", "file-p", "pending.txt", "Zebras again.", status=vs_pb2.VECTOR_STORE_FILE_STATUS_IN_PROGRESS
    )
    turn = Turn(_run(), lambda *_: None, searching=True)
    turn.search_args = {0: '{"queries": ["zebras"]}'}
    step = await FileSearch(repo).run_calls(T, _run(), turn, ["vs_1"], lambda *_: None)
    assert not step.step_details.tool_calls.items[0].file_search.results


def test_markers_in_the_answer_become_citations_of_the_sources_in_order():
    steps = []
    for file_id in ("file-a", "file-b"):
        step = run_pb2.RunStep()
        step.step_details.tool_calls.items.add().file_search.results.add(file_id=file_id)
        steps.append(step)
    turn = Turn(run_pb2.Run())
    turn.text = "Stripes 【1†b.md】 and 【0†a.md】, not 【7†x】."
    cite(turn, steps)
    assert [(a.text, a.file_citation.file_id) for a in turn.annotations] == [
        ("【1†b.md】", "file-b"),
        ("【0†a.md】", "file-a"),
    ]
    assert turn.text[turn.annotations[0].start_index : turn.annotations[0].end_index] == "【1†b.md】"


def test_without_result_content_leaves_the_original_alone():
    step = run_pb2.RunStep()
    step.step_details.tool_calls.items.add().file_search.results.add(file_id="f").content.add(text="secret")
    bare = without_result_content(step)
    assert not bare.step_details.tool_calls.items[0].file_search.results[0].content
    assert step.step_details.tool_calls.items[0].file_search.results[0].content[0].text == "secret"
