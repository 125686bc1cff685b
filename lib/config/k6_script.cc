#include "lib/config/k6_script.h"

#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "lib/common/utf8.h"
#include "lib/config/k6_json.h"
#include "nlohmann/json.hpp"

namespace rwexport {
namespace {

using Json = nlohmann::json;

constexpr absl::string_view kApmPath = "ext.loadimpact.apm";
constexpr size_t kMaxDepth = 64;
constexpr size_t kMaxShownExpression = 60;

// A value the reader could not evaluate (or an __ENV variable not set), where it was.
struct Issue {
  std::string path;  // "ext.loadimpact.apm[0].credentials.token"; "" for the options object
  int line;
  std::string message;
};

bool IsIdentStart(char c) { return absl::ascii_isalpha(c) || c == '_' || c == '$'; }
bool IsIdentChar(char c) { return absl::ascii_isalnum(c) || c == '_' || c == '$'; }

// Whether `path` is `ancestor` or lies below it.
bool IsAtOrBelow(absl::string_view path, absl::string_view ancestor) {
  if (ancestor.empty()) return true;
  if (!absl::StartsWith(path, ancestor)) return false;
  return path.size() == ancestor.size() || path[ancestor.size()] == '.' ||
         path[ancestor.size()] == '[';
}

// Credentials, SigV4 keys and headers: their expressions are not shown.
bool IsSecretPath(absl::string_view path) {
  return absl::StrContains(path, "credentials") || absl::StrContains(path, "sigv4") ||
         absl::StrContains(path, "headers");
}

// Reads a JavaScript object literal as JSON5 does, into JSON.
class LiteralReader {
 public:
  LiteralReader(absl::string_view text, const EnvLookup& env) : text_(text), env_(env) {}

  size_t pos() const { return pos_; }
  void set_pos(size_t pos) { pos_ = pos; }
  const std::vector<Issue>& issues() const { return issues_; }
  const std::map<std::string, int>& lines() const { return lines_; }

  int LineAt(size_t pos) const {
    int line = 1;
    for (size_t i = 0; i < pos && i < text_.size(); ++i) line += text_[i] == '\n';
    return line;
  }

  // Skips white space and comments. False on an unterminated /* comment.
  bool SkipSpace() {
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (absl::ascii_isspace(c)) {
        ++pos_;
      } else if (c == '/' && Peek(1) == '/') {
        while (pos_ < text_.size() && text_[pos_] != '\n') ++pos_;
      } else if (c == '/' && Peek(1) == '*') {
        const size_t end = text_.find("*/", pos_ + 2);
        if (end == absl::string_view::npos) return false;
        pos_ = end + 2;
      } else {
        break;
      }
    }
    return true;
  }

  // Reads the value at the current position into `out`. A value that cannot be evaluated
  // becomes null and an Issue; a syntax error the reader cannot get past is an error Status.
  absl::Status Value(const std::string& path, size_t depth, Json* out) {
    if (!SkipSpace()) return SyntaxError("unterminated /* comment");
    if (depth > kMaxDepth) return SyntaxError("nested too deeply");
    const size_t start = pos_;
    const size_t issues_before = issues_.size();
    lines_[path] = LineAt(start);
    absl::Status status = Literal(path, depth, out);
    if (!status.ok()) return status;
    if (!SkipSpace()) return SyntaxError("unterminated /* comment");
    if (pos_ < text_.size() && !IsTerminator(text_[pos_]) && depth > 0) {
      // More follows (`a || b`, `"x" + y`, `f(...)`): an expression.
      pos_ = start;
      issues_.resize(issues_before);
      return Expression(path, out);
    }
    return absl::OkStatus();
  }

 private:
  char Peek(size_t ahead) const { return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0'; }
  static bool IsTerminator(char c) { return c == ',' || c == '}' || c == ']'; }

  absl::Status SyntaxError(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("line ", LineAt(pos_), ": ", what));
  }

  absl::Status Literal(const std::string& path, size_t depth, Json* out) {
    if (pos_ >= text_.size()) return SyntaxError("the script ends inside the options object");
    const char c = text_[pos_];
    if (c == '{') return Object(path, depth, out);
    if (c == '[') return Array(path, depth, out);
    if (c == '"' || c == '\'') {
      std::string s;
      absl::Status status = String(&s);
      if (!status.ok()) return status;
      *out = std::move(s);
      return absl::OkStatus();
    }
    if (c == '`') return Template(path, out);
    if (absl::ascii_isdigit(c) || c == '.' || c == '-' || c == '+') {
      if (Number(out)) return absl::OkStatus();
      return Expression(path, out);
    }
    if (IsIdentStart(c)) {
      const size_t start = pos_;
      while (pos_ < text_.size() && IsIdentChar(text_[pos_])) ++pos_;
      const absl::string_view word = text_.substr(start, pos_ - start);
      if (word == "true" || word == "false") {
        *out = word == "true";
        return absl::OkStatus();
      }
      if (word == "null" || word == "undefined") {
        *out = nullptr;
        return absl::OkStatus();
      }
      if (word == "__ENV") return Env(path, start, out);
      pos_ = start;
    }
    return Expression(path, out);
  }

  absl::Status Object(const std::string& path, size_t depth, Json* out) {
    *out = Json::object();
    ++pos_;  // '{'
    for (;;) {
      if (!SkipSpace()) return SyntaxError("unterminated /* comment");
      if (pos_ >= text_.size()) return SyntaxError("missing '}'");
      if (text_[pos_] == '}') {
        ++pos_;
        return absl::OkStatus();
      }
      const size_t entry_start = pos_;
      std::string key;
      if (text_[pos_] == '"' || text_[pos_] == '\'') {
        absl::Status status = String(&key);
        if (!status.ok()) return status;
      } else if (IsIdentStart(text_[pos_]) || absl::ascii_isdigit(text_[pos_])) {
        while (pos_ < text_.size() && IsIdentChar(text_[pos_])) key.push_back(text_[pos_++]);
      } else {
        // A spread (...base) or a computed key ([name]): the object's keys are unknown.
        Json ignored;
        absl::Status status = Expression(path, &ignored, "a spread or computed key");
        if (!status.ok()) return status;
        if (!Separator('}')) return SyntaxError("expected ',' or '}' in an object");
        continue;
      }
      const std::string key_path = path.empty() ? key : absl::StrCat(path, ".", key);
      if (!SkipSpace()) return SyntaxError("unterminated /* comment");
      Json value;
      if (pos_ < text_.size() && text_[pos_] == ':') {
        ++pos_;
        absl::Status status = Value(key_path, depth + 1, &value);
        if (!status.ok()) return status;
      } else {
        // Shorthand `{ apm }` or a method `f() {...}`: a value the reader cannot see.
        pos_ = entry_start;
        lines_[key_path] = LineAt(pos_);
        absl::Status status = Expression(key_path, &value);
        if (!status.ok()) return status;
      }
      (*out)[key] = std::move(value);
      if (!Separator('}')) return SyntaxError("expected ',' or '}' after a value");
    }
  }

  absl::Status Array(const std::string& path, size_t depth, Json* out) {
    *out = Json::array();
    ++pos_;  // '['
    for (;;) {
      if (!SkipSpace()) return SyntaxError("unterminated /* comment");
      if (pos_ >= text_.size()) return SyntaxError("missing ']'");
      if (text_[pos_] == ']') {
        ++pos_;
        return absl::OkStatus();
      }
      const std::string item_path = absl::StrCat(path, "[", out->size(), "]");
      Json value;
      absl::Status status = Value(item_path, depth + 1, &value);
      if (!status.ok()) return status;
      out->push_back(std::move(value));
      if (!Separator(']')) return SyntaxError("expected ',' or ']' in an array");
    }
  }

  // After an entry: a ',' (consumed) or `close` (left for the caller).
  bool Separator(char close) {
    if (!SkipSpace() || pos_ >= text_.size()) return false;
    if (text_[pos_] == ',') {
      ++pos_;
      return true;
    }
    return text_[pos_] == close;
  }

  absl::Status String(std::string* out) {
    const char quote = text_[pos_++];
    while (pos_ < text_.size()) {
      const char c = text_[pos_++];
      if (c == quote) return absl::OkStatus();
      if (c == '\n') break;
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) break;
      const char e = text_[pos_++];
      switch (e) {
        case 'n':
          out->push_back('\n');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'v':
          out->push_back('\v');
          break;
        case '0':
          out->push_back('\0');
          break;
        case '\n':
          break;  // line continuation
        case 'x':
        case 'u': {
          uint32_t code = 0;
          if (!Hex(e == 'x' ? 2 : 4, &code)) return SyntaxError("bad escape in a string");
          AppendUtf8(code, out);
          break;
        }
        default:
          out->push_back(e);
      }
    }
    return SyntaxError("unterminated string");
  }

  bool Hex(int digits, uint32_t* code) {
    if (digits == 4 && Peek(0) == '{') {  // \u{1F600}
      const size_t close = text_.find('}', pos_);
      if (close == absl::string_view::npos || close - pos_ > 7) return false;
      const bool ok = absl::SimpleHexAtoi(text_.substr(pos_ + 1, close - pos_ - 1), code);
      pos_ = close + 1;
      return ok;
    }
    if (pos_ + digits > text_.size()) return false;
    for (int i = 0; i < digits; ++i) {
      if (!absl::ascii_isxdigit(text_[pos_ + i])) return false;
    }
    const bool ok = absl::SimpleHexAtoi(text_.substr(pos_, digits), code);
    pos_ += digits;
    return ok;
  }

  // `text` without `${`: a plain string; with one: an expression.
  absl::Status Template(const std::string& path, Json* out) {
    const size_t start = pos_;
    std::string s;
    ++pos_;
    while (pos_ < text_.size() && text_[pos_] != '`') {
      if (text_[pos_] == '$' && Peek(1) == '{') {
        pos_ = start;
        return Expression(path, out);
      }
      if (text_[pos_] == '\\' && pos_ + 1 < text_.size()) ++pos_;
      s.push_back(text_[pos_++]);
    }
    if (pos_ >= text_.size()) return SyntaxError("unterminated template string");
    ++pos_;
    *out = std::move(s);
    return absl::OkStatus();
  }

  // JSON5 numbers: sign, decimal (".5", "5.", exponent, `_` separators), hex.
  bool Number(Json* out) {
    size_t p = pos_;
    bool negative = false;
    if (text_[p] == '-' || text_[p] == '+') negative = text_[p++] == '-';
    std::string digits;
    if (p + 1 < text_.size() && text_[p] == '0' && (text_[p + 1] == 'x' || text_[p + 1] == 'X')) {
      p += 2;
      while (p < text_.size() && (absl::ascii_isxdigit(text_[p]) || text_[p] == '_')) {
        if (text_[p] != '_') digits.push_back(text_[p]);
        ++p;
      }
      uint64_t v = 0;
      if (digits.empty() || !absl::SimpleHexAtoi(digits, &v)) return false;
      pos_ = p;
      if (negative) {
        *out = -static_cast<int64_t>(v);
      } else {
        *out = v;
      }
      return true;
    }
    bool is_float = false;
    while (p < text_.size()) {
      const char c = text_[p];
      if (absl::ascii_isdigit(c)) {
        digits.push_back(c);
      } else if (c == '.' || c == 'e' || c == 'E') {
        is_float = true;
        digits.push_back(c);
        if ((c == 'e' || c == 'E') && p + 1 < text_.size() &&
            (text_[p + 1] == '-' || text_[p + 1] == '+')) {
          digits.push_back(text_[++p]);
        }
      } else if (c != '_') {
        break;
      }
      ++p;
    }
    if (digits.empty() || digits == ".") return false;
    if (!is_float) {
      uint64_t v = 0;
      if (!absl::SimpleAtoi(digits, &v)) return false;
      pos_ = p;
      if (negative) {
        *out = -static_cast<int64_t>(v);
      } else {
        *out = v;
      }
      return true;
    }
    double v = 0;
    if (!absl::SimpleAtod(digits, &v)) return false;
    pos_ = p;
    *out = negative ? -v : v;
    return true;
  }

  // `__ENV.NAME` or `__ENV["NAME"]` (`start` is where `__ENV` began).
  absl::Status Env(const std::string& path, size_t start, Json* out) {
    std::string name;
    if (Peek(0) == '.') {
      ++pos_;
      while (pos_ < text_.size() && IsIdentChar(text_[pos_])) name.push_back(text_[pos_++]);
    } else if (Peek(0) == '[' && (Peek(1) == '"' || Peek(1) == '\'')) {
      ++pos_;
      absl::Status status = String(&name);
      if (!status.ok()) return status;
      if (Peek(0) != ']') name.clear();
      ++pos_;
    }
    if (name.empty()) {
      pos_ = start;
      return Expression(path, out);
    }
    std::optional<std::string> value = env_(name);
    if (!value) {
      issues_.push_back({path, LineAt(start),
                         absl::StrCat("__ENV.", name,
                                      " is not set in the environment (k6's -e is not seen here: "
                                      "export ",
                                      name, "=... before running rwexport)")});
      *out = nullptr;
      return absl::OkStatus();
    }
    *out = *std::move(value);
    return absl::OkStatus();
  }

  // Skips an expression up to the ',', '}' or ']' that ends it (outside brackets, strings and
  // comments) and records it as an Issue. `what` describes it when it is not a value.
  absl::Status Expression(const std::string& path, Json* out, absl::string_view what = "") {
    const size_t start = pos_;
    std::vector<char> open;
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (open.empty() && (IsTerminator(c) || c == ';')) break;
      if (c == '"' || c == '\'') {
        std::string ignored;
        absl::Status status = String(&ignored);
        if (!status.ok()) return status;
        continue;
      }
      if (c == '`') {
        ++pos_;
        while (pos_ < text_.size() && text_[pos_] != '`') pos_ += text_[pos_] == '\\' ? 2 : 1;
        ++pos_;
        continue;
      }
      if (c == '/' && (Peek(1) == '/' || Peek(1) == '*')) {
        if (!SkipSpace()) return SyntaxError("unterminated /* comment");
        continue;
      }
      if (c == '(' || c == '[' || c == '{') open.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
      if (c == ')' || c == ']' || c == '}') {
        if (open.empty() || open.back() != c) return SyntaxError("unbalanced brackets");
        open.pop_back();
      }
      ++pos_;
    }
    if (!open.empty()) return SyntaxError("the script ends inside an expression");
    absl::string_view shown = absl::StripAsciiWhitespace(text_.substr(start, pos_ - start));
    std::string text(shown.substr(0, kMaxShownExpression));
    if (shown.size() > kMaxShownExpression) absl::StrAppend(&text, "...");
    for (char& ch : text) {
      if (ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
    }
    std::string message = IsSecretPath(path) ? "cannot evaluate the expression here"
                                             : absl::StrCat("cannot evaluate ", text);
    if (!what.empty()) absl::StrAppend(&message, " (", what, ")");
    absl::StrAppend(&message, ": only literals and __ENV.NAME are read from a k6 script");
    issues_.push_back({path, LineAt(start), std::move(message)});
    *out = nullptr;
    return absl::OkStatus();
  }

  absl::string_view text_;
  const EnvLookup& env_;
  size_t pos_ = 0;
  std::vector<Issue> issues_;
  std::map<std::string, int> lines_;  // value path -> line
};

// The position just after `export const|let|var options [: Type] =`, outside comments and
// strings; npos if there is none.
size_t FindOptions(absl::string_view script) {
  size_t i = 0;
  auto word_at = [&](size_t p, absl::string_view word) {
    return script.substr(p, word.size()) == word &&
           (p + word.size() >= script.size() || !IsIdentChar(script[p + word.size()])) &&
           (p == 0 || !IsIdentChar(script[p - 1]));
  };
  auto skip_space = [&](size_t p) {
    while (p < script.size() && absl::ascii_isspace(script[p])) ++p;
    return p;
  };
  while (i < script.size()) {
    const char c = script[i];
    if (c == '/' && i + 1 < script.size() && script[i + 1] == '/') {
      i = script.find('\n', i);
      if (i == absl::string_view::npos) return i;
      continue;
    }
    if (c == '/' && i + 1 < script.size() && script[i + 1] == '*') {
      i = script.find("*/", i + 2);
      if (i == absl::string_view::npos) return i;
      i += 2;
      continue;
    }
    if (c == '"' || c == '\'' || c == '`') {
      for (++i; i < script.size() && script[i] != c; ++i) {
        if (script[i] == '\\') ++i;
      }
      ++i;
      continue;
    }
    if (word_at(i, "export")) {
      size_t p = skip_space(i + 6);
      for (absl::string_view kw : {"const", "let", "var"}) {
        if (!word_at(p, kw)) continue;
        p = skip_space(p + kw.size());
        if (!word_at(p, "options")) break;
        p = skip_space(p + 7);
        if (p < script.size() && script[p] == ':') {  // TypeScript: `options: Options =`
          while (p < script.size() && script[p] != '=' && script[p] != ';') ++p;
        }
        if (p < script.size() && script[p] == '=' &&
            (p + 1 >= script.size() || script[p + 1] != '=')) {
          return p + 1;
        }
        break;
      }
      i += 6;
      continue;
    }
    ++i;
  }
  return absl::string_view::npos;
}

}  // namespace

bool IsK6ScriptPath(absl::string_view path) {
  for (absl::string_view ext : {".js", ".mjs", ".cjs", ".ts"}) {
    if (absl::EndsWithIgnoreCase(path, ext)) return true;
  }
  return false;
}

absl::StatusOr<rwexport::v1::StartExportRequest> ParseK6ScriptApm(absl::string_view script,
                                                                  absl::string_view test_run_id,
                                                                  const EnvLookup& env) {
  const size_t start = FindOptions(script);
  if (start == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "no `export const options = {...}` in the script (the apm configuration is read from "
        "options.ext.loadimpact.apm)");
  }
  LiteralReader reader(script, env);
  reader.set_pos(start);
  Json options;
  absl::Status status = reader.Value("", 0, &options);
  if (!status.ok()) return status;

  // Only what the apm configuration depends on must be evaluable.
  for (const Issue& issue : reader.issues()) {
    if (IsAtOrBelow(kApmPath, issue.path) || IsAtOrBelow(issue.path, kApmPath)) {
      return absl::InvalidArgumentError(absl::StrCat("line ", issue.line, ": ",
                                                     issue.path.empty() ? "options" : issue.path,
                                                     ": ", issue.message));
    }
  }
  if (!options.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", reader.LineAt(start), ": options: expected an object literal"));
  }
  if (!options.contains("ext")) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", reader.LineAt(start), ": options.ext.loadimpact.apm: not found"));
  }
  Json doc = Json::object();
  doc["ext"] = options["ext"];
  // A string of the options that is not UTF-8 (raw bytes, or a \u escape of a lone surrogate)
  // cannot become JSON: refused, with the line of the first such byte where there is one.
  std::string json;
  try {
    json = doc.dump();
  } catch (const Json::type_error&) {
    const size_t bad = start + FirstInvalidUtf8(script.substr(start));
    return absl::InvalidArgumentError(
        absl::StrCat(bad < script.size() ? absl::StrCat("line ", reader.LineAt(bad), ": ") : "",
                     "options.ext: a string is not valid UTF-8"));
  }
  absl::StatusOr<rwexport::v1::StartExportRequest> request = ParseK6ApmJson(json, test_run_id);
  if (request.ok()) return request;
  // "ext.loadimpact.apm[0].resampleRate: ..." -> "line 9: ext.loadimpact.apm[0]...".
  const std::string message(request.status().message());
  const size_t colon = message.find(": ");
  if (colon != std::string::npos) {
    auto line = reader.lines().find(message.substr(0, colon));
    if (line != reader.lines().end()) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line->second, ": ", message));
    }
  }
  return request.status();
}

}  // namespace rwexport
