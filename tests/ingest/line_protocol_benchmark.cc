// What parsing k6's InfluxDB lines costs per line: the parser alone, and the whole conversion
// to a StreamIngester batch (tags encoded, string fields turned into tags).
#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "lib/ingest/line_batch.h"
#include "lib/ingest/line_protocol.h"

namespace rwexport {
namespace {

// 1,000 lines as k6 writes a request's samples: 8 metrics per request, 200 URLs.
std::string K6Body() {
  const char* metrics[] = {"http_reqs",           "http_req_duration", "http_req_blocked",
                           "http_req_connecting", "http_req_sending",  "http_req_waiting",
                           "http_req_receiving",  "http_req_failed"};
  std::string body;
  int64_t ts = 1700000000000000000;
  for (int i = 0; i < 125; ++i) {
    const int endpoint = i % 200;
    for (const char* metric : metrics) {
      absl::StrAppend(&body, metric,
                      ",expected_response=true,method=GET,name=http://test.k6.io/api/items/",
                      endpoint,
                      ",proto=HTTP/1.1,scenario=default,status=200,tls_version=tls1.3 "
                      "url=\"http://test.k6.io/api/items/",
                      endpoint, "\",value=", 12.345 + i, " ", ts, "\n");
    }
    ts += 1000000;
  }
  return body;
}

void BM_ParseLines(benchmark::State& state) {
  const std::string body = K6Body();
  LineProtocolParser parser;
  ParsedLine line;
  size_t lines = 0;
  for (auto _ : state) {
    size_t pos = 0;
    while (pos < body.size()) {
      size_t end = body.find('\n', pos);
      if (end == std::string::npos) end = body.size();
      benchmark::DoNotOptimize(
          parser.Parse(absl::string_view(body).substr(pos, end - pos), 0, &line));
      pos = end + 1;
      ++lines;
    }
  }
  state.SetItemsProcessed(lines);
  state.SetBytesProcessed(state.iterations() * body.size());
}
BENCHMARK(BM_ParseLines);

void BM_BuildBatch(benchmark::State& state) {
  const std::string body = K6Body();
  LineBatchBuilder builder;
  size_t samples = 0;
  for (auto _ : state) {
    builder.Build(body, LineBatchOptions());
    samples += builder.batch().samples.size();
  }
  state.SetItemsProcessed(samples);
  state.SetBytesProcessed(state.iterations() * body.size());
}
BENCHMARK(BM_BuildBatch);

}  // namespace
}  // namespace rwexport
