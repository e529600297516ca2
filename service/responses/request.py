"""A CreateResponse body, checked and mapped onto the engine's terms: input items become thread
messages (and system text for the run's instructions), function_call_output items become tool
outputs, tools become the run's tools. Every error is an InvalidArgument naming its `param`."""

from dataclasses import dataclass, field
from typing import Any

from assistd.v1 import assistant_pb2, message_pb2, run_pb2

from service import ids
from service.errors import InvalidArgument, missing
from service.protojson import enum_names, enum_number, struct_to_python
from service.responses.filters import parse_filter
from service.validation import check_metadata

Json = dict[str, Any]

# Fields read from the body; the rest of OpenAI's are refused by name until they are supported.
SUPPORTED = {
    "model",
    "input",
    "instructions",
    "previous_response_id",
    "store",
    "background",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "max_output_tokens",
    "metadata",
    "text",
    "conversation",
    "prompt",
    "reasoning",
    "max_tool_calls",
    "truncation",
    # accepted, with no effect yet
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "service_tier",
    "include",
    "stream_options",
}
# `include` values accepted; file_search_call.results and code_interpreter_call.outputs add something.
INCLUDABLE = frozenset(
    {
        "file_search_call.results",
        "code_interpreter_call.outputs",
        "message.output_text.logprobs",
        "message.input_image.image_url",
        "reasoning.encrypted_content",
    }
)
SEARCH_RESULTS = "file_search_call.results"
CODE_OUTPUTS = "code_interpreter_call.outputs"
_SKIPPED_ITEMS = {"file_search_call", "reasoning"}
_MESSAGE_ROLES = {"user": message_pb2.MESSAGE_ROLE_USER, "assistant": message_pb2.MESSAGE_ROLE_ASSISTANT}
_SYSTEM_ROLES = {"system", "developer"}
_TEXT_PARTS = {"input_text", "output_text", "text"}


@dataclass
class ResponseRequest:
    """What a CreateResponse body asks for, in the engine's terms."""

    body: Json
    model: str
    previous_response_id: str | None
    store: bool
    background: bool
    conversation: str | None = None  # the thread it runs on (a conversation is a thread)
    prompt_id: str | None = None  # an assistant used as the reusable prompt
    assistant: assistant_pb2.Assistant | None = None  # that assistant, once read
    # (role, content parts) of the message items, in order; content parts are MessageContent
    messages: list[tuple[int, list[message_pb2.MessageContent]]] = field(default_factory=list)
    # function_call items given back as history: (call id, name, arguments), each with the index
    # of the message it follows in `messages` (-1: before them all)
    calls: list[tuple[int, tuple[str, str, str]]] = field(default_factory=list)
    system_text: list[str] = field(default_factory=list)  # system/developer items, for this run only
    tool_outputs: list[run_pb2.ToolOutput] = field(default_factory=list)
    output_params: list[str] = field(default_factory=list)  # each tool output's param, for errors
    call_params: dict[str, str] = field(default_factory=dict)  # function_call item's param by call id
    items: list[Json] = field(default_factory=list)  # the input items as listed back (ids set later)
    # input_file parts by file_id: (the part, as listed back, file id, param); the part's text is
    # the file's, filled in by service/responses/files.py before the run starts
    files: list[tuple[message_pb2.MessageContent, Json, str, str]] = field(default_factory=list)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a decimal", str: "a string", list: "an array"}.get(
        type(value), "an object"
    )


def _expect(body: Json, key: str, kinds: tuple[type, ...], expected: str, param: str | None = None) -> Any:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
        name = param or key
        raise InvalidArgument(
            f"Invalid type for '{name}': expected {expected}, but got {_type_name(value)} instead.",
            param=name,
            code="invalid_type",
        )
    return value


def _number(body: Json, key: str, low: float, high: float) -> None:
    value = _expect(body, key, (int, float), "a number")
    if value is not None and not low <= value <= high:
        raise InvalidArgument(
            f"Invalid '{key}': expected a value between {low:g} and {high:g}, but got {value} instead.",
            param=key,
            code="invalid_value",
        )


def _kind(value: Any, param: str) -> str:
    """The `type` of the item or content part at param, which must be a string (a dict or list
    would not even be hashable in the lookups that follow)."""
    if not isinstance(value, str):
        raise InvalidArgument(
            f"Invalid type for '{param}.type': expected a string.", param=f"{param}.type", code="invalid_type"
        )
    return value


def _content(
    content: Any, param: str, files: list | None = None
) -> tuple[list[message_pb2.MessageContent], list[Json]]:
    """An item's content as message parts, and as listed back; input_file parts are added to
    files (None: they are refused)."""
    if isinstance(content, str):
        return [message_pb2.MessageContent(text=message_pb2.TextContent(value=content))], [
            {"type": "input_text", "text": content}
        ]
    if not isinstance(content, list):
        raise InvalidArgument(
            f"Invalid type for '{param}': expected a string or an array, but got {_type_name(content)} instead.",
            param=param,
            code="invalid_type",
        )
    parts, shown = [], []
    for i, part in enumerate(content):
        at = f"{param}[{i}]"
        if not isinstance(part, dict):
            raise InvalidArgument(f"Invalid type for '{at}': expected an object.", param=at, code="invalid_type")
        kind = _kind(part.get("type"), at)
        if kind in _TEXT_PARTS:
            text = _expect(part, "text", (str,), "a string", f"{at}.text")
            if text is None:
                raise missing(f"{at}.text")
            parts.append(message_pb2.MessageContent(text=message_pb2.TextContent(value=text)))
            shown.append({"type": kind, "text": text})
        elif kind == "input_image":
            url = _expect(part, "image_url", (str,), "a string", f"{at}.image_url")
            if url is None:
                raise InvalidArgument(f"'{at}': only images by URL ('image_url') are supported yet.", param=at)
            parts.append(message_pb2.MessageContent(image_url=message_pb2.ImageUrlContent(url=url)))
            shown.append({"type": "input_image", "image_url": url, "detail": part.get("detail", "auto")})
        elif kind == "input_file" and files is not None:
            file_id = _expect(part, "file_id", (str,), "a string", f"{at}.file_id")
            if not file_id:
                raise InvalidArgument(f"'{at}': only files by id ('file_id') are supported yet.", param=f"{at}.file_id")
            part_pb = message_pb2.MessageContent(text=message_pb2.TextContent(value=""))
            parts.append(part_pb)
            shown.append({"type": "input_file", "file_id": file_id, "filename": None})
            files.append((part_pb, shown[-1], file_id, f"{at}.file_id"))
        else:
            raise InvalidArgument(
                f"Invalid value: '{kind}'. Supported content types are 'input_text', 'output_text', 'input_image' "
                "and 'input_file'.",
                param=f"{at}.type",
                code="invalid_value",
            )
    return parts, shown


def _add_item(request: ResponseRequest, item: Any, param: str) -> None:
    if not isinstance(item, dict):
        raise InvalidArgument(f"Invalid type for '{param}': expected an object.", param=param, code="invalid_type")
    kind = _kind(item.get("type", "message" if "role" in item else None), param)
    if kind == "message":
        role = item.get("role")
        if not isinstance(role, str) or (role not in _MESSAGE_ROLES and role not in _SYSTEM_ROLES):
            raise InvalidArgument(
                f"Invalid value: '{role}'. Supported values are: 'user', 'assistant', 'system' and 'developer'.",
                param=f"{param}.role",
                code="invalid_value",
            )
        if "content" not in item:
            raise missing(f"{param}.content")
        parts, shown = _content(item["content"], f"{param}.content", request.files if role == "user" else None)
        if role in _SYSTEM_ROLES:
            request.system_text.append("\n".join(p.text.value for p in parts if p.WhichOneof("kind") == "text"))
        else:
            request.messages.append((_MESSAGE_ROLES[role], parts))
        if role == "assistant":
            shown = [
                {**p, "type": "output_text", "annotations": []} if p["type"] != "input_image" else p for p in shown
            ]
        request.items.append({"type": "message", "role": role, "status": "completed", "content": shown})
    elif kind == "function_call_output":
        call_id = _expect(item, "call_id", (str,), "a string", f"{param}.call_id")
        if not call_id:
            raise missing(f"{param}.call_id")
        output = item.get("output")
        if isinstance(output, list):  # output content parts: their text
            output = "".join(p.get("text", "") for p in output if isinstance(p, dict))
        if not isinstance(output, str):
            raise missing(f"{param}.output")
        request.tool_outputs.append(run_pb2.ToolOutput(tool_call_id=call_id, output=output))
        request.output_params.append(f"{param}.call_id")
        request.items.append(
            {"type": "function_call_output", "call_id": call_id, "output": output, "status": "completed"}
        )
    elif kind == "function_call":
        values = []
        for key in ("call_id", "name", "arguments"):
            value = _expect(item, key, (str,), "a string", f"{param}.{key}")
            if value is None:
                raise missing(f"{param}.{key}")
            values.append(value)
        call_id, name, arguments = values
        request.calls.append((len(request.messages) - 1, (call_id, name, arguments)))
        request.call_params[call_id] = param
        request.items.append(
            {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments, "status": "completed"}
        )
    elif kind in _SKIPPED_ITEMS:
        pass  # an earlier response's built-in tool call, given back: its results are in the answer after it
    else:
        raise InvalidArgument(
            f"Invalid value: '{kind}'. Supported input item types are 'message', 'function_call' and "
            "'function_call_output'.",
            param=f"{param}.type",
            code="invalid_value",
        )


def parse_items(items: list[Any], param: str) -> ResponseRequest:
    """Input items alone (a conversation's), checked as `param[i]`."""
    request = ResponseRequest(body={}, model="", previous_response_id=None, store=True, background=False)
    for i, item in enumerate(items):
        _add_item(request, item, f"{param}[{i}]")
    return request


def parse(body: Json) -> ResponseRequest:
    """The request a CreateResponse body makes. Raises InvalidArgument naming the bad parameter."""
    for key in body:
        if key not in SUPPORTED:
            raise InvalidArgument(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
    # A field sent as null is a field not sent: its default applies (the SDK sends nulls for
    # optional fields a caller set to None, and the response must echo the default, not null).
    body = {key: value for key, value in body.items() if value is not None}
    prompt = _expect(body, "prompt", (dict,), "an object")
    prompt_id = prompt.get("id") if prompt is not None else None
    if prompt is not None and (not isinstance(prompt_id, str) or not prompt_id.startswith("asst_")):
        raise InvalidArgument(
            "Invalid 'prompt.id': assistd's prompts are assistants; expected an assistant id ('asst_...').",
            param="prompt.id",
            code="invalid_value",
        )
    model = _expect(body, "model", (str,), "a string")
    if not model and prompt_id is None:
        raise missing("model")
    request = ResponseRequest(
        body=body,
        model=model or "",
        prompt_id=prompt_id,
        previous_response_id=_expect(body, "previous_response_id", (str,), "a string") or None,
        store=_expect(body, "store", (bool,), "a boolean") is not False,
        background=bool(_expect(body, "background", (bool,), "a boolean")),
    )
    conversation = body.get("conversation")
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    if conversation is not None:
        if not isinstance(conversation, str) or not conversation:
            raise InvalidArgument(
                "Invalid 'conversation': expected a conversation id or {'id': ...}.",
                param="conversation",
                code="invalid_type",
            )
        if request.previous_response_id:
            raise InvalidArgument(
                "Mutually exclusive parameters: Ensure you are only providing one of: 'previous_response_id' or "
                "'conversation'.",
                param="conversation",
                code="mutually_exclusive_parameters",
            )
        request.conversation = conversation
    if request.background and not request.store:
        raise InvalidArgument("Background responses must be stored ('store' true).", param="store")
    _expect(body, "instructions", (str,), "a string")
    _expect(body, "parallel_tool_calls", (bool,), "a boolean")
    if _expect(body, "truncation", (str,), "a string") not in (None, "auto", "disabled"):
        raise InvalidArgument(
            "Invalid value for 'truncation': expected 'auto' or 'disabled'.", param="truncation", code="invalid_value"
        )
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    max_output = _expect(body, "max_output_tokens", (int,), "an integer")
    if max_output is not None and max_output < 1:
        raise InvalidArgument("Invalid 'max_output_tokens': expected a value of at least 1.", param="max_output_tokens")
    max_calls = _expect(body, "max_tool_calls", (int,), "an integer")
    if max_calls is not None and max_calls < 1:
        raise InvalidArgument("Invalid 'max_tool_calls': expected a value of at least 1.", param="max_tool_calls")
    metadata = _expect(body, "metadata", (dict,), "an object") or {}
    if not all(isinstance(v, str) for v in metadata.values()):
        raise InvalidArgument("Invalid 'metadata': values must be strings.", param="metadata", code="invalid_type")
    check_metadata(metadata)
    given = body.get("input")
    if given is None:
        raise missing("input")
    if isinstance(given, str):
        _add_item(request, {"type": "message", "role": "user", "content": given}, "input")
    elif isinstance(given, list):
        for i, item in enumerate(given):
            _add_item(request, item, f"input[{i}]")
    else:
        raise InvalidArgument(
            f"Invalid type for 'input': expected a string or an array, but got {_type_name(given)} instead.",
            param="input",
            code="invalid_type",
        )
    include = _expect(body, "include", (list,), "an array") or []
    for i, value in enumerate(include):
        if value not in INCLUDABLE:
            raise InvalidArgument(
                f"Invalid value: '{value}'. Supported values are: {', '.join(repr(v) for v in sorted(INCLUDABLE))}.",
                param=f"include[{i}]",
                code="invalid_value",
            )
    if request.calls:
        answered = {output.tool_call_id for output in request.tool_outputs}
        for _, (call_id, _, _) in request.calls:
            if call_id not in answered:
                raise InvalidArgument(
                    f"No tool output found for function call {call_id}.", param=request.call_params[call_id]
                )
        called = set(request.call_params)
        for output, at in zip(request.tool_outputs, request.output_params, strict=True):
            if output.tool_call_id not in called:
                raise InvalidArgument(
                    f"No tool call found for function call output with call_id {output.tool_call_id}.", param=at
                )
    elif request.tool_outputs and not (request.previous_response_id or request.conversation):
        raise InvalidArgument(
            f"No tool call found for function call output with call_id {request.tool_outputs[0].tool_call_id}.",
            param=request.output_params[0],
        )
    elif request.tool_outputs and request.messages:
        raise InvalidArgument(
            "function_call_output items cannot be mixed with messages in one response yet: send the "
            "messages in the next response.",
            param="input",
        )
    tools(body)  # checked now, used when the run is made
    tool_choice(body)
    response_format(body)
    reasoning_effort(body)
    return request


def reasoning_effort(body: Json) -> int | None:
    """The run's reasoning effort from `reasoning.effort`, for models that reason."""
    reasoning = _expect(body, "reasoning", (dict,), "an object") or {}
    effort = _expect(reasoning, "effort", (str,), "a string", "reasoning.effort")
    if effort is None:
        return None
    number = enum_number(assistant_pb2.ReasoningEffort.DESCRIPTOR, effort)
    if number is None:
        raise InvalidArgument(
            f"Invalid value: '{effort}'. Supported values are: "
            f"{', '.join(repr(v) for v in enum_names(assistant_pb2.ReasoningEffort.DESCRIPTOR))}.",
            param="reasoning.effort",
            code="invalid_value",
        )
    return number


def _file_search(tool: Json, param: str) -> assistant_pb2.Tool:
    settings = assistant_pb2.FileSearchTool()
    stores = _expect(tool, "vector_store_ids", (list,), "an array", f"{param}.vector_store_ids")
    if not stores or not all(isinstance(s, str) for s in stores):
        raise missing(f"{param}.vector_store_ids")
    most = _expect(tool, "max_num_results", (int,), "an integer", f"{param}.max_num_results")
    if most is not None:
        if not 1 <= most <= 50:
            raise InvalidArgument(
                f"Invalid '{param}.max_num_results': expected a value between 1 and 50.",
                param=f"{param}.max_num_results",
            )
        settings.max_num_results = most
    if tool.get("filters") is not None:
        settings.filters.CopyFrom(parse_filter(tool["filters"], f"{param}.filters"))
    ranking = _expect(tool, "ranking_options", (dict,), "an object", f"{param}.ranking_options") or {}
    ranker = _expect(ranking, "ranker", (str,), "a string", f"{param}.ranking_options.ranker")
    if ranker is not None:
        number = enum_number(assistant_pb2.FileSearchRanker.DESCRIPTOR, ranker)
        if number is None:
            raise InvalidArgument(
                f"Invalid value: '{ranker}'. Supported values are: "
                f"{', '.join(repr(v) for v in enum_names(assistant_pb2.FileSearchRanker.DESCRIPTOR))}.",
                param=f"{param}.ranking_options.ranker",
                code="invalid_value",
            )
        settings.ranking_options.ranker = number  # type: ignore[assignment]
    threshold = _expect(
        ranking, "score_threshold", (int, float), "a number", f"{param}.ranking_options.score_threshold"
    )
    if threshold is not None:
        if not 0 <= threshold <= 1:
            raise InvalidArgument(
                f"Invalid '{param}.ranking_options.score_threshold': expected a value between 0 and 1.",
                param=f"{param}.ranking_options.score_threshold",
                code="invalid_value",
            )
        settings.ranking_options.score_threshold = threshold
    return assistant_pb2.Tool(file_search=settings)


def vector_store_ids(body: Json) -> list[str]:
    """The vector stores the body's file_search tool searches."""
    for tool in body.get("tools") or []:
        if tool.get("type") == "file_search":
            return list(dict.fromkeys(tool["vector_store_ids"]))
    return []


def _container(tool: Json, param: str) -> str | Json:
    """A code_interpreter tool's container: an id ("cntr_..."), or {"type": "auto", "file_ids": [...]}."""
    container = tool.get("container")
    if container is None:
        raise missing(f"{param}.container")
    if isinstance(container, str):
        return container
    if not isinstance(container, dict) or container.get("type") != "auto":
        raise InvalidArgument(
            f"Invalid '{param}.container': expected a container id or {{'type': 'auto'}}.",
            param=f"{param}.container",
            code="invalid_value",
        )
    file_ids = _expect(container, "file_ids", (list,), "an array", f"{param}.container.file_ids") or []
    if not all(isinstance(file_id, str) for file_id in file_ids):
        raise InvalidArgument(
            f"Invalid '{param}.container.file_ids': expected an array of file ids.",
            param=f"{param}.container.file_ids",
            code="invalid_type",
        )
    return container


def code_container(body: Json) -> str | Json | None:
    """The container the body's code_interpreter tool asks for (None: it has none)."""
    for i, tool in enumerate(body.get("tools") or []):
        if tool.get("type") == "code_interpreter":
            return _container(tool, f"tools[{i}]")
    return None


def tools(body: Json) -> list[assistant_pb2.Tool]:
    """The run's tools from the body's `tools`: functions, file_search and code_interpreter."""
    given = _expect(body, "tools", (list,), "an array") or []
    result = []
    for i, tool in enumerate(given):
        param = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise InvalidArgument(f"Invalid type for '{param}': expected an object.", param=param, code="invalid_type")
        if tool.get("type") == "file_search":
            result.append(_file_search(tool, param))
            continue
        if tool.get("type") == "code_interpreter":
            _container(tool, param)
            result.append(assistant_pb2.Tool(code_interpreter=assistant_pb2.CodeInterpreterTool()))
            continue
        if tool.get("type") != "function":
            raise InvalidArgument(
                f"Invalid value: '{tool.get('type')}'. Supported tool types are: 'function', 'file_search' and "
                "'code_interpreter'.",
                param=f"{param}.type",
                code="invalid_value",
            )
        name = _expect(tool, "name", (str,), "a string", f"{param}.name")
        if not name:
            raise missing(f"{param}.name")
        function = assistant_pb2.FunctionDefinition(name=name)
        description = _expect(tool, "description", (str,), "a string", f"{param}.description")
        if description is not None:
            function.description = description
        parameters = _expect(tool, "parameters", (dict,), "an object", f"{param}.parameters")
        if parameters is not None:
            function.parameters.update(parameters)
        strict = _expect(tool, "strict", (bool,), "a boolean", f"{param}.strict")
        if strict is not None:
            function.strict = strict
        result.append(assistant_pb2.Tool(function=function))
    return result


def tool_choice(body: Json) -> run_pb2.ToolChoice:
    choice = body.get("tool_choice", "auto")
    result = run_pb2.ToolChoice()
    if isinstance(choice, str) and choice in ("auto", "none", "required"):
        getattr(result, choice).SetInParent()
    elif isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        result.function.name = choice["name"]
    elif isinstance(choice, dict) and choice.get("type") == "file_search":
        result.file_search.SetInParent()
    else:
        raise InvalidArgument(
            "Invalid 'tool_choice': expected 'auto', 'none', 'required', {'type': 'function', 'name': ...} "
            "or {'type': 'file_search'}.",
            param="tool_choice",
            code="invalid_value",
        )
    return result


def response_format(body: Json) -> assistant_pb2.ResponseFormat:
    """The run's response format from the body's `text.format` (text, json_object, json_schema)."""
    result = assistant_pb2.ResponseFormat()
    text = _expect(body, "text", (dict,), "an object") or {}
    given = _expect(text, "format", (dict,), "an object", "text.format")
    kind = (given or {}).get("type", "text")
    if given is None:
        result.auto.SetInParent()
    elif kind == "text":
        result.text.SetInParent()
    elif kind == "json_object":
        result.json_object.SetInParent()
    elif kind == "json_schema":
        name = _expect(given, "name", (str,), "a string", "text.format.name")
        if not name:
            raise missing("text.format.name")
        schema = _expect(given, "schema", (dict,), "an object", "text.format.schema")
        if schema is None:
            raise missing("text.format.schema")
        result.json_schema.name = name
        result.json_schema.schema.update(schema)
        description = _expect(given, "description", (str,), "a string", "text.format.description")
        if description is not None:
            result.json_schema.description = description
        strict = _expect(given, "strict", (bool,), "a boolean", "text.format.strict")
        if strict is not None:
            result.json_schema.strict = strict
    else:
        raise InvalidArgument(
            f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object' and 'json_schema'.",
            param="text.format.type",
            code="invalid_value",
        )
    return result


def use_assistant(request: ResponseRequest, assistant: assistant_pb2.Assistant) -> None:
    """An assistant as the request's prompt: its model, instructions and tools where the request
    gives none (its file_search searches the assistant's vector stores too)."""
    request.assistant = assistant
    request.model = request.model or assistant.model


def _instructions(request: ResponseRequest) -> str | None:
    given = request.body.get("instructions")
    if given is None and request.assistant is not None and request.assistant.HasField("instructions"):
        return request.assistant.instructions
    return given


def tool_json(tool: assistant_pb2.Tool, assistant: assistant_pb2.Assistant) -> Json:
    """An assistant's tool as a Responses tool."""
    if tool.WhichOneof("kind") == "function":
        function = tool.function
        return {
            "type": "function",
            "name": function.name,
            "description": function.description if function.HasField("description") else None,
            "parameters": struct_to_python(function.parameters) if function.HasField("parameters") else None,
            "strict": function.strict if function.HasField("strict") else None,
        }
    if tool.WhichOneof("kind") == "file_search":
        return {
            "type": "file_search",
            "vector_store_ids": list(assistant.tool_resources.file_search.vector_store_ids),
            "max_num_results": tool.file_search.max_num_results
            if tool.file_search.HasField("max_num_results")
            else None,
        }
    return {"type": tool.WhichOneof("kind")}


def new_run(request: ResponseRequest, thread_id: str) -> run_pb2.Run:
    """The run a response is: this request's model, instructions (its own only: never those of
    the response it follows) and options."""
    body = request.body
    instructions = "\n\n".join(filter(None, [_instructions(request) or "", *request.system_text]))
    run = run_pb2.Run(
        id=ids.new_id("run_"),
        object="thread.run",
        created_at=ids.now(),
        thread_id=thread_id,
        status=run_pb2.RUN_STATUS_QUEUED,
        model=request.model,
        instructions=instructions,
        tools=request.assistant.tools if request.assistant is not None and "tools" not in body else tools(body),
        parallel_tool_calls=body.get("parallel_tool_calls") is not False,  # null: the default, true
        tool_choice=tool_choice(body),
    )
    effort = reasoning_effort(body)
    if effort is not None:
        run.reasoning_effort = effort  # type: ignore[assignment]
    if request.assistant is not None:
        run.assistant_id = request.assistant.id  # file_search also searches its vector stores
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            setattr(run, key, body[key])
        elif request.assistant is not None and request.assistant.HasField(key):
            setattr(run, key, getattr(request.assistant, key))
    if body.get("max_output_tokens") is not None:
        run.max_completion_tokens = body["max_output_tokens"]
    if body.get("max_tool_calls") is not None:
        run.max_tool_calls = body["max_tool_calls"]
    run.response_format.CopyFrom(response_format(body))
    auto = body.get("truncation") == "auto"
    run.truncation_strategy.type = (
        run_pb2.TRUNCATION_STRATEGY_TYPE_AUTO if auto else run_pb2.TRUNCATION_STRATEGY_TYPE_DISABLED
    )
    return run


def new_context(request: ResponseRequest, run: run_pb2.Run) -> tuple[list[message_pb2.Message], list[run_pb2.RunStep]]:
    """The request's items as the run's context: its messages, and the function calls it gives
    back as history as completed tool_calls steps of the run (with their outputs), ids minted in
    input order so the prompt keeps that order."""
    outputs = {output.tool_call_id: output.output for output in request.tool_outputs}
    calls_after: dict[int, list[tuple[str, str, str]]] = {}
    for after, call in request.calls:
        calls_after.setdefault(after, []).append(call)
    now = ids.now()
    messages: list[message_pb2.Message] = []
    steps: list[run_pb2.RunStep] = []

    def add_calls(after: int) -> None:
        if after not in calls_after:
            return
        step = run_pb2.RunStep(
            id=ids.new_id("step_"),
            object="thread.run.step",
            created_at=now,
            run_id=run.id,
            assistant_id=run.assistant_id,
            thread_id=run.thread_id,
            type=run_pb2.RUN_STEP_TYPE_TOOL_CALLS,
            status=run_pb2.RUN_STEP_STATUS_COMPLETED,
            completed_at=now,
        )
        for call_id, name, arguments in calls_after[after]:
            call = step.step_details.tool_calls.items.add(id=call_id)
            call.function.name, call.function.arguments = name, arguments
            call.function.output = outputs[call_id]
        steps.append(step)

    add_calls(-1)
    for index, (role, parts) in enumerate(request.messages):
        messages.append(_message(role, parts, run.thread_id, now))
        add_calls(index)
    return messages, steps


def _message(role: int, parts: list[message_pb2.MessageContent], thread_id: str, now: int) -> message_pb2.Message:
    return message_pb2.Message(
        id=ids.new_id("msg_"),
        object="thread.message",
        created_at=now,
        thread_id=thread_id,
        status=message_pb2.MESSAGE_STATUS_COMPLETED,
        completed_at=now,
        role=role,  # type: ignore[arg-type]
        content=parts,
    )


def new_messages(request: ResponseRequest, thread_id: str) -> list[message_pb2.Message]:
    """The request's message items as thread messages, in order."""
    now = ids.now()
    return [_message(role, parts, thread_id, now) for role, parts in request.messages]


def base(response_id: str, created_at: int, request: ResponseRequest) -> Json:
    """The response object's fields its request fixes."""
    body = request.body
    choice = body.get("tool_choice", "auto")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "queued",
        "background": request.background,
        "model": request.model,
        "instructions": _instructions(request),
        "previous_response_id": request.previous_response_id,
        "conversation": {"id": request.conversation} if request.conversation else None,
        "store": request.store,
        "tools": [tool_json(t, request.assistant) for t in request.assistant.tools]
        if request.assistant is not None and "tools" not in body
        else [{"strict": None, "description": None, **t} for t in body.get("tools") or []],
        "prompt": {"id": request.prompt_id, "variables": None, "version": None} if request.prompt_id else None,
        "tool_choice": choice,
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "metadata": body.get("metadata") or {},
        "text": {"format": (body.get("text") or {}).get("format") or {"type": "text"}},
        "truncation": body.get("truncation") or "disabled",
        "reasoning": {"effort": None, "summary": None, **(body.get("reasoning") or {})},
        "user": body.get("user"),
        "safety_identifier": body.get("safety_identifier"),
    }
