// Error texts fit to show for one target: its raw URL replaced by its display URL, and its
// secrets (bearer token, password, the URL's password in raw and encoded form, values of query
// parameters the display URL hides) replaced by "REDACTED". Applied to curl messages and
// response bodies before they are logged or kept in last_error.
//
// Immutable after construction; thread-safe.
#ifndef RWEXPORT_LIB_REMOTE_WRITE_SCRUBBER_H_
#define RWEXPORT_LIB_REMOTE_WRITE_SCRUBBER_H_

#include <string>
#include <vector>

#include "lib/remote_write/target_options.h"

namespace rwexport {

class SecretScrubber {
 public:
  // `display_url` is how the target is shown (DisplayUrl(options)); it holds no secret.
  SecretScrubber(const TargetOptions& options, std::string display_url);

  // `text` with the raw URL shown as the display URL and every secret replaced.
  std::string Scrub(std::string text) const;

 private:
  const std::string url_;
  const std::string display_url_;
  // Longest first, so that a secret containing another is replaced whole.
  const std::vector<std::string> secrets_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_REMOTE_WRITE_SCRUBBER_H_
