"""`assistd service` and `assistd edge` as two processes, as a scaled-out deployment runs them."""

from tests.conftest import MODEL, Server


def test_edge_and_service_in_separate_processes(provider, tmp_path):
    service = Server(tmp_path, provider).start("service")
    edge = Server(tmp_path, provider, {"ASSISTD_GRPC_TARGET": service.grpc_target})
    try:
        edge.start("edge")
        client = edge.client()
        assistant = client.beta.assistants.create(model=MODEL)
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "[reply:two processes]"}])
        with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            assert "".join(stream.text_deltas) == "two processes"
        assert client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text.value == "two processes"
    finally:
        edge.stop()
        service.stop()
