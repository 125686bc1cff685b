#include "lib/export/ownership.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace rwexport {
namespace {

constexpr size_t kMaxReplicaIdLength = 63;

bool IsReplicaIdChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

absl::Status ValidateReplicaId(absl::string_view replica_id) {
  if (replica_id.empty()) return absl::InvalidArgumentError("replica id: empty");
  if (replica_id.size() > kMaxReplicaIdLength) {
    return absl::InvalidArgumentError(absl::StrCat("replica id \"", replica_id, "\": longer than ",
                                                   kMaxReplicaIdLength, " characters"));
  }
  if (!absl::ascii_isalnum(static_cast<unsigned char>(replica_id[0]))) {
    return absl::InvalidArgumentError(
        absl::StrCat("replica id \"", replica_id, "\": must start with a letter or a digit"));
  }
  for (size_t i = 0; i < replica_id.size(); ++i) {
    if (!IsReplicaIdChar(replica_id[i])) {
      return absl::InvalidArgumentError(absl::StrCat("replica id \"", replica_id, "\": character ",
                                                     i + 1,
                                                     " is not a letter, digit, '.', '_' or '-'"));
    }
  }
  return absl::OkStatus();
}

std::string MakeExportId(absl::string_view replica_id, absl::string_view random_hex) {
  if (replica_id.empty()) return std::string(random_hex);
  return absl::StrCat(replica_id, "-", random_hex);
}

std::string ExportIdOwner(absl::string_view export_id) {
  const size_t dash = export_id.rfind('-');
  if (dash == absl::string_view::npos) return "";
  const absl::string_view owner = export_id.substr(0, dash);
  const absl::string_view random = export_id.substr(dash + 1);
  if (random.size() != kExportIdRandomHexDigits || !IsLowerHex(random)) return "";
  if (!ValidateReplicaId(owner).ok()) return "";
  return std::string(owner);
}

absl::Status CheckExportOwner(absl::string_view local_replica, absl::string_view export_id) {
  if (local_replica.empty()) return absl::OkStatus();
  const std::string owner = ExportIdOwner(export_id);
  if (owner.empty() || owner == local_replica) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("export ", export_id, " is owned by replica ", owner, " (this is replica ",
                   local_replica, "; retry through the router, which sends it to ", owner, ")"));
}

}  // namespace rwexport
