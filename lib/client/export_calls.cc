#include "lib/client/export_calls.h"

#include <utility>

#include "lib/client/sample_stream.h"

namespace rwexport {
namespace {

// Runs one unary call and turns its grpc::Status into the StatusOr's.
// `export_id`: the export the call is about (its owner goes in the routing header), or empty.
template <typename Response, typename Call>
absl::StatusOr<Response> Unary(Call call, const std::string& export_id = "") {
  grpc::ClientContext context;
  AddRoutingHeader(&context, export_id);
  Response response;
  absl::Status status = FromGrpcStatus(call(&context, &response));
  if (!status.ok()) return status;
  return response;
}

}  // namespace

absl::StatusOr<v1::StartExportResponse> StartExportRpc(v1::ExportService::StubInterface& stub,
                                                       const v1::StartExportRequest& request) {
  return Unary<v1::StartExportResponse>([&](grpc::ClientContext* c, v1::StartExportResponse* r) {
    return stub.StartExport(c, request, r);
  });
}

absl::StatusOr<v1::StopExportResponse> StopExportRpc(v1::ExportService::StubInterface& stub,
                                                     const std::string& export_id,
                                                     absl::Duration delivery_timeout) {
  v1::StopExportRequest request;
  request.set_export_id(export_id);
  request.set_delivery_timeout_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(delivery_timeout)));
  return Unary<v1::StopExportResponse>(
      [&](grpc::ClientContext* c, v1::StopExportResponse* r) {
        return stub.StopExport(c, request, r);
      },
      export_id);
}

absl::StatusOr<v1::ExportStatus> GetExportRpc(v1::ExportService::StubInterface& stub,
                                              const std::string& export_id) {
  v1::GetExportRequest request;
  request.set_export_id(export_id);
  return Unary<v1::ExportStatus>(
      [&](grpc::ClientContext* c, v1::ExportStatus* r) { return stub.GetExport(c, request, r); },
      export_id);
}

absl::StatusOr<v1::ListExportsResponse> ListExportsRpc(v1::ExportService::StubInterface& stub) {
  v1::ListExportsResponse all;
  v1::ListExportsRequest request;
  // Bounded: a server adds exports while we read, but each page moves past at least one.
  for (int pages = 0; pages < 100000; ++pages) {
    absl::StatusOr<v1::ListExportsResponse> page =
        Unary<v1::ListExportsResponse>([&](grpc::ClientContext* c, v1::ListExportsResponse* r) {
          return stub.ListExports(c, request, r);
        });
    if (!page.ok()) return page.status();
    for (v1::ExportStatus& e : *page->mutable_exports()) *all.add_exports() = std::move(e);
    if (page->next_page_token().empty() || page->exports().empty()) break;
    request.set_page_token(page->next_page_token());
  }
  return all;
}

}  // namespace rwexport
