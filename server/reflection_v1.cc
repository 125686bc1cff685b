#include "server/reflection_v1.h"

#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"

namespace rwexport {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::FieldDescriptor;
using google::protobuf::FileDescriptor;
using grpc::reflection::v1::ServerReflectionRequest;
using grpc::reflection::v1::ServerReflectionResponse;

// Adds `file` and, depth first, the files it imports that this stream has not been sent yet.
void AddFile(const FileDescriptor* file, std::unordered_set<std::string>* sent,
             grpc::reflection::v1::FileDescriptorResponse* out) {
  if (!sent->insert(file->name()).second) return;
  google::protobuf::FileDescriptorProto proto;
  file->CopyTo(&proto);
  out->add_file_descriptor_proto(proto.SerializeAsString());
  for (int i = 0; i < file->dependency_count(); ++i) AddFile(file->dependency(i), sent, out);
}

grpc::Status NotFound(const std::string& what) {
  return grpc::Status(grpc::StatusCode::NOT_FOUND, what + " not found");
}

}  // namespace

ReflectionV1Service::ReflectionV1Service(std::vector<std::string> services)
    : services_(std::move(services)) {
  services_.push_back(grpc::reflection::v1::ServerReflection::service_full_name());
}

grpc::Status ReflectionV1Service::ServerReflectionInfo(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<ServerReflectionResponse, ServerReflectionRequest>* stream) {
  const DescriptorPool* pool = DescriptorPool::generated_pool();
  std::unordered_set<std::string> sent;  // files sent on this stream
  ServerReflectionRequest request;
  while (stream->Read(&request)) {
    ServerReflectionResponse response;
    grpc::Status status;
    // `file` and its imports not sent yet, or NOT_FOUND naming `what`.
    auto answer_file = [&](const FileDescriptor* file, const std::string& what) {
      if (file == nullptr) return NotFound(what);
      AddFile(file, &sent, response.mutable_file_descriptor_response());
      return grpc::Status::OK;
    };
    switch (request.message_request_case()) {
      case ServerReflectionRequest::kFileByFilename:
        status = answer_file(pool->FindFileByName(request.file_by_filename()),
                             "file " + request.file_by_filename());
        break;
      case ServerReflectionRequest::kFileContainingSymbol:
        status = answer_file(pool->FindFileContainingSymbol(request.file_containing_symbol()),
                             "symbol " + request.file_containing_symbol());
        break;
      case ServerReflectionRequest::kFileContainingExtension: {
        const auto& ext = request.file_containing_extension();
        const Descriptor* type = pool->FindMessageTypeByName(ext.containing_type());
        const FieldDescriptor* field =
            type == nullptr ? nullptr : pool->FindExtensionByNumber(type, ext.extension_number());
        if (field == nullptr) {
          status = NotFound("extension " + std::to_string(ext.extension_number()) + " of " +
                            ext.containing_type());
        } else {
          AddFile(field->file(), &sent, response.mutable_file_descriptor_response());
        }
        break;
      }
      case ServerReflectionRequest::kAllExtensionNumbersOfType: {
        const Descriptor* type =
            pool->FindMessageTypeByName(request.all_extension_numbers_of_type());
        if (type == nullptr) {
          status = NotFound("type " + request.all_extension_numbers_of_type());
        } else {
          std::vector<const FieldDescriptor*> extensions;
          pool->FindAllExtensions(type, &extensions);
          auto* out = response.mutable_all_extension_numbers_response();
          out->set_base_type_name(type->full_name());
          for (const FieldDescriptor* e : extensions) out->add_extension_number(e->number());
        }
        break;
      }
      case ServerReflectionRequest::kListServices:
        for (const std::string& name : services_) {
          response.mutable_list_services_response()->add_service()->set_name(name);
        }
        break;
      default:
        status = grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "unknown request");
    }
    if (!status.ok()) {
      response.mutable_error_response()->set_error_code(status.error_code());
      response.mutable_error_response()->set_error_message(status.error_message());
    }
    response.set_valid_host(request.host());
    *response.mutable_original_request() = request;
    if (!stream->Write(response)) break;
  }
  return grpc::Status::OK;
}

}  // namespace rwexport
