"""ContainerService: OpenAI's Containers API over service/containers.py."""

from assistd.v1 import common_pb2, container_pb2, container_pb2_grpc

from service.api.common import list_query, page, streaming, unary
from service.containers import Containers, too_large
from service.errors import InvalidArgument, missing
from service.validation import check_filename, check_request

C = container_pb2


class ContainerService(container_pb2_grpc.ContainerServiceServicer):
    def __init__(self, auth, containers: Containers, max_bytes: int):
        self.auth = auth
        self.containers = containers
        self.max_bytes = max_bytes

    @unary
    async def CreateContainer(self, tenant, request, context):
        if not request.name:
            raise missing("name")
        minutes = None
        if request.HasField("expires_after"):
            minutes = request.expires_after.minutes
            if request.expires_after.anchor != C.CONTAINER_EXPIRY_ANCHOR_LAST_ACTIVE_AT:
                raise missing("expires_after.anchor")
        memory_limit = request.memory_limit if request.HasField("memory_limit") else None
        container = await self.containers.create(
            tenant, request.name, minutes, list(request.file_ids), memory_limit=memory_limit
        )
        return C.CreateContainerResponse(container=container)

    @unary
    async def GetContainer(self, tenant, request, context):
        return C.GetContainerResponse(container=await self.containers.get(tenant, request.container_id))

    @unary
    async def ListContainers(self, tenant, request, context):
        items, has_more = await self.containers.list_page(tenant, list_query(request), request.name)
        return page(C.ListContainersResponse(), items, has_more)

    @unary
    async def DeleteContainer(self, tenant, request, context):
        await self.containers.delete(tenant, request.container_id)
        status = common_pb2.DeletionStatus(id=request.container_id, object="container.deleted", deleted=True)
        return C.DeleteContainerResponse(status=status)

    @unary
    async def CreateContainerFile(self, tenant, request_iterator, context):
        """A copy of an uploaded file (one message with file_id), or an upload in chunks."""
        first = await anext(aiter(request_iterator), None)
        if first is None:
            raise missing("file")
        check_request(first)
        if first.file_id:
            if first.chunk or first.filename:
                raise InvalidArgument("Give either 'file' or 'file_id', not both.", param="file_id")
            container_file = await self.containers.copy(tenant, first.container_id, first.file_id)
            return C.CreateContainerFileResponse(file=container_file)
        if not first.filename:
            raise missing("file")
        check_filename(first.filename)
        size = 0

        async def chunks():
            nonlocal size
            part = first
            while True:
                if part.file_id:
                    raise InvalidArgument("Give either 'file' or 'file_id', not both.", param="file_id")
                size += len(part.chunk)
                if size > self.max_bytes:
                    raise too_large(self.max_bytes)
                if part.chunk:
                    yield part.chunk
                part = await anext(request_iterator, None)
                if part is None:
                    return
                check_request(part)

        container_file = await self.containers.upload(tenant, first.container_id, first.filename, chunks())
        return C.CreateContainerFileResponse(file=container_file)

    @unary
    async def GetContainerFile(self, tenant, request, context):
        container_file = await self.containers.file(tenant, request.container_id, request.file_id)
        return C.GetContainerFileResponse(file=container_file)

    @unary
    async def ListContainerFiles(self, tenant, request, context):
        items, has_more = await self.containers.files(tenant, request.container_id, list_query(request))
        return page(C.ListContainerFilesResponse(), items, has_more)

    @unary
    async def DeleteContainerFile(self, tenant, request, context):
        await self.containers.delete_file(tenant, request.container_id, request.file_id)
        status = common_pb2.DeletionStatus(id=request.file_id, object="container.file.deleted", deleted=True)
        return C.DeleteContainerFileResponse(status=status)

    @streaming
    async def GetContainerFileContent(self, tenant, request, context):
        await self.containers.file(tenant, request.container_id, request.file_id)
        async for chunk in self.containers.content(tenant, request.file_id):
            yield C.GetContainerFileContentResponse(chunk=chunk)
