"""One model turn: the provider's deltas become run objects and their events.

Text goes into a message and its message_creation step; function calls go into one tool_calls
step, streamed on as step deltas under assistd's own call ids. Calls of the file_search function
are kept aside for the file_search tool to run. Calls of code_interpreter's python function go
into the tool_calls step as code_interpreter calls, their code streamed as it comes, for the
engine to run. The turn also keeps its usage and finish reason.
"""

from collections.abc import AsyncIterator, Callable

from assistd.v1 import common_pb2, message_pb2, run_pb2
from google.protobuf.message import Message as ProtoMessage

from service import ids
from service.engine import lifecycle
from service.engine.tool_prompt import CallParser
from service.llm import ChatDelta, ToolCallFragment
from service.retrieval import citations
from service.sandbox import tool as code_tool

E = run_pb2
Emit = Callable[[run_pb2.RunEventType, ProtoMessage], object]  # (event type, the object it carries)


def _unwritable(event_type: run_pb2.RunEventType, obj: ProtoMessage) -> None:
    raise RuntimeError("a turn rebuilt from the store is only concluded; it emits nothing itself")


def new_step(run: run_pb2.Run, step_type: run_pb2.RunStepType) -> run_pb2.RunStep:
    step = run_pb2.RunStep(
        id=ids.new_id("step_"),
        object="thread.run.step",
        created_at=ids.now(),
        run_id=run.id,
        assistant_id=run.assistant_id,
        thread_id=run.thread_id,
        type=step_type,
        status=E.RUN_STEP_STATUS_IN_PROGRESS,
    )
    if step_type == E.RUN_STEP_TYPE_TOOL_CALLS:
        step.step_details.tool_calls.SetInParent()
    else:
        step.step_details.message_creation.SetInParent()
    return step


class Turn:
    """What one model turn is producing: a message (text) and/or a tool_calls step."""

    def __init__(
        self,
        run: run_pb2.Run,
        emit: Emit = _unwritable,
        searching: bool = False,
        coding: bool = False,
        images: list[str] | None = None,
        built_in_calls_left: int | None = None,
    ) -> None:
        self._run = run
        self._emit = emit
        self.searching = searching  # file_search is offered to the model in this turn
        self.coding = coding  # code_interpreter is offered to the model in this turn
        self.images = images or []  # image files code made, shown first in the message
        # file_search and code calls the run may still make (max_tool_calls); None: no limit
        self.built_in_calls_left = built_in_calls_left
        self._ignored: set[int] = set()  # provider indices of built-in calls past that limit
        self.message: message_pb2.Message | None = None
        self.message_step: run_pb2.RunStep | None = None
        self.message_settled = False  # completed before the turn ended (it went on to call tools)
        self.text = ""
        self.annotations: list[message_pb2.Annotation] = []  # file citations in the final text
        self.tool_step: run_pb2.RunStep | None = None
        self.search_args: dict[int, str] = {}  # provider's index of a file_search call -> its arguments
        self.code_args: dict[int, str] = {}  # our index of a code_interpreter call -> its arguments
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self._call_index: dict[tuple, int] = {}  # provider's call key -> ours (0-based, in order)
        self._provider_ids: dict[int, str] = {}  # provider's index -> the call id it last named there

    @classmethod
    def unfinished(cls, run: run_pb2.Run, steps: list[run_pb2.RunStep], message: message_pb2.Message | None) -> "Turn":
        """The open steps (and message) of a run with no task, as a turn to conclude."""
        turn = cls(run)
        for step in steps:
            if step.status != E.RUN_STEP_STATUS_IN_PROGRESS:
                continue
            if step.type == E.RUN_STEP_TYPE_TOOL_CALLS:
                turn.tool_step = step
            else:
                turn.message_step = step
        if message is not None and turn.message_step is not None:
            turn.message = message
            turn.text = "".join(part.text.value for part in message.content)
            turn.images = [part.image_file.file_id for part in message.content if part.HasField("image_file")]
            del message.content[:]
        return turn

    def usage(self) -> common_pb2.Usage:
        return lifecycle.usage(self.prompt_tokens, self.completion_tokens)

    def steps(self) -> list[run_pb2.RunStep]:
        return [step for step in (self.message_step, self.tool_step) if step is not None]

    async def read(self, deltas: AsyncIterator[ChatDelta], parser: CallParser | None = None) -> None:
        """Streams one model answer into the turn. With a parser (prompt-based tools), text that
        may be a call is held back and turned into tool calls at the end."""
        async for delta in deltas:
            self.add_text(parser.feed(delta.text) if parser else delta.text)
            for fragment in delta.tool_calls:
                self.add_call_fragment(fragment)
            if delta.prompt_tokens is not None:
                self.prompt_tokens = delta.prompt_tokens
                self.completion_tokens = delta.completion_tokens or 0
            self.finish_reason = delta.finish_reason or self.finish_reason
        if parser is not None:
            text, calls = parser.finish()
            self.add_text(text)
            for fragment in calls:
                self.add_call_fragment(fragment)
        self._finish_code()

    def _finish_code(self) -> None:
        """Each code call's input becomes its whole code (also when the model sent bare code that
        could not stream), the rest of it sent as a last delta."""
        if self.tool_step is None:
            return
        for index, arguments in self.code_args.items():
            call = self.tool_step.step_details.tool_calls.items[index]
            streamed, code = call.code_interpreter.input, code_tool.code_of(arguments)
            call.code_interpreter.input = code
            if code != streamed and code.startswith(streamed):
                event = run_pb2.RunStepDeltaEvent(id=self.tool_step.id, object="thread.run.step.delta")
                delta = event.delta.step_details.tool_calls.items.add(index=index)
                delta.code_interpreter.input = code[len(streamed) :]
                self._emit(E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, event)

    def add_text(self, text: str) -> None:
        if not text:
            return
        self.start_message()
        assert self.message is not None
        self.text += text
        event = message_pb2.MessageDeltaEvent(id=self.message.id, object="thread.message.delta")
        event.delta.content.add(index=len(self.images)).text.value = text
        self._emit(E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, event)

    def start_message(self) -> None:
        """Opens a message_creation step and its message, once per turn."""
        if self.message is not None:
            return
        run = self._run
        message = message_pb2.Message(
            id=ids.new_id("msg_"),
            object="thread.message",
            created_at=ids.now(),
            thread_id=run.thread_id,
            status=message_pb2.MESSAGE_STATUS_IN_PROGRESS,
            role=message_pb2.MESSAGE_ROLE_ASSISTANT,
            assistant_id=run.assistant_id,
            run_id=run.id,
        )
        step = new_step(run, E.RUN_STEP_TYPE_MESSAGE_CREATION)
        step.step_details.message_creation.message_id = message.id
        self.message_step, self.message = step, message
        self._emit(E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CREATED, step)
        self._emit(E.RUN_EVENT_TYPE_THREAD_RUN_STEP_IN_PROGRESS, step)
        self._emit(E.RUN_EVENT_TYPE_THREAD_MESSAGE_CREATED, message)
        self._emit(E.RUN_EVENT_TYPE_THREAD_MESSAGE_IN_PROGRESS, message)
        if self.images:
            event = message_pb2.MessageDeltaEvent(id=message.id, object="thread.message.delta")
            for index, file_id in enumerate(self.images):
                event.delta.content.add(index=index).image_file.file_id = file_id
            self._emit(E.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA, event)

    def settle_message(self) -> None:
        """Completes the message written so far, if it is still open (tools come next)."""
        if self.message is not None and not self.message_settled:
            for effect in lifecycle.settle_message(self, ids.now()):
                self._emit(*effect)

    def add_call_fragment(self, fragment: ToolCallFragment) -> None:
        """Adds a streamed piece of a function call to the turn's tool_calls step and streams it on.
        The first delta of a call carries its id and name; later ones only argument text."""
        continued = not fragment.name and not fragment.id
        if continued and fragment.index in self._ignored:
            return
        built_in = (self.searching and fragment.name == citations.FUNCTION_NAME) or (
            self.coding and fragment.name == code_tool.FUNCTION_NAME
        )
        if built_in and self._over_limit(fragment):
            self._ignored.add(fragment.index)  # as OpenAI: calls past max_tool_calls are ignored
            return
        continues_search = continued and fragment.index in self.search_args
        if self.searching and (fragment.name == citations.FUNCTION_NAME or continues_search):
            self.search_args[fragment.index] = self.search_args.get(fragment.index, "") + (fragment.arguments or "")
            return
        if self.tool_step is None:
            self.settle_message()  # as OpenAI: the message step ends before the tool step begins
            self.tool_step = new_step(self._run, E.RUN_STEP_TYPE_TOOL_CALLS)
            self._emit(E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CREATED, self.tool_step)
            self._emit(E.RUN_EVENT_TYPE_THREAD_RUN_STEP_IN_PROGRESS, self.tool_step)
        calls = self.tool_step.step_details.tool_calls.items
        event = run_pb2.RunStepDeltaEvent(id=self.tool_step.id, object="thread.run.step.delta")
        key = self.call_key(fragment)
        index = self._call_index.get(key)
        new_call = index is None
        if index is None:
            index = self._call_index[key] = len(calls)
            call = calls.add(id=ids.new_id("call_"))  # our own ids: unique whatever the provider sends
            delta = event.delta.step_details.tool_calls.items.add(index=index, id=call.id)
            if self.coding and fragment.name == code_tool.FUNCTION_NAME:
                self.code_args[index] = ""
                call.code_interpreter.SetInParent()
                delta.code_interpreter.input = ""
            else:
                call.function.SetInParent()
                delta.function.arguments = ""
        else:
            call = calls[index]
            delta = event.delta.step_details.tool_calls.items.add(index=index)
            if index in self.code_args:
                delta.code_interpreter.SetInParent()
            else:
                delta.function.SetInParent()
        if index in self.code_args:
            streamed = call.code_interpreter.input
            self.code_args[index] += fragment.arguments or ""
            code = code_tool.partial_code(self.code_args[index])
            if code.startswith(streamed) and len(code) > len(streamed):
                call.code_interpreter.input = code
                delta.code_interpreter.input = code[len(streamed) :]
            elif not new_call:
                return  # nothing new to show yet (the JSON around the code)
            self._emit(E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, event)
            return
        if fragment.name:
            call.function.name += fragment.name
            delta.function.name = fragment.name
        if fragment.arguments:
            call.function.arguments += fragment.arguments
            delta.function.arguments = fragment.arguments
        self._emit(E.RUN_EVENT_TYPE_THREAD_RUN_STEP_DELTA, event)

    def _over_limit(self, fragment: ToolCallFragment) -> bool:
        """Whether a built-in call's fragment starts a call past the run's max_tool_calls."""
        if self.built_in_calls_left is None:
            return False
        if fragment.index in self.search_args or self._call_index.get(self.call_key(fragment)) in self.code_args:
            return False  # a call already begun
        return len(self.search_args) + len(self.code_args) >= self.built_in_calls_left

    def has_function_calls(self) -> bool:
        """Whether the turn called functions the client runs (beside code it may have run)."""
        calls = self.tool_step.step_details.tool_calls.items if self.tool_step is not None else []
        return any(call.WhichOneof("kind") == "function" for call in calls)

    def call_key(self, fragment: ToolCallFragment) -> tuple:
        """Which call a fragment belongs to: the provider's index and the call id last named there,
        so a provider that streams whole parallel calls at one index still gets separate calls."""
        if fragment.id:
            self._provider_ids[fragment.index] = fragment.id
        return (fragment.index, self._provider_ids.get(fragment.index))
