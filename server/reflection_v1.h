// grpc.reflection.v1, the server reflection protocol current tools speak (grpcurl 1.8.8+,
// Postman, grpcui). Debian's gRPC 1.51 ships only grpc.reflection.v1alpha
// (grpc::reflection::InitProtoReflectionServerBuilderPlugin), whose messages are the same: this
// service answers v1 from the same source, the protobuf descriptors linked into the process
// (google::protobuf::DescriptorPool::generated_pool()), as gRPC's own v1alpha service does.
// Served open, like v1alpha and health checks. Thread-safe.
#ifndef RWEXPORT_SERVER_REFLECTION_V1_H_
#define RWEXPORT_SERVER_REFLECTION_V1_H_

#include <string>
#include <vector>

#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace rwexport {

class ReflectionV1Service final : public grpc::reflection::v1::ServerReflection::Service {
 public:
  // `services`: the full names list_services answers (the server's services; this one is
  // added).
  explicit ReflectionV1Service(std::vector<std::string> services);

  grpc::Status ServerReflectionInfo(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<grpc::reflection::v1::ServerReflectionResponse,
                               grpc::reflection::v1::ServerReflectionRequest>* stream) override;

 private:
  std::vector<std::string> services_;
};

}  // namespace rwexport

#endif  // RWEXPORT_SERVER_REFLECTION_V1_H_
