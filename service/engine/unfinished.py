"""What a run with no task had done when it stopped: its open steps, and the text its message
had streamed. Ending such a run (expired, cancelled while waiting, left by a stopped process)
concludes this as its last turn."""

from assistd.v1 import message_pb2, run_pb2

from service.engine.turn import Turn
from service.repo import Repo
from service.store import Store

E = run_pb2


async def open_steps(repo: Repo, tenant: str, run: run_pb2.Run) -> list[run_pb2.RunStep]:
    steps = await repo.all(tenant, run_pb2.RunStep, run.id)
    return [step for step in steps if step.status == E.RUN_STEP_STATUS_IN_PROGRESS]


async def last_turn(repo: Repo, store: Store, tenant: str, run: run_pb2.Run) -> Turn:
    """The run's open steps and its message as a turn to conclude. A message whose snapshot has
    no text gets the text streamed into it (a message is only written whole when it ends): it is
    kept, as OpenAI keeps partial content."""
    steps = await open_steps(repo, tenant, run)
    message_step = next((s for s in steps if s.type == E.RUN_STEP_TYPE_MESSAGE_CREATION), None)
    message = None
    if message_step is not None:
        message_id = message_step.step_details.message_creation.message_id
        message = await repo.get(tenant, message_pb2.Message, message_id, run.thread_id)
        if message is not None and not any(part.text.value for part in message.content):
            text = await streamed_text(store, tenant, run.id, message.id)
            if text:
                del message.content[:]
                message.content.add().text.value = text
    return Turn.unfinished(run, steps, message)


async def streamed_text(store: Store, tenant: str, run_id: str, message_id: str) -> str:
    """The text deltas of one message in the run's event log, joined."""
    text: list[str] = []
    after = 0
    while batch := await store.read_events(tenant, run_id, after):
        for sequence, data in batch:
            event = run_pb2.RunEvent.FromString(data)
            if event.event == E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA and event.message_delta.id == message_id:
                text += [part.text.value for part in event.message_delta.delta.content if part.HasField("text")]
            after = sequence
    return "".join(text)
