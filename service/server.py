"""The gRPC service: servicers, health, reflection, and an orderly start and stop."""

import asyncio
import errno
import logging
from pathlib import Path
from typing import cast

import grpc
from assistd.v1 import (
    assistant_pb2,
    assistant_pb2_grpc,
    container_pb2,
    container_pb2_grpc,
    conversation_pb2,
    conversation_pb2_grpc,
    file_pb2,
    file_pb2_grpc,
    message_pb2,
    message_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    response_pb2,
    response_pb2_grpc,
    run_service_pb2,
    run_service_pb2_grpc,
    thread_pb2,
    thread_pb2_grpc,
    vector_store_pb2,
    vector_store_pb2_grpc,
)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from service import ids, reflection, tracing
from service.api.assistants import AssistantService
from service.api.containers import ContainerService
from service.api.files import FileService
from service.api.models import ModelService
from service.api.runs import RunService
from service.api.threads import MessageService, ThreadService
from service.api.vector_stores import VectorStoreService
from service.auth import Authenticator
from service.config import Settings
from service.containers import Containers
from service.credentials import CredentialStore, TenantCredentials
from service.engine.code_interpreter import CodeInterpreter
from service.engine.events import EventLog
from service.engine.live import DRAIN_END_SECONDS
from service.engine.runner import RunEngine
from service.limits import RequestRate
from service.llm.observed import ObservedProvider
from service.llm.router import ModelRouter
from service.local_calls import LocalStreams
from service.metrics import MeteredLocalStreams, MeteredStore, ProviderCallMetrics, ServerInterceptor, StoreHealth
from service.repo import Repo
from service.responses.conversations import ConversationService
from service.responses.service import ResponseService
from service.retrieval.embed import Embedder
from service.retrieval.ingest import Ingestor
from service.sandbox import BubblewrapSandbox, Sessions
from service.store import Store, open_blobs, open_store

log = logging.getLogger(__name__)

SERVICE_NAMES = [
    assistant_pb2.DESCRIPTOR.services_by_name["AssistantService"].full_name,
    thread_pb2.DESCRIPTOR.services_by_name["ThreadService"].full_name,
    message_pb2.DESCRIPTOR.services_by_name["MessageService"].full_name,
    run_service_pb2.DESCRIPTOR.services_by_name["RunService"].full_name,
    model_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name,
    file_pb2.DESCRIPTOR.services_by_name["FileService"].full_name,
    vector_store_pb2.DESCRIPTOR.services_by_name["VectorStoreService"].full_name,
    container_pb2.DESCRIPTOR.services_by_name["ContainerService"].full_name,
    conversation_pb2.DESCRIPTOR.services_by_name["ConversationService"].full_name,
    response_pb2.DESCRIPTOR.services_by_name["ResponseService"].full_name,
]


class Service:
    """Owns the store, the event log, the run engine and the gRPC server."""

    def __init__(self, settings: Settings):
        self.settings = settings
        router = ModelRouter(
            settings.models,
            retries=settings.llm_retries,
            timeout=settings.llm_timeout,
            lean=settings.provider_adapter != "litellm",
        )
        # one wrapper reports each model call to the metrics and, when on, to tracing
        self.llm = ObservedProvider(router, [ProviderCallMetrics, *tracing.provider_observers()])
        store = open_store(settings.store)
        self.store = cast(Store, MeteredStore(store))
        self.repo = Repo(self.store)
        self.blobs = open_blobs(settings.store, store)
        self.embedder = Embedder(self.llm, settings.embedding_model) if settings.embedding_model else None
        self.ingestor = Ingestor(self.repo, self.blobs, self.embedder)
        self.events = EventLog(self.store)
        sessions = Sessions(BubblewrapSandbox(Path(settings.sandbox_dir)), settings.sandbox_idle_seconds)
        self.containers = Containers(self.repo, self.blobs, sessions, settings.container_minute_seconds)
        self.engine = RunEngine(
            self.store,
            self.repo,
            self.llm,
            self.events,
            expiry_seconds=settings.run_expiry_seconds,
            tool_prompt_models=settings.tool_prompt_models,
            embedder=self.embedder,
            lease_seconds=settings.run_lease_seconds,
            max_active_runs=settings.tenant_max_active_runs,
            credentials=TenantCredentials(CredentialStore(self.store, settings.master_key)),
            code=CodeInterpreter(self.repo, self.blobs, sessions, self.containers),
        )
        self.health = StoreHealth(self.store)
        self.server: grpc.aio.Server | None = None
        self.local_streams: MeteredLocalStreams | None = None
        self._stopping: asyncio.Future | None = None
        self.port = 0

    async def start(self) -> int:
        """Opens the store, recovers interrupted runs, and serves; returns the bound port."""
        # Bound first, before the store is touched: a second process on the same port stops here,
        # before it re-queues the first one's ingestions. Without SO_REUSEPORT (grpc's default on
        # Linux) the kernel refuses the port instead of sharing the connections between the two.
        server = grpc.aio.server(
            interceptors=[ServerInterceptor()],
            options=[("grpc.max_receive_message_length", 64 * 1024 * 1024), ("grpc.so_reuseport", 0)],
        )
        address = f"{self.settings.grpc_host}:{self.settings.grpc_port}"
        try:
            self.port = server.add_insecure_port(address)
        except RuntimeError as exc:  # grpc says only "Failed to bind"; in use is by far the likeliest cause
            raise OSError(errno.EADDRINUSE, f"cannot bind gRPC to {address}: port in use or not available") from exc
        await self.store.open()
        self.events.start()
        ended = await self.engine.sweep()
        if ended:
            log.warning("ended %d run(s) left by a stopped process", ended)
        await self.engine.start_monitor()
        requeued = await self.ingestor.recover()
        if requeued:
            log.info("re-queued %d file(s) for ingestion", requeued)
        auth = Authenticator(
            self.settings.api_keys, self.store, RequestRate(self.settings.tenant_rps, self.settings.tenant_burst)
        )
        await auth.open()
        assistant_pb2_grpc.add_AssistantServiceServicer_to_server(
            AssistantService(auth, self.repo, self.ingestor), server
        )
        thread_pb2_grpc.add_ThreadServiceServicer_to_server(
            ThreadService(auth, self.repo, self.engine, self.ingestor), server
        )
        message_pb2_grpc.add_MessageServiceServicer_to_server(MessageService(auth, self.repo, self.ingestor), server)
        runs = RunService(auth, self.repo, self.engine, self.settings, self.ingestor)
        responses = ResponseService(auth, self.repo, self.engine, self.llm, self.containers, self.blobs)
        # The run streams, callable in this process by an edge that shares it (assistd serve).
        self.local_streams = MeteredLocalStreams(
            LocalStreams(
                {
                    run_service_pb2.DESCRIPTOR.services_by_name["RunService"].full_name: runs,
                    SERVICE_NAMES[-1]: responses,
                }
            )
        )
        response_pb2_grpc.add_ResponseServiceServicer_to_server(responses, server)
        conversation_pb2_grpc.add_ConversationServiceServicer_to_server(ConversationService(auth, self.repo), server)
        container_pb2_grpc.add_ContainerServiceServicer_to_server(
            ContainerService(auth, self.containers, self.settings.max_file_bytes), server
        )
        run_service_pb2_grpc.add_RunServiceServicer_to_server(runs, server)
        model_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(auth, self.llm, ids.now()), server)
        file_pb2_grpc.add_FileServiceServicer_to_server(
            FileService(auth, self.repo, self.blobs, self.settings.max_file_bytes, self.ingestor), server
        )
        vector_store_pb2_grpc.add_VectorStoreServiceServicer_to_server(
            VectorStoreService(auth, self.repo, self.ingestor, self.embedder), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable([*SERVICE_NAMES, health.SERVICE_NAME], server)
        await server.start()
        for name in ["", *SERVICE_NAMES]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.server = server
        log.info("gRPC service on %s:%d, store %s", self.settings.grpc_host, self.port, self.settings.store)
        return self.port

    async def drain(self, seconds: float, grace: float = 5.0) -> None:
        """Takes no new calls, and gives the runs working here up to `seconds` to end before they
        are ended failed (see RunEngine.drain); calls in flight may last until their end is sent."""
        await self.health.enter_graceful_shutdown()
        if self.server is not None:
            self._stopping = asyncio.ensure_future(self.server.stop(seconds + DRAIN_END_SECONDS + grace))
        interrupted = await self.engine.drain(seconds)
        if interrupted:
            log.warning("ended %d run(s) still working at shutdown", interrupted)

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        if self._stopping is not None:
            await self._stopping
        elif self.server is not None:
            await self.server.stop(grace)
        await self.engine.shutdown()
        await self.ingestor.stop()
        await self.events.stop()
        await self.store.close()
        await self.llm.close()
