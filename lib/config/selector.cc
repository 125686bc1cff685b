#include "lib/config/selector.h"

#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/common/utf8.h"

namespace rwexport {
namespace {

bool IsTagStart(char c) { return absl::ascii_isalpha(c) || c == '_'; }
bool IsTagChar(char c) { return absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '-'; }
bool IsQuote(char c) { return c == '"' || c == '\'' || c == '`'; }
bool IsOperatorChar(char c) { return c == '=' || c == '!' || c == '~' || c == '<' || c == '>'; }

bool IsBareTag(absl::string_view tag) {
  if (tag.empty() || !IsTagStart(tag[0])) return false;
  for (char c : tag) {
    if (!IsTagChar(c)) return false;
  }
  return true;
}

// Describes the character at `pos` for error messages.
std::string Describe(absl::string_view text, size_t pos) {
  if (pos >= text.size()) return "end of input";
  char c = text[pos];
  if (absl::ascii_isprint(static_cast<unsigned char>(c)))
    return absl::StrCat("'", std::string(1, c), "'");
  return absl::StrFormat("byte 0x%02x", static_cast<unsigned char>(c));
}

// Double-quoted, with the escapes the parser understands.
std::string Quote(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
          out += absl::StrFormat("\\x%02x", static_cast<unsigned char>(c));
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
  return out;
}

class Parser {
 public:
  explicit Parser(absl::string_view text) : text_(text) {}

  absl::Status ParseMatchers(size_t open_brace, std::vector<TagMatcher>* matchers) {
    pos_ = open_brace + 1;
    while (true) {
      SkipSpace();
      if (AtEnd()) return Error("missing '}' to close the selector opened", open_brace);
      if (Peek() == '}') break;  // Empty selector or trailing comma.

      TagMatcher matcher;
      size_t tag_pos = pos_;
      if (IsQuote(Peek())) {
        absl::Status status = ParseString(&matcher.tag);
        if (!status.ok()) return status;
        if (matcher.tag.empty()) return Error("empty tag name", tag_pos);
      } else if (IsTagStart(Peek())) {
        while (!AtEnd() && IsTagChar(Peek())) ++pos_;
        matcher.tag = std::string(text_.substr(tag_pos, pos_ - tag_pos));
      } else {
        return Error(absl::StrCat("expected a tag name, found ", Describe(text_, pos_)), pos_);
      }

      SkipSpace();
      size_t op_pos = pos_;
      while (!AtEnd() && IsOperatorChar(Peek())) ++pos_;
      absl::string_view op = text_.substr(op_pos, pos_ - op_pos);
      if (op.empty()) {
        return Error(absl::StrCat("expected an operator (=, !=, =~, !~) after tag ", matcher.tag,
                                  ", found ", Describe(text_, op_pos)),
                     op_pos);
      }
      if (op == "=") {
        matcher.op = MatchOp::kEqual;
      } else if (op == "!=") {
        matcher.op = MatchOp::kNotEqual;
      } else if (op == "=~") {
        matcher.op = MatchOp::kRegexMatch;
      } else if (op == "!~") {
        matcher.op = MatchOp::kRegexNoMatch;
      } else {
        return Error(absl::StrCat("unknown operator \"", op, "\" (expected =, !=, =~ or !~)"),
                     op_pos);
      }

      SkipSpace();
      if (AtEnd() || !IsQuote(Peek())) {
        return Error(absl::StrCat("expected a quoted value for tag ", matcher.tag, ", found ",
                                  Describe(text_, pos_)),
                     pos_);
      }
      absl::Status status = ParseString(&matcher.value);
      if (!status.ok()) return status;

      if (matcher.op == MatchOp::kRegexMatch || matcher.op == MatchOp::kRegexNoMatch) {
        RE2::Options options;
        options.set_log_errors(false);
        // Compiled as written; matching uses full-match anchoring, which is PromQL's
        // ^(?:re)$ without the pitfalls of textual wrapping.
        auto regex = std::make_shared<const RE2>(matcher.value, options);
        if (!regex->ok()) {
          return absl::InvalidArgumentError(absl::StrCat("invalid regex ", Quote(matcher.value),
                                                         " for tag ", matcher.tag, ": ",
                                                         regex->error()));
        }
        matcher.regex = std::move(regex);
      }
      matchers->push_back(std::move(matcher));

      SkipSpace();
      if (AtEnd()) return Error("missing '}' to close the selector opened", open_brace);
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == '}') break;
      return Error(absl::StrCat("expected ',' or '}', found ", Describe(text_, pos_)), pos_);
    }
    ++pos_;  // The '}'.
    SkipSpace();
    if (!AtEnd()) return Error("unexpected text after '}'", pos_);
    return absl::OkStatus();
  }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return text_[pos_]; }
  void SkipSpace() {
    while (!AtEnd() && absl::ascii_isspace(static_cast<unsigned char>(Peek()))) ++pos_;
  }

  static absl::Status Error(absl::string_view what, size_t offset) {
    return absl::InvalidArgumentError(absl::StrCat(what, " at offset ", offset));
  }

  // Reads `n` hex digits at pos_ into *value.
  bool ReadHex(int n, uint32_t* value) {
    uint32_t v = 0;
    for (int i = 0; i < n; ++i) {
      if (AtEnd() || !absl::ascii_isxdigit(static_cast<unsigned char>(Peek()))) return false;
      char c = Peek();
      v = v * 16 + (absl::ascii_isdigit(c) ? c - '0' : absl::ascii_tolower(c) - 'a' + 10);
      ++pos_;
    }
    *value = v;
    return true;
  }

  // Parses a quoted string starting at pos_ (on the quote) into *out.
  absl::Status ParseString(std::string* out) {
    size_t start = pos_;
    char quote = Peek();
    ++pos_;
    out->clear();
    if (quote == '`') {
      size_t end = text_.find('`', pos_);
      if (end == absl::string_view::npos) return Error("unterminated string", start);
      out->assign(text_.data() + pos_, end - pos_);
      pos_ = end + 1;
      return absl::OkStatus();
    }
    while (true) {
      if (AtEnd()) return Error("unterminated string", start);
      char c = Peek();
      if (c == quote) {
        ++pos_;
        return absl::OkStatus();
      }
      if (c != '\\') {
        out->push_back(c);
        ++pos_;
        continue;
      }
      size_t escape_pos = pos_;
      ++pos_;
      if (AtEnd()) return Error("unterminated string", start);
      char e = Peek();
      ++pos_;
      switch (e) {
        case '"':
        case '\'':
        case '\\':
          out->push_back(e);
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'x': {
          uint32_t v;
          if (!ReadHex(2, &v)) return Error("invalid \\x escape (want 2 hex digits)", escape_pos);
          out->push_back(static_cast<char>(v));
          break;
        }
        case 'u': {
          uint32_t v;
          if (!ReadHex(4, &v) || (v >= 0xD800 && v <= 0xDFFF)) {
            return Error("invalid \\u escape (want 4 hex digits, not a surrogate)", escape_pos);
          }
          AppendUtf8(v, out);
          break;
        }
        default:
          return Error(absl::StrCat("unknown escape sequence \\", std::string(1, e)), escape_pos);
      }
    }
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

const std::string* FindTag(TagLookup tags, absl::string_view key) {
  for (const auto& tag : tags) {
    if (tag.first == key) return &tag.second;
  }
  return nullptr;
}

absl::string_view MatchOpString(MatchOp op) {
  switch (op) {
    case MatchOp::kEqual:
      return "=";
    case MatchOp::kNotEqual:
      return "!=";
    case MatchOp::kRegexMatch:
      return "=~";
    case MatchOp::kRegexNoMatch:
      return "!~";
  }
  return "?";
}

bool TagMatcher::Matches(absl::string_view tag_value) const {
  switch (op) {
    case MatchOp::kEqual:
      return tag_value == value;
    case MatchOp::kNotEqual:
      return tag_value != value;
    case MatchOp::kRegexMatch:
      return RE2::FullMatch(re2::StringPiece(tag_value.data(), tag_value.size()), *regex);
    case MatchOp::kRegexNoMatch:
      return !RE2::FullMatch(re2::StringPiece(tag_value.data(), tag_value.size()), *regex);
  }
  return false;
}

absl::StatusOr<MetricSelector> MetricSelector::Parse(absl::string_view text) {
  size_t brace = text.find('{');
  absl::string_view name = text.substr(0, brace);
  size_t stray = name.find('}');
  if (stray != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected '}' at offset ", stray));
  }
  MetricSelector selector;
  selector.metric_ = std::string(absl::StripAsciiWhitespace(name));
  if (brace != absl::string_view::npos) {
    absl::Status status = Parser(text).ParseMatchers(brace, &selector.matchers_);
    if (!status.ok()) return status;
  }
  return selector;
}

bool MetricSelector::Matches(TagLookup tags) const {
  for (const TagMatcher& matcher : matchers_) {
    const std::string* value = FindTag(tags, matcher.tag);
    if (!matcher.Matches(value == nullptr ? absl::string_view() : absl::string_view(*value))) {
      return false;
    }
  }
  return true;
}

std::string MetricSelector::ToString() const {
  std::string out = metric_;
  if (matchers_.empty()) return out;
  out.push_back('{');
  for (size_t i = 0; i < matchers_.size(); ++i) {
    const TagMatcher& m = matchers_[i];
    if (i > 0) out.push_back(',');
    absl::StrAppend(&out, IsBareTag(m.tag) ? m.tag : Quote(m.tag), MatchOpString(m.op),
                    Quote(m.value));
  }
  out.push_back('}');
  return out;
}

}  // namespace rwexport
