// Which replica of a fleet owns an export, read from the export's id.
//
// A fleet is N independent rwexport_server processes behind a stock L7 router (HAProxy). A run
// lives on the replica that started it, for its whole life. A replica started with
// --replica_id=NAME gives its exports ids "NAME-<32 hex digits>", so a router, a client or
// another replica can tell the owner from the id alone, without shared state: clients send
// the owner in the kReplicaHeader gRPC metadata and the router picks that server. Ids of a
// process without a replica id are 32 hex digits and name no owner.
//
// Thread-safe (pure functions).
#ifndef RWEXPORT_LIB_EXPORT_OWNERSHIP_H_
#define RWEXPORT_LIB_EXPORT_OWNERSHIP_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace rwexport {

// The gRPC metadata (HTTP/2 header) that carries an export's owner to the router.
inline constexpr absl::string_view kReplicaHeader = "rwexport-replica";

// Length of the random part of an export id (hex digits).
inline constexpr size_t kExportIdRandomHexDigits = 32;

// A replica id is 1 to 63 characters of [A-Za-z0-9._-] starting with a letter or digit (a
// Kubernetes pod name qualifies; so does an HAProxy server name). INVALID_ARGUMENT naming the
// offending character otherwise.
absl::Status ValidateReplicaId(absl::string_view replica_id);

// The export id for `random_hex` (kExportIdRandomHexDigits hex digits) on `replica_id`:
// "<replica_id>-<random_hex>", or `random_hex` alone for an empty replica id.
std::string MakeExportId(absl::string_view replica_id, absl::string_view random_hex);

// The replica named by `export_id`: the part before its last '-' when the id is
// "<valid replica id>-<32 lowercase hex digits>"; empty for any other id (an id of a single
// process, or text that is no export id).
std::string ExportIdOwner(absl::string_view export_id);

// Whether `local_replica` may serve a call for `export_id`: OK when the replica has no id, or
// the id names no owner or names this replica; UNAVAILABLE "export <id> is owned by replica
// <owner>" (retryable: the router will reach the owner once it is up) when it names another.
absl::Status CheckExportOwner(absl::string_view local_replica, absl::string_view export_id);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_EXPORT_OWNERSHIP_H_
