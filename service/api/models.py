"""ModelService: the model aliases of the model list file."""

from assistd.v1 import model_pb2, model_pb2_grpc

from service.api.common import unary


class ModelService(model_pb2_grpc.ModelServiceServicer):
    def __init__(self, auth, llm, started_at: int):
        self.auth = auth
        self.llm = llm
        self.started_at = started_at

    @unary
    async def ListModels(self, tenant, request, context):
        models = [
            model_pb2.Model(id=alias, object="model", created=self.started_at, owned_by="assistd")
            for alias in self.llm.aliases()
        ]
        return model_pb2.ListModelsResponse(data=models)
