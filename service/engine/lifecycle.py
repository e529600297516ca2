"""The run status machine as data and pure functions: no I/O, no clock, no ids.

OpenAI's statuses: queued -> in_progress -> (requires_action <-> in_progress) -> completed |
incomplete | failed | cancelling -> cancelled | expired. Each function here moves a run (and the
turn it was writing) to its next status in place and returns the Effects that tell it: the events
OpenAI sends, in OpenAI's order, each carrying the object it shows. The caller writes them to
the run's log in that order, at once (an Effect holds the live object, not a copy).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, cast

from assistd.v1 import common_pb2, message_pb2, run_pb2, thread_pb2
from google.protobuf.message import Message as ProtoMessage

from service.errors import FailedPrecondition, InvalidArgument, missing
from service.protojson import enum_number

E = run_pb2  # the status, step and event enums live in run_pb2

TERMINAL = frozenset(
    {E.RUN_STATUS_CANCELLED, E.RUN_STATUS_FAILED, E.RUN_STATUS_COMPLETED, E.RUN_STATUS_INCOMPLETE, E.RUN_STATUS_EXPIRED}
)
STATUS_EVENT = {
    E.RUN_STATUS_QUEUED: E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED,
    E.RUN_STATUS_IN_PROGRESS: E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS,
    E.RUN_STATUS_REQUIRES_ACTION: E.RUN_EVENT_TYPE_THREAD_RUN_REQUIRES_ACTION,
    E.RUN_STATUS_CANCELLING: E.RUN_EVENT_TYPE_THREAD_RUN_CANCELLING,
    E.RUN_STATUS_CANCELLED: E.RUN_EVENT_TYPE_THREAD_RUN_CANCELLED,
    E.RUN_STATUS_FAILED: E.RUN_EVENT_TYPE_THREAD_RUN_FAILED,
    E.RUN_STATUS_COMPLETED: E.RUN_EVENT_TYPE_THREAD_RUN_COMPLETED,
    E.RUN_STATUS_INCOMPLETE: E.RUN_EVENT_TYPE_THREAD_RUN_INCOMPLETE,
    E.RUN_STATUS_EXPIRED: E.RUN_EVENT_TYPE_THREAD_RUN_EXPIRED,
}
# A step's final status -> (its event, the field stamped with the time).
STEP_END = {
    E.RUN_STEP_STATUS_COMPLETED: (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED, "completed_at"),
    E.RUN_STEP_STATUS_FAILED: (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_FAILED, "failed_at"),
    E.RUN_STEP_STATUS_CANCELLED: (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_CANCELLED, "cancelled_at"),
    E.RUN_STEP_STATUS_EXPIRED: (E.RUN_EVENT_TYPE_THREAD_RUN_STEP_EXPIRED, "expired_at"),
}
# How a run's end leaves the steps it had open.
STEP_STATUS_FOR_RUN = {
    E.RUN_STATUS_COMPLETED: E.RUN_STEP_STATUS_COMPLETED,
    E.RUN_STATUS_INCOMPLETE: E.RUN_STEP_STATUS_COMPLETED,
    E.RUN_STATUS_REQUIRES_ACTION: E.RUN_STEP_STATUS_COMPLETED,
    E.RUN_STATUS_CANCELLED: E.RUN_STEP_STATUS_CANCELLED,
    E.RUN_STATUS_FAILED: E.RUN_STEP_STATUS_FAILED,
    E.RUN_STATUS_EXPIRED: E.RUN_STEP_STATUS_EXPIRED,
}
# How a run's end leaves the message it was writing (its incomplete_details.reason).
INCOMPLETE_REASON = {
    E.RUN_STATUS_CANCELLED: message_pb2.MESSAGE_INCOMPLETE_REASON_RUN_CANCELLED,
    E.RUN_STATUS_FAILED: message_pb2.MESSAGE_INCOMPLETE_REASON_RUN_FAILED,
    E.RUN_STATUS_EXPIRED: message_pb2.MESSAGE_INCOMPLETE_REASON_RUN_EXPIRED,
    E.RUN_STATUS_INCOMPLETE: message_pb2.MESSAGE_INCOMPLETE_REASON_MAX_TOKENS,
}
SERVER_ERROR = "The server had an error while processing the run."
RESTART_ERROR = "The run was interrupted: the assistd process that ran it stopped (or lost its lease)."
SNAPSHOT = E.RUN_EVENT_TYPE_UNSPECIFIED  # an Effect that only stores its object, with no event


class OpenTurn(Protocol):
    """What an end needs of the turn a run was in (engine/turn.py's Turn)."""

    message: message_pb2.Message | None
    message_step: run_pb2.RunStep | None
    message_settled: bool  # its message completed already (the turn went on to call tools)
    text: str
    annotations: list[message_pb2.Annotation]
    images: list[str]  # image files code made, shown before the text
    tool_step: run_pb2.RunStep | None

    def usage(self) -> common_pb2.Usage: ...


class Effect(NamedTuple):
    """An event for the run's log and the object it carries; with SNAPSHOT, only the object's write."""

    event: run_pb2.RunEventType
    obj: ProtoMessage


@dataclass(frozen=True)
class Outcome:
    """How a segment of a run ends."""

    status: run_pb2.RunStatus
    error_code: str = ""
    error_message: str = ""
    incomplete_reason: str = ""


CANCELLED = Outcome(E.RUN_STATUS_CANCELLED)
COMPLETED = Outcome(E.RUN_STATUS_COMPLETED)
REQUIRES_ACTION = Outcome(E.RUN_STATUS_REQUIRES_ACTION)
EXPIRED = Outcome(E.RUN_STATUS_EXPIRED)


def failed(code: str, message: str) -> Outcome:
    return Outcome(E.RUN_STATUS_FAILED, code, message)


def incomplete(reason: str) -> Outcome:
    return Outcome(E.RUN_STATUS_INCOMPLETE, incomplete_reason=reason)


def error_code(code: str) -> common_pb2.LastErrorCode:
    """An Outcome's OpenAI error code as the LastErrorCode enum (server_error for any other)."""
    number = enum_number(common_pb2.LastErrorCode.DESCRIPTOR, code)
    return cast(common_pb2.LastErrorCode, number or common_pb2.LAST_ERROR_CODE_SERVER_ERROR)


def status_name(status: int) -> str:
    return run_pb2.RunStatus.Name(status).removeprefix("RUN_STATUS_").lower()


def usage(prompt_tokens: int, completion_tokens: int) -> common_pb2.Usage:
    return common_pb2.Usage(
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens
    )


_BUILT_IN = frozenset({"file_search", "code_interpreter"})


def built_in_calls_left(run: run_pb2.Run, steps: Sequence[run_pb2.RunStep]) -> int | None:
    """How many more built-in tool calls the run may make (its max_tool_calls less the calls its
    steps hold), or None when it has no limit."""
    if not run.HasField("max_tool_calls"):
        return None
    made = sum(
        call.WhichOneof("kind") in _BUILT_IN
        for step in steps
        if step.type == E.RUN_STEP_TYPE_TOOL_CALLS
        for call in step.step_details.tool_calls.items
    )
    return max(run.max_tool_calls - made, 0)


def add_usage(run: run_pb2.Run, step_usage: common_pb2.Usage) -> None:
    run.usage.prompt_tokens += step_usage.prompt_tokens
    run.usage.completion_tokens += step_usage.completion_tokens
    run.usage.total_tokens = run.usage.prompt_tokens + run.usage.completion_tokens


# ---- the transitions ----------------------------------------------------------------------


def created(run: run_pb2.Run, thread: thread_pb2.Thread | None = None) -> list[Effect]:
    """A new run (and the thread made for it): created, then queued."""
    effects = [Effect(E.RUN_EVENT_TYPE_THREAD_CREATED, thread)] if thread is not None else []
    return effects + [Effect(E.RUN_EVENT_TYPE_THREAD_RUN_CREATED, run), Effect(E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED, run)]


def begin(run: run_pb2.Run, now: int) -> list[Effect]:
    """A queued run starts working (started_at is its first start only)."""
    run.status = E.RUN_STATUS_IN_PROGRESS
    if not run.HasField("started_at"):
        run.started_at = now
    return [Effect(E.RUN_EVENT_TYPE_THREAD_RUN_IN_PROGRESS, run)]


def cancelling(run: run_pb2.Run) -> list[Effect]:
    """A working run is asked to stop. Raises FailedPrecondition once it has ended or is stopping."""
    if run.status in TERMINAL or run.status == E.RUN_STATUS_CANCELLING:
        raise FailedPrecondition(f"Cannot cancel run with status '{status_name(run.status)}'.")
    run.status = E.RUN_STATUS_CANCELLING
    return [Effect(E.RUN_EVENT_TYPE_THREAD_RUN_CANCELLING, run)]


def outputs_by_call(run: run_pb2.Run, outputs: Sequence[run_pb2.ToolOutput]) -> dict[str, str]:
    """{call id: output} when outputs answer each pending call exactly once; else InvalidArgument."""
    pending = [call.id for call in run.required_action.submit_tool_outputs.tool_calls]
    if not outputs:
        raise missing("tool_outputs")
    by_id: dict[str, str] = {}
    for i, output in enumerate(outputs):
        param = f"tool_outputs[{i}].tool_call_id"
        if not output.tool_call_id:
            raise missing(param)
        if output.tool_call_id not in pending:
            raise InvalidArgument(
                f"Invalid '{param}': no pending tool call has id '{output.tool_call_id}'.",
                param=param,
                code="invalid_value",
            )
        if output.tool_call_id in by_id:
            raise InvalidArgument(f"Duplicate tool_call_id '{output.tool_call_id}' in 'tool_outputs'.", param=param)
        by_id[output.tool_call_id] = output.output
    missing_ids = [call_id for call_id in pending if call_id not in by_id]
    if missing_ids:
        raise InvalidArgument(
            f"Expected tool outputs for call_ids {pending}, got {list(by_id)}.",
            param="tool_outputs",
            code="invalid_value",
        )
    return by_id


def accept_tool_outputs(run: run_pb2.Run, step: run_pb2.RunStep, by_id: dict[str, str], now: int) -> list[Effect]:
    """The waiting tool_calls step gets its outputs and completes; the run is queued again."""
    for call in step.step_details.tool_calls.items:
        if call.id in by_id:
            call.function.output = by_id[call.id]
    step.status = E.RUN_STEP_STATUS_COMPLETED
    step.completed_at = now
    run.status = E.RUN_STATUS_QUEUED
    run.ClearField("required_action")
    return [Effect(E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED, step), Effect(E.RUN_EVENT_TYPE_THREAD_RUN_QUEUED, run)]


def settle_message(turn: OpenTurn, now: int) -> list[Effect]:
    """Completes the message a turn wrote before it went on to call tools, and its step."""
    assert turn.message is not None and turn.message_step is not None
    turn.message_settled = True
    _add_images(turn.message, turn.images)
    turn.message.content.add().text.value = turn.text
    turn.message.status = message_pb2.MESSAGE_STATUS_COMPLETED
    turn.message.completed_at = now
    turn.message_step.status = E.RUN_STEP_STATUS_COMPLETED
    turn.message_step.completed_at = now
    return [
        Effect(E.RUN_EVENT_TYPE_THREAD_MESSAGE_COMPLETED, turn.message),
        Effect(E.RUN_EVENT_TYPE_THREAD_RUN_STEP_COMPLETED, turn.message_step),
    ]


def conclude(run: run_pb2.Run, turn: OpenTurn, outcome: Outcome, now: int, expiry_seconds: int) -> list[Effect]:
    """Closes the turn's message and steps, then moves the run to the outcome's status."""
    status = outcome.status
    effects = _end_message(turn, status, now)
    turn_usage = turn.usage()
    usage_step = turn.tool_step or turn.message_step  # the turn's usage is booked on the step that ends it
    for step in (turn.message_step, turn.tool_step):
        if step is None or (step is turn.message_step and turn.message_settled):
            continue
        if step is usage_step and turn_usage.total_tokens:  # a turn rebuilt from the store has none
            step.usage.CopyFrom(turn_usage)
        if step is turn.tool_step and status == E.RUN_STATUS_REQUIRES_ACTION:
            effects.append(Effect(SNAPSHOT, step))  # stays in_progress, now with whole arguments
            continue
        step.status = STEP_STATUS_FOR_RUN[status]
        if step is turn.tool_step and status == E.RUN_STATUS_INCOMPLETE:
            step.status = E.RUN_STEP_STATUS_CANCELLED  # its calls were cut off: they never ran
        event, stamp = STEP_END[step.status]
        setattr(step, stamp, now)
        if outcome.error_code:
            step.last_error.code, step.last_error.message = error_code(outcome.error_code), outcome.error_message
        effects.append(Effect(event, step))
    run.status = status
    add_usage(run, turn_usage)
    if status == E.RUN_STATUS_REQUIRES_ACTION:
        assert turn.tool_step is not None
        run.expires_at = now + expiry_seconds
        run.required_action.submit_tool_outputs.tool_calls.extend(
            call for call in turn.tool_step.step_details.tool_calls.items if call.WhichOneof("kind") == "function"
        )
    else:
        run.ClearField("expires_at")
        run.ClearField("required_action")
    if status == E.RUN_STATUS_FAILED:
        run.failed_at = now
        run.last_error.code, run.last_error.message = error_code(outcome.error_code), outcome.error_message
    elif status == E.RUN_STATUS_CANCELLED:
        run.cancelled_at = now
    elif status in (E.RUN_STATUS_COMPLETED, E.RUN_STATUS_INCOMPLETE):
        run.completed_at = now
    if outcome.incomplete_reason:
        reason = enum_number(run_pb2.RunIncompleteReason.DESCRIPTOR, outcome.incomplete_reason)
        run.incomplete_details.reason = cast(run_pb2.RunIncompleteReason, reason or 0)
    effects.append(Effect(STATUS_EVENT[status], run))
    return effects


def _end_message(turn: OpenTurn, status: run_pb2.RunStatus, now: int) -> list[Effect]:
    message = turn.message
    if message is None or turn.message_settled:
        return []
    _add_images(message, turn.images)
    if turn.text:
        text = message.content.add().text
        text.value = turn.text
        text.annotations.extend(turn.annotations)
    if status in (E.RUN_STATUS_COMPLETED, E.RUN_STATUS_REQUIRES_ACTION):
        message.status = message_pb2.MESSAGE_STATUS_COMPLETED
        message.completed_at = now
        return [Effect(E.RUN_EVENT_TYPE_THREAD_MESSAGE_COMPLETED, message)]
    message.status = message_pb2.MESSAGE_STATUS_INCOMPLETE
    message.incomplete_at = now
    message.incomplete_details.reason = INCOMPLETE_REASON[status]
    return [Effect(E.RUN_EVENT_TYPE_THREAD_MESSAGE_INCOMPLETE, message)]


def _add_images(message: message_pb2.Message, file_ids: list[str]) -> None:
    for file_id in file_ids:
        message.content.add().image_file.file_id = file_id


def cut_short(run: run_pb2.Run, now: int) -> list[Effect]:
    """A run whose end could not be recorded is never left working: it fails with server_error.
    A run that ended, or waits for tool outputs, stays as it is."""
    if run.status in TERMINAL or run.status == E.RUN_STATUS_REQUIRES_ACTION:
        return []
    run.status = E.RUN_STATUS_FAILED
    run.failed_at = now
    run.last_error.code, run.last_error.message = common_pb2.LAST_ERROR_CODE_SERVER_ERROR, SERVER_ERROR
    return [Effect(E.RUN_EVENT_TYPE_THREAD_RUN_FAILED, run)]
