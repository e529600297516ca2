"""Input content in the Responses API through the real openai SDK: input_file parts by file_id
(the model is given the file's text; a file with no text is a 400 naming the part)."""

import openai
import pytest

from tests.conftest import MODEL

STORES = ["sqlite", "cassandra"]  # every test here runs on both stores


def _user(*parts: dict) -> list:
    return [{"role": "user", "content": list(parts)}]


def test_an_input_file_gives_the_model_its_text(client, provider, marker):
    notes = client.files.create(file=("notes.md", b"# Notes\nThe secret word is heliotrope.\n"), purpose="user_data")
    question = {"type": "input_text", "text": f"{marker} What is the secret word?"}
    response = client.responses.create(model=MODEL, input=_user({"type": "input_file", "file_id": notes.id}, question))
    assert response.status == "completed"
    (sent,) = provider.requests_with(marker)
    user = [m for m in sent["messages"] if m["role"] == "user"][-1]
    text = user["content"] if isinstance(user["content"], str) else " ".join(p.get("text", "") for p in user["content"])
    assert "notes.md" in text and "The secret word is heliotrope." in text and "What is the secret word?" in text
    (item,) = client.responses.input_items.list(response.id).data
    file_part, text_part = item.content
    assert file_part.type == "input_file" and file_part.file_id == notes.id and file_part.filename == "notes.md"
    assert text_part.type == "input_text"
    counted = client.responses.input_tokens.count(
        model=MODEL, input=_user({"type": "input_file", "file_id": notes.id}, question)
    )
    bare = client.responses.input_tokens.count(model=MODEL, input=_user(question))
    assert counted.input_tokens > bare.input_tokens  # the file's text is part of the prompt


def test_input_files_that_cannot_be_given_are_refused(client):
    image = client.files.create(file=("pixel.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 16), purpose="user_data")
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODEL, input=_user({"type": "input_file", "file_id": image.id}))
    assert error.value.body["param"] == "input[0].content[0].file_id"
    assert error.value.body["code"] == "unsupported_file" and "pixel.png" in error.value.body["message"]
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model=MODEL, input=_user({"type": "input_file", "file_id": "file-missing"}))
    assert missing.value.body["param"] == "input[0].content[0].file_id"
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(
            model=MODEL, input=_user({"type": "input_file", "file_url": "https://example.com/a.pdf"})
        )
    assert error.value.body["param"] == "input[0].content[0].file_id"
    with pytest.raises(openai.BadRequestError) as error:  # only users give files, as in OpenAI's API
        client.responses.create(
            model=MODEL, input=[{"role": "assistant", "content": [{"type": "input_file", "file_id": image.id}]}]
        )
    assert error.value.body["param"] == "input[0].content[0].type"
