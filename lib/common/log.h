// A small structured logger: one line per event, `time level message key=value ...`, on
// stderr. Values that might hold secrets must never be passed to it. Thread-safe.
#ifndef RWEXPORT_LIB_COMMON_LOG_H_
#define RWEXPORT_LIB_COMMON_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace rwexport {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below `level` are not written. Default: kInfo.
void SetLogLevel(LogLevel level);
// Parses "debug", "info", "warning" or "error".
bool ParseLogLevel(absl::string_view text, LogLevel* level);

using LogField = std::pair<absl::string_view, std::string>;

// Writes one line. Field values are quoted when they contain spaces or quotes.
void Log(LogLevel level, absl::string_view message, std::initializer_list<LogField> fields = {});

inline void LogInfo(absl::string_view message, std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kInfo, message, fields);
}
inline void LogWarning(absl::string_view message, std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kWarning, message, fields);
}
inline void LogError(absl::string_view message, std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kError, message, fields);
}

}  // namespace rwexport

#endif  // RWEXPORT_LIB_COMMON_LOG_H_
