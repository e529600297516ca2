"""The code_interpreter tool in a run: the thread's files go into its sandbox session, the
model's python calls run there, and what they print and draw comes back as the call's outputs.

The model sees a `python` function (sandbox/tool.py); its calls stream to the client as
code_interpreter calls of the turn's tool_calls step (turn.py), and are run here, not by the
client. Images the code leaves (open matplotlib figures, PNG files it writes) are stored as files
with purpose assistants_output, shown as `image` outputs and as image_file parts of the message
that follows; other files the answer links as `sandbox:/mnt/data/NAME` are stored the same way
and get a file_path annotation. A limit the code hits is its output; the run goes on.

A response's run (the Responses API) runs its code in a container instead of the thread's
session (service/containers.py): the container's files go in, what the code writes comes back
as container files, images are container files (`image` outputs carry their ids), and links
to the work dir are annotated with the container file's id.
"""

import logging
import re
from collections.abc import AsyncIterator

from assistd.v1 import assistant_pb2, file_pb2, message_pb2, run_pb2, thread_pb2

from service import ids
from service.containers import WORKDIR, Containers
from service.engine import lifecycle
from service.engine.turn import Emit, Turn
from service.repo import Repo
from service.sandbox import Box, Execution, Sessions
from service.store.blobs import BlobStore

log = logging.getLogger(__name__)
E = run_pb2
MAX_INPUT_FILE_BYTES = 512 * 1024 * 1024
MAX_IMAGE_FILE_BYTES = 16 * 1024 * 1024
MAX_LINKED_FILE_BYTES = 64 * 1024 * 1024
_LINK = re.compile(r"sandbox:/mnt/data/([^\s/()\[\]<>\"'`]+)")


def enabled(run: run_pb2.Run) -> bool:
    return any(tool.WhichOneof("kind") == "code_interpreter" for tool in run.tools)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


class CodeInterpreter:
    def __init__(self, repo: Repo, blobs: BlobStore, sessions: Sessions, containers: Containers | None = None):
        self._repo = repo
        self._blobs = blobs
        self.sessions = sessions
        self._containers = containers

    async def _container(self, tenant: str, run: run_pb2.Run) -> str | None:
        """The container a response's run uses; None for an Assistants run (the thread's session)."""
        return await self._containers.of_run(tenant, run.id) if self._containers is not None else None

    async def prepare(
        self,
        tenant: str,
        run: run_pb2.Run,
        thread: thread_pb2.Thread | None,
        messages: list[message_pb2.Message],
    ) -> bool:
        """Puts the run's files in the thread's session (the assistant's and the thread's
        code_interpreter files, and files attached to messages for it). Returns whether the
        model is offered the tool."""
        if not enabled(run):
            return False
        if self.sessions.unavailable() is not None:
            return True  # offered: the call answers with why it cannot run
        container = await self._container(tenant, run)
        if container is not None:
            assert self._containers is not None
            await self._containers.load(tenant, container)
            return True
        assistant = await self._repo.get(tenant, assistant_pb2.Assistant, run.assistant_id)
        file_ids = [
            *(assistant.tool_resources.code_interpreter.file_ids if assistant else []),
            *(thread.tool_resources.code_interpreter.file_ids if thread else []),
            *(
                attachment.file_id
                for message in messages
                for attachment in message.attachments
                if any(tool.WhichOneof("kind") == "code_interpreter" for tool in attachment.tools)
            ),
        ]
        files = {}
        for file_id in dict.fromkeys(file_ids):
            file = await self._repo.get(tenant, file_pb2.File, file_id)
            name = (file.filename.rsplit("/", 1)[-1] if file else "").strip()
            if file is None or name in ("", ".", "..") or file.bytes > MAX_INPUT_FILE_BYTES:
                continue
            files[file_id] = (name, self._content(tenant, file_id))
        if files:
            await self.sessions.put_files(tenant, run.thread_id, files)
        return True

    def _content(self, tenant: str, file_id: str):
        async def read() -> bytes:
            return b"".join([chunk async for chunk in self._blobs.read(tenant, file_id)])

        return read

    async def run_calls(self, tenant: str, run: run_pb2.Run, turn: Turn, emit: Emit) -> list[str]:
        """Runs the turn's code calls in order, each output streamed as a step delta. Returns the
        image files they made (for the message after them: none in a container)."""
        assert turn.tool_step is not None
        step = turn.tool_step
        emit(lifecycle.SNAPSHOT, step)  # stored with the whole code while it runs, for readers of the step
        container = await self._container(tenant, run)
        images: list[str] = []
        for index in turn.code_args:
            call = step.step_details.tool_calls.items[index].code_interpreter
            try:
                execution, box = await self.sessions.execute(tenant, container or run.thread_id, call.input)
            except Exception as exc:  # the sandbox's own failure: the model is told, the run goes on
                log.exception("code_interpreter could not run a call")
                execution, box = (
                    Execution(output=f"code_interpreter could not run the code: {exc}", error="sandbox"),
                    None,
                )
            if container is not None:
                assert self._containers is not None
                made = await self._containers.collect(tenant, container, box, execution, f"{step.id}-{index}")
            else:
                made = await self._images(tenant, box, execution, f"{step.id}-{index}")
                images.extend(made)
            if execution.output or not made:
                call.outputs.add().logs = execution.output
            for file_id in made:
                call.outputs.add().image.file_id = file_id
            event = run_pb2.RunStepDeltaEvent(id=step.id, object="thread.run.step.delta")
            delta = event.delta.step_details.tool_calls.items.add(index=index)
            for position, output in enumerate(call.outputs):
                item = delta.code_interpreter.outputs.add(index=position)
                if output.WhichOneof("kind") == "logs":
                    item.logs = output.logs
                else:
                    item.image.file_id = output.image.file_id
            emit(E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, event)
        return images

    async def _images(self, tenant: str, box: Box | None, execution: Execution, prefix: str) -> list[str]:
        """The block's images as files: the figures it left open, and the PNG files it wrote."""
        pictures = list(execution.images)
        for name in execution.files:
            if box is not None and name.lower().endswith(".png"):
                data = await box.read_file(name, MAX_IMAGE_FILE_BYTES)
                if data is not None and data.startswith(b"\x89PNG"):
                    pictures.append(data)
        return [await self._store_file(tenant, data, f"{prefix}-{number}.png") for number, data in enumerate(pictures)]

    async def link_files(self, tenant: str, run: run_pb2.Run, turn: Turn) -> None:
        """file_path annotations for the session's files the answer links (`sandbox:/mnt/data/NAME`),
        each file stored once per answer (in a container: the container's file); a link to no
        file is left as it is."""
        container = await self._container(tenant, run)
        stored: dict[str, str | None] = {}
        for match in _LINK.finditer(turn.text):
            name = match.group(1).rstrip(".,;:!?")
            if name not in stored and container is not None:
                assert self._containers is not None
                found = await self._containers.file_at(tenant, container, WORKDIR + name)
                stored[name] = found.id if found is not None else None
            elif name not in stored:
                data = await self.sessions.read_file(tenant, run.thread_id, name, MAX_LINKED_FILE_BYTES)
                stored[name] = await self._store_file(tenant, data, name) if data is not None else None
            if (file_id := stored[name]) is not None:
                end = match.start() + len("sandbox:/mnt/data/") + len(name)
                annotation = message_pb2.Annotation(text=turn.text[match.start() : end], start_index=match.start())
                annotation.end_index = end
                annotation.file_path.file_id = file_id
                turn.annotations.append(annotation)

    async def _store_file(self, tenant: str, data: bytes, filename: str) -> str:
        file = file_pb2.File(
            id=ids.new_id("file-"),
            object="file",
            bytes=len(data),
            created_at=ids.now(),
            filename=filename,
            purpose=file_pb2.FILE_PURPOSE_ASSISTANTS_OUTPUT,
            status=file_pb2.FILE_STATUS_PROCESSED,
        )
        await self._blobs.write(tenant, file.id, _one(data))
        await self._repo.put(tenant, file)
        return file.id


def complete_step(run: run_pb2.Run, turn: Turn, emit: Emit) -> None:
    """Completes a turn's tool_calls step that only ran code: the model is called again next."""
    assert turn.tool_step is not None
    step = turn.tool_step
    step.status = E.RUN_STEP_STATUS_COMPLETED
    step.completed_at = ids.now()
    step.usage.CopyFrom(turn.usage())
    lifecycle.add_usage(run, turn.usage())
    emit(E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED, step)
