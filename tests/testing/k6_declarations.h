// Compact-mode series declarations shaped like k6's (http_reqs with its six usual tags, about
// 250 bytes each), for the tests of what a stream keeps per declared series.
#ifndef RWEXPORT_TESTS_TESTING_K6_DECLARATIONS_H_
#define RWEXPORT_TESTS_TESTING_K6_DECLARATIONS_H_

#include <cstdint>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {

// Declares series `ref` in `batch`: http_reqs of a URL of its own.
inline void AddK6Declaration(uint32_t ref, v1::SampleBatch* batch) {
  v1::SeriesDeclaration* decl = batch->add_series();
  decl->set_ref(ref);
  decl->set_metric("http_reqs");
  const std::string url = absl::StrCat("https://shop.test/api/v1/products/", ref);
  for (const auto& [key, value] : {std::pair<std::string, std::string>{"expected_response", "true"},
                                   {"method", "GET"},
                                   {"name", url},
                                   {"scenario", "checkout_flow"},
                                   {"status", "200"},
                                   {"url", url}}) {
    v1::Tag* tag = decl->add_tags();
    tag->set_key(key);
    tag->set_value(value);
  }
}

}  // namespace rwexport

#endif  // RWEXPORT_TESTS_TESTING_K6_DECLARATIONS_H_
