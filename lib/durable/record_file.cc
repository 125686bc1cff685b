#include "lib/durable/record_file.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/common/log.h"
#include "lib/durable/file_util.h"

namespace rwexport {

std::string RecordIdOfFileName(const std::string& name) {
  if (!absl::EndsWith(name, kRecordSuffix) || name.size() == kRecordSuffix.size()) return "";
  return name.substr(0, name.size() - kRecordSuffix.size());
}

bool IsRecordTempFile(const std::string& name) {
  return name.find(".binpb.tmp.") != std::string::npos;
}

bool IsPlainRecordId(absl::string_view id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
           c == '_';
  });
}

absl::StatusOr<std::string> ParseRecordFile(const std::string& path,
                                            google::protobuf::Message* message) {
  absl::StatusOr<std::string> bytes = ReadFileContents(path);
  if (!bytes.ok()) return bytes.status();
  if (!message->ParseFromString(*bytes)) return std::string("does not parse");
  return std::string();
}

void MoveRecordAside(const std::string& dir, const std::string& name,
                     const std::string& corrupt_dir, const std::string& reason) {
  const std::string from = absl::StrCat(dir, "/", name);
  const std::string base = dir.substr(dir.rfind('/') + 1);  // e.g. "exports"
  const std::string to =
      absl::StrCat(corrupt_dir, "/", base, "-", name, ".", absl::ToUnixNanos(absl::Now()));
  absl::Status moved = RenameDurably(from, to);
  if (!moved.ok()) moved = RemoveFileDurably(from);  // never read it again
  LogWarning("data dir: a record cannot be used; moved aside",
             {{"file", from},
              {"reason", reason},
              {"moved_to", moved.ok() ? to : std::string(moved.message())}});
}

}  // namespace rwexport
