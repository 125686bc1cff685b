// Owning pointers for libcurl's handles, freed by their deleters, and a URL-part reader.
// Header-only; the handles themselves are not thread-safe (libcurl's rules).
#ifndef RWEXPORT_LIB_REMOTE_WRITE_CURL_HANDLES_H_
#define RWEXPORT_LIB_REMOTE_WRITE_CURL_HANDLES_H_

#include <curl/curl.h>

#include <memory>
#include <string>

namespace rwexport {

struct EasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;

struct MultiDeleter {
  void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
};
using MultiPtr = std::unique_ptr<CURLM, MultiDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

struct UrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
using UrlPtr = std::unique_ptr<CURLU, UrlDeleter>;

struct CurlStringDeleter {
  void operator()(char* s) const { curl_free(s); }
};
using CurlString = std::unique_ptr<char, CurlStringDeleter>;

// One part of a parsed URL, or an empty string when it is absent.
inline std::string UrlPart(CURLU* url, CURLUPart part, unsigned int flags = 0) {
  char* value = nullptr;
  if (curl_url_get(url, part, &value, flags) != CURLUE_OK || value == nullptr) return "";
  CurlString owned(value);
  return std::string(owned.get());
}

}  // namespace rwexport

#endif  // RWEXPORT_LIB_REMOTE_WRITE_CURL_HANDLES_H_
