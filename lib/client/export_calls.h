// The unary ExportService calls as absl::StatusOr, for the CLI, tools and tests. Each call
// uses its own ClientContext; `stub` must outlive the call. Thread-safe.
#ifndef RWEXPORT_LIB_CLIENT_EXPORT_CALLS_H_
#define RWEXPORT_LIB_CLIENT_EXPORT_CALLS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rwexport/v1/export.grpc.pb.h"

namespace rwexport {

absl::StatusOr<v1::StartExportResponse> StartExportRpc(v1::ExportService::StubInterface& stub,
                                                       const v1::StartExportRequest& request);

// A zero `delivery_timeout` leaves it to the server's default.
absl::StatusOr<v1::StopExportResponse> StopExportRpc(
    v1::ExportService::StubInterface& stub, const std::string& export_id,
    absl::Duration delivery_timeout = absl::ZeroDuration());

absl::StatusOr<v1::ExportStatus> GetExportRpc(v1::ExportService::StubInterface& stub,
                                              const std::string& export_id);

// Every running export: all pages of ListExports, in one response.
absl::StatusOr<v1::ListExportsResponse> ListExportsRpc(v1::ExportService::StubInterface& stub);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CLIENT_EXPORT_CALLS_H_
