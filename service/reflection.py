"""gRPC server reflection, v1 and v1alpha, so ghz and grpcurl call methods with no .proto files.

grpcio-reflection ships only v1alpha, and its servicer asks the descriptor pool for method symbols
(`assistd.v1.RunService.CreateRunStream`), which the upb pool does not resolve: ghz then fails with
"Symbol not found". v1 has the same messages as v1alpha under another package name, so the one
servicer answers both on the wire.
"""

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _register_v1_descriptor() -> None:
    """Puts a v1 copy of the v1alpha file in the default pool, so `describe` of the v1 service works."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_V1_FILE)
        return  # someone (a later grpcio-reflection) registered it already
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name, proto.package = _V1_FILE, "grpc.reflection.v1"
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):  # only message fields: setting "" on a scalar makes it invalid
                field.type_name = field.type_name.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.")
    for method in proto.service[0].method:
        method.input_type = method.input_type.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.")
        method.output_type = method.output_type.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.")
    pool.Add(proto)


class _ReflectionServicer(reflection.aio.ReflectionServicer):
    def _file_containing_symbol(self, request, fully_qualified_name):
        response = super()._file_containing_symbol(request, fully_qualified_name)
        if not response.HasField("error_response"):
            return response
        # A method symbol (`pkg.Service.Method`): answer with its service's file, as grpc-go does.
        service_name, _, method = fully_qualified_name.rpartition(".")
        try:
            service = self._pool.FindServiceByName(service_name)
        except KeyError:
            return response
        if method not in service.methods_by_name:
            return response
        return super()._file_containing_symbol(request, service_name)


def enable(service_names: list[str], server: grpc.aio.Server) -> None:
    """Serves reflection (v1 and v1alpha) for these services and for reflection itself."""
    _register_v1_descriptor()
    servicer = _ReflectionServicer([*service_names, reflection.SERVICE_NAME, V1_SERVICE_NAME])
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE_NAME, {"ServerReflectionInfo": v1}),)
    )
